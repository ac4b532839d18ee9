import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { encodeRecord, signRecord, type Listing, type ListingBody } from '@rpib/protocol'
import type { NodeProcess } from '../lib/node-process.js'
import { Cluster, sampleListing, waitFor } from './helpers.js'

interface Published {
  key: string
  version: number
  record: Listing
}
interface Entry {
  key: string
  online: boolean
  listing: Listing
}
interface QueryResult {
  total: number
  entries: Entry[]
}
interface Stats {
  listings: { refused: Record<string, number>; syncErrors: number; keys: number }
  presence: { accepted: number; rejected: number; ignored: number; published: number }
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64')

/** Every node's view of one key: the version it holds (0 = none). */
async function versions(nodes: NodeProcess[], key: string): Promise<number[]> {
  return Promise.all(
    nodes.map(async (n) => (await n.request<Listing | null>('latest', { key }))?.body.version ?? 0),
  )
}

async function allHold(nodes: NodeProcess[], key: string, version: number, what: string): Promise<void> {
  await Promise.all(nodes.map((n) => n.request('awaitListing', { key, version, timeoutMs: 20_000 })))
  assert.deepEqual(
    await versions(nodes, key),
    nodes.map(() => version),
    what,
  )
}

async function listedKeys(node: NodeProcess): Promise<string[]> {
  const result = await node.request<QueryResult>('query', { query: { presence: 'any', limit: 1000 } })
  return result.entries.map((e) => e.key).sort()
}

describe('market across 10 OS processes on loopback', { timeout: 170_000 }, () => {
  let cluster: Cluster
  const honest: NodeProcess[] = []
  let hostile: NodeProcess
  let first: Published
  let updated: Published

  before(async () => {
    cluster = await Cluster.create()
    const seed = await cluster.start('n0', [])
    honest.push(seed)
    // nodes 1-7 start together; each bootstraps from the seed, then they form a ring
    const rest = await Promise.all([1, 2, 3, 4, 5, 6, 7].map((i) => cluster.start(`n${i}`, seed.addresses)))
    honest.push(...rest)
    await Promise.all(
      honest.map((n, i) => n.request('dial', { address: honest[(i + 1) % honest.length]!.addresses[0] })),
    )
    hostile = await cluster.start('hostile', [seed.addresses[0]!, rest[3]!.addresses[0]!], { hostile: true })
  })

  after(async () => {
    await cluster?.destroy()
  })

  test('a listing published on one node appears in every index, online', async () => {
    first = await honest[1]!.request<Published>('publish', { listing: sampleListing('pi-one') })
    await allHold(honest, first.key, first.version, 'every node holds the listing')
    await waitFor('listing online everywhere', async () => {
      const shown = await Promise.all(honest.map((n) => n.request<Entry | null>('show', { key: first.key })))
      return shown.every((e) => e?.online === true)
    })
  })

  test('an update supersedes the listing everywhere', async () => {
    updated = await honest[1]!.request<Published>('publish', {
      listing: sampleListing('pi-one', { satsPerHour: 250 }),
    })
    assert.ok(updated.version > first.version)
    await allHold(honest, first.key, updated.version, 'every node holds the update')
    const shown = await honest[5]!.request<Entry>('show', { key: first.key })
    assert.equal(shown.listing.body.satsPerHour, 250)
  })

  test('an unlisting removes the listing from every index', async () => {
    const listed = await honest[2]!.request<Published>('publish', { listing: sampleListing('pi-two') })
    await allHold(honest, listed.key, listed.version, 'every node holds pi-two')
    const unlisted = await honest[2]!.request<{ version: number }>('unlist', { deviceId: 'pi-two' })
    await allHold(honest, listed.key, unlisted.version, 'every node holds the unlisting')
    for (const node of honest) {
      assert.equal(await node.request('show', { key: listed.key }), null)
      assert.ok(!(await listedKeys(node)).includes(listed.key))
    }
  })

  test('forged listings written straight into OrbitDB are refused by every honest node', async () => {
    const victimKey = first.key
    const stranger = await generateKeyPair('Ed25519')
    const before = await Promise.all(honest.map((n) => n.request<Stats>('stats')))

    // 1. signed by another key, filed under the victim's key
    const alien = await signRecord(
      'listing',
      { ...(updated.record.body as ListingBody), version: updated.version + 10 },
      stranger,
    )
    await hostile.request('rawPut', { key: victimKey, record: b64(encodeRecord(alien)) })
    // 2. a valid record with a tampered field
    const tampered = { ...updated.record, body: { ...updated.record.body, satsPerHour: 1 } }
    await hostile.request('rawPut', { key: victimKey, record: b64(encodeRecord(tampered)) })
    // 3. the older, genuinely signed version replayed
    await hostile.request('rawPut', { key: victimKey, record: b64(encodeRecord(first.record)) })
    // 4. an oversized entry
    await hostile.request('rawPut', { key: victimKey, record: b64(new Uint8Array(64 * 1024).fill(7)) })
    // 5. a DEL of the victim's listing
    await hostile.request('rawDel', { key: victimKey })

    // every honest node refuses each of the five (one refusal per new head it is offered)
    const reasons = ['key', 'record', 'stale', 'op']
    await waitFor(
      'refusals on every honest node',
      async () => {
        const now = await Promise.all(honest.map((n) => n.request<Stats>('stats')))
        return now.every((s, i) =>
          reasons.every((r) => (s.listings.refused[r] ?? 0) > (before[i]!.listings.refused[r] ?? 0)),
        )
      },
      20_000,
    )
    for (const node of honest) {
      const shown = await node.request<Entry>('show', { key: victimKey })
      assert.equal(shown.listing.body.version, updated.version)
      assert.equal(shown.listing.body.satsPerHour, 250)
      assert.equal(shown.listing.signer, first.record.signer)
      assert.equal(shown.listing.sig, updated.record.sig)
    }
  })

  test('invalid presence beats are rejected by the gossip validator', async () => {
    const stranger = await generateKeyPair('Ed25519')
    const target = honest[4]!
    const before = await target.request<Stats>('stats')
    // garbage, and a valid beat signed by a key other than the sender's
    await hostile.request('rawPublishPresence', { data: b64(new Uint8Array([1, 2, 3, 4])) })
    const foreign = await signRecord('presence', { seq: 1 }, stranger)
    await hostile.request('rawPublishPresence', { data: b64(encodeRecord(foreign)) })
    await waitFor('beats rejected', async () => {
      const now = await target.request<Stats>('stats')
      return now.presence.rejected >= before.presence.rejected + 2
    })
  })

  test('a provider that stops is shown offline, a restarted node keeps its data, catches up and is online again', async () => {
    const provider = honest[3]!
    const watcher = honest[6]!
    const own = await provider.request<Published>('publish', { listing: sampleListing('pi-three') })
    await allHold(honest, own.key, own.version, 'every node holds pi-three')
    await waitFor(
      'pi-three online',
      async () => (await watcher.request<Entry | null>('show', { key: own.key }))?.online === true,
    )

    const index = honest.indexOf(provider)
    await cluster.stop('n3')
    honest.splice(index, 1)
    const stoppedAt = Date.now()
    await waitFor(
      'pi-three offline',
      async () => (await watcher.request<Entry | null>('show', { key: own.key }))?.online === false,
      10_000,
    )
    assert.ok(
      Date.now() - stoppedAt < 5_000,
      'shown offline within the configured time (1.5 s + beat interval)',
    )
    // hidden by default, still visible with presence=any
    const online = await watcher.request<QueryResult>('query', { query: {} })
    assert.ok(!online.entries.some((e) => e.key === own.key))
    assert.ok((await listedKeys(watcher)).includes(own.key))

    // while it is away, another node publishes
    const missed = await honest[4]!.request<Published>('publish', { listing: sampleListing('pi-four') })
    await allHold(honest, missed.key, missed.version, 'pi-four everywhere')

    // restarted without any bootstrap peer: everything it had is still there
    const restarted = await cluster.start('n3', [])
    assert.equal(restarted.peerId, provider.peerId, 'same identity after restart')
    assert.equal(
      (await restarted.request<Listing | null>('latest', { key: own.key }))?.body.version,
      own.version,
    )
    assert.equal(
      (await restarted.request<Listing | null>('latest', { key: first.key }))?.body.version,
      updated.version,
    )
    // then it rejoins and catches up on what it missed
    await restarted.request('dial', { address: honest[0]!.addresses[0] })
    await restarted.request('awaitListing', { key: missed.key, version: missed.version, timeoutMs: 20_000 })
    honest.push(restarted)
    await waitFor(
      'pi-three online again',
      async () => (await watcher.request<Entry | null>('show', { key: own.key }))?.online === true,
    )
  })

  test('a node started later catches up on every listing', async () => {
    const expected = await listedKeys(honest[0]!)
    const late = await cluster.start('late', [honest[0]!.addresses[0]!])
    await allHold([late], first.key, updated.version, 'late node has the updated listing')
    await waitFor('late node has every listing', async () => {
      const keys = await listedKeys(late)
      return JSON.stringify(keys) === JSON.stringify(expected) ? keys : undefined
    })
    // the unlisted and the forged never show up
    const keys = await listedKeys(late)
    assert.ok(!keys.some((k) => k.endsWith('/pi-two')))
    const shown = await late.request<Entry>('show', { key: first.key })
    assert.equal(shown.listing.body.satsPerHour, 250)
  })
})
