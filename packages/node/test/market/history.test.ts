import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { Events, type AccessControllerFactory, type EventsDatabase } from '@orbitdb/core'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  createLeaseState,
  encodeRecord,
  leaseReducer,
  offersDbName,
  offersEpoch,
  recordId,
  signRecord,
  type LeaseEvent,
} from '@rpib/protocol'
import { createEventBus } from '../../src/api/events.js'
import { ConfigSchema } from '../../src/config/schema.js'
import {
  createHistoryJournal,
  plannedEntries,
  type HistoryJournal,
  type JournalRental,
} from '../../src/daemon/history-service.js'
import { createJsonLogger } from '../../src/daemon/json-log.js'
import type { ServiceContext } from '../../src/daemon/service.js'
import { createMarketNode, type MarketNode } from '../../src/market/market-node.js'
import {
  OFFERS_ACCESS_TYPE,
  offersAccessAddress,
  openHistory,
  signHistory,
} from '../../src/market/offers-log.js'
import { OutageTracker, type WatchedLease } from '../../src/market/outages.js'
import { ReputationBook } from '../../src/market/reputation-book.js'
import { randomSandboxNetworkId } from '../../src/p2p/network-id.js'
import { runCli } from '../helpers/cli.js'
import { loopbackP2p, sampleListing, waitFor } from './fixtures.js'

const HOUR = 3_600_000
const INVOICE_ADDRESS = 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080'
const REFUND_ADDRESS = 'bcrt1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qzf5kxr'
const SSH_KEY =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl renter@laptop'
const FINGERPRINT = 'SHA256:' + 'Q'.repeat(43)

interface Party {
  key: Ed25519PrivateKey
  id: string
}
const partyOf = (key: Ed25519PrivateKey): Party => ({ key, id: peerIdFromPrivateKey(key).toString() })

/** A rental as the provider's lease manager keeps it, built from real signed records. */
async function rental(
  provider: Party,
  renter: Party,
  deviceId: string,
  outcome: 'unpaid' | 'active' | 'expired',
  t0 = Date.now() - 2 * HOUR,
): Promise<JournalRental> {
  const listingKey = `${provider.id}/${deviceId}`
  const request = await signRecord(
    'rent-request',
    {
      listingKey,
      listingVersion: 1,
      durationSeconds: 3600,
      image: 'rpib/debian:bookworm',
      sshPublicKeys: [SSH_KEY],
      refundAddress: REFUND_ADDRESS,
    },
    renter.key,
    { now: t0 },
  )
  const offer = await signRecord(
    'offer',
    {
      requestId: recordId(request),
      listingKey,
      renter: renter.id,
      durationSeconds: 3600,
      priceSats: 1000,
      invoice: { network: 'regtest', address: INVOICE_ADDRESS, amountSats: 1000, expiresAt: t0 + 1_800_000 },
    },
    provider.key,
    { now: t0 },
  )
  const offerId = recordId(offer)
  const events: LeaseEvent[] = [
    { type: 'offer', at: t0, priceSats: 1000, durationSeconds: 3600, invoiceExpiresAt: t0 + 1_800_000 },
    { type: 'accept', at: t0 },
  ]
  const r: JournalRental = {
    offerId,
    invoiceId: 'invoice-1',
    request,
    offer,
    state: createLeaseState(t0, 3600),
    refunds: [],
  }
  if (outcome !== 'unpaid') {
    events.push(
      { type: 'payment', at: t0 + 1, amountSats: 1000 },
      { type: 'provision-start', at: t0 + 2 },
      { type: 'activate', at: t0 + 3 },
    )
    r.lease = await signRecord(
      'lease',
      {
        leaseId: offerId,
        offerId,
        renter: renter.id,
        listingKey,
        startsAt: t0 + 3,
        expiresAt: t0 + 3 + HOUR,
        ssh: {
          user: 'lease1',
          endpoints: ['/ip4/127.0.0.1/tcp/1/p2p/' + provider.id],
          hostKeyFingerprint: FINGERPRINT,
        },
      },
      provider.key,
      { now: t0 + 3 },
    )
  }
  if (outcome === 'expired') {
    events.push({ type: 'expire', at: t0 + 3 + HOUR })
    r.end = await signRecord(
      'lease-end',
      { leaseId: offerId, reason: 'expired', endedAt: t0 + 3 + HOUR, servedSeconds: 3600, refundDueSats: 0 },
      provider.key,
      { now: t0 + 3 + HOUR },
    )
  }
  r.state = events.reduce(leaseReducer, r.state)
  return r
}

describe('the journal plans one entry per fact of a rental', () => {
  let provider: Party
  let renter: Party

  before(async () => {
    provider = partyOf(await generateKeyPair('Ed25519'))
    renter = partyOf(await generateKeyPair('Ed25519'))
  })

  test('an unpaid offer is not history; a served lease is offer, lease and lease-end', async () => {
    assert.deepEqual(plannedEntries(await rental(provider, renter, 'pi', 'unpaid'), provider.id), [])
    const done = await rental(provider, renter, 'pi', 'expired')
    const entries = plannedEntries(done, provider.id)
    assert.deepEqual(
      entries.map((e) => e.key),
      [`offer/${done.offerId}`, `lease/${done.offerId}`, `lease-end/${done.offerId}`],
    )
    assert.equal(entries[0]!.body.amountSats, 1000)
    assert.equal(entries[0]!.private?.invoiceAddress, INVOICE_ADDRESS)
    assert.deepEqual(entries[1]!.private?.ssh, done.lease!.body.ssh)
    assert.equal(entries[2]!.body.reason, 'expired')
    assert.equal(entries[2]!.body.recordId, recordId(done.end!))
  })

  test('refunds made and a refund that failed are both planned, with what is owed', async () => {
    const r = await rental(provider, renter, 'pi', 'active')
    r.state = leaseReducer(r.state, { type: 'cancel', at: r.state.updatedAt + 60_000 })
    const due = r.state.refundDueSats ?? 0
    assert.ok(due > 100)
    r.refunds.push({ txid: 'ab'.repeat(32), amountSats: 100, at: Date.now() })
    r.refundError = 'refund of 900 sats failed: wallet has no coins'
    const entries = plannedEntries(r, provider.id)
    const refund = entries.find((e) => e.body.kind === 'refund')
    assert.equal(refund?.key, `refund/${r.offerId}/0`)
    assert.deepEqual(refund?.private, { txid: 'ab'.repeat(32), refundAddress: REFUND_ADDRESS })
    const failed = entries.find((e) => e.body.kind === 'refund-failed')
    assert.equal(failed?.key, `refund-failed/${r.offerId}/1`)
    assert.equal(failed?.body.amountSats, due - 100)
    assert.match(failed?.private?.detail ?? '', /wallet has no coins/)
  })
})

describe('outages seen by a renter', () => {
  const lease: WatchedLease = {
    leaseId: 'aa'.repeat(32),
    provider: 'P',
    listingKey: 'P/pi',
    startsAt: 0,
    expiresAt: 100_000,
  }

  test('open after the offline timeout without beats, close when a beat arrives, and can recur', () => {
    const tracker = new OutageTracker({ offlineAfterMs: 1000, watchingSince: 0 })
    let seen: number | undefined = 500
    const lastSeen = () => seen
    assert.equal(tracker.tick(1400, [lease], lastSeen), false, 'within the timeout')
    assert.equal(tracker.tick(1600, [lease], lastSeen), true)
    assert.deepEqual(
      tracker.list().map((o) => [o.startsAt, o.endsAt, o.seq]),
      [[500, undefined, 0]],
    )
    assert.deepEqual(tracker.unpublished(), [], 'an outage is reported once it is over')
    seen = 5000
    tracker.tick(5100, [lease], lastSeen)
    assert.deepEqual(
      tracker.unpublished().map((o) => [o.startsAt, o.endsAt, o.seq]),
      [[500, 5000, 0]],
    )
    tracker.markPublished(lease.leaseId, 0)
    assert.equal(tracker.tick(5900, [lease], lastSeen), false)
    tracker.tick(6100, [lease], lastSeen)
    // the lease ends during the second outage: it closes at the lease end
    tracker.tick(200_000, [lease], lastSeen)
    assert.deepEqual(
      tracker.unpublished().map((o) => [o.startsAt, o.endsAt, o.seq]),
      [[5000, 100_000, 1]],
    )
  })

  test('a provider never heard is judged from when watching began; restored state carries on', () => {
    const tracker = new OutageTracker({ offlineAfterMs: 1000, watchingSince: 10_000 })
    assert.equal(
      tracker.tick(10_500, [lease], () => undefined),
      false,
    )
    assert.equal(
      tracker.tick(11_500, [lease], () => undefined),
      true,
    )
    const restored = new OutageTracker({ offlineAfterMs: 1000, watchingSince: 20_000 }, tracker.list())
    // the lease is no longer held (it ended while the node was down): the outage closes
    restored.tick(30_000, [], () => undefined)
    assert.deepEqual(
      restored.unpublished().map((o) => [o.startsAt, o.endsAt]),
      [[10_000, 30_000]],
    )
  })
})

function contextFor(home: string, key: Ed25519PrivateKey, networkId: string): ServiceContext {
  const quiet = new Writable({ write: (_chunk, _enc, done) => done() })
  return {
    home,
    config: ConfigSchema.parse({ network: networkId }),
    identity: {
      privateKey: key,
      peerId: peerIdFromPrivateKey(key),
      created: false,
      path: join(home, 'identity.key'),
    },
    events: createEventBus(),
    log: createJsonLogger({ level: 'error', stream: quiet }),
  }
}

describe('history in the offers log across nodes', { timeout: 120_000 }, () => {
  const networkId = randomSandboxNetworkId()
  let dir: string
  let provider: Party
  let renter: Party
  let absent: Party
  let a: MarketNode
  let r: MarketNode
  let journalA: HistoryJournal | undefined
  let journalR: HistoryJournal | undefined
  const rentals: JournalRental[] = []
  const held: WatchedLease[] = []

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rpib-history-'))
    provider = partyOf(await generateKeyPair('Ed25519'))
    renter = partyOf(await generateKeyPair('Ed25519'))
    absent = partyOf(await generateKeyPair('Ed25519'))
    a = await createMarketNode({
      dataDir: join(dir, 'a'),
      networkId,
      privateKey: provider.key,
      p2p: loopbackP2p(),
      market: { presenceIntervalMs: 200, offlineAfterMs: 2000 },
    })
    r = await createMarketNode({
      dataDir: join(dir, 'r'),
      networkId,
      privateKey: renter.key,
      p2p: loopbackP2p(a.addresses()),
      market: { presenceIntervalMs: 200, offlineAfterMs: 300 },
    })
    await a.publishListing(sampleListing('pi-hist', { satsPerHour: 77 }))
  })

  after(async () => {
    await journalA?.stop()
    await journalR?.stop()
    await r?.stop()
    await a?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  const startJournal = async (node: MarketNode, who: Party, home: string): Promise<HistoryJournal> => {
    const journal = createHistoryJournal(contextFor(home, who.key, networkId), {
      market: () => node,
      providerRentals: () => rentals,
      renterLeases: () => held,
      tickMs: 100,
    })
    await journal.start()
    return journal
  }

  test('a provider’s rental outcomes land once, sealed, and another node’s `rpib market list` shows the reputation', async () => {
    const epoch = offersEpoch(Date.now())
    rentals.push(await rental(provider, renter, 'pi-hist', 'expired'))
    journalA = await startJournal(a, provider, join(dir, 'a'))
    await journalA.sync()
    const mine = await a.offers.records(epoch)
    assert.deepEqual(mine.map((x) => x.body.kind).sort(), ['lease', 'lease-end', 'offer'])

    // the renter's node gets them over the network and can open what was sealed to it
    const replicated = await waitFor('history replicated to the renter', async () => {
      const records = await r.offers.records(epoch)
      return records.length >= 3 ? records : undefined
    })
    const leaseEntry = replicated.find((x) => x.body.kind === 'lease')!
    assert.ok(!Buffer.from(encodeRecord(leaseEntry)).toString('latin1').includes('lease1'))
    assert.equal(openHistory(leaseEntry, renter.key).ssh?.user, 'lease1')

    // idempotent: more syncs and a restarted journal append nothing new
    await journalA.sync()
    await journalA.stop()
    journalA = await startJournal(a, provider, join(dir, 'a'))
    await journalA.sync()
    assert.equal((await a.offers.records(epoch)).length, 3)

    // a third node, the CLI, syncs from the provider and shows the reputation in the listing
    const home = join(dir, 'cli')
    await mkdir(home, { recursive: true })
    const { listen, transports, mdns, dht, relayClient, dcutr, autonat } = loopbackP2p()
    await writeFile(
      join(home, 'config.json'),
      JSON.stringify({
        network: networkId,
        p2p: { listen, transports, mdns, dht, relayClient, dcutr, autonat },
      }),
    )
    type Listed = {
      entries: {
        key: string
        reputation: number
        reputationDetail: { completedLeases: number; leases: number }
      }[]
    }
    // the CLI syncs for --wait seconds and answers; a loaded machine may need a second sync (bounded)
    let out: Listed = { entries: [] }
    for (let attempt = 0; attempt < 4 && out.entries.length === 0; attempt++) {
      const res = await runCli([
        '--home',
        home,
        '--json',
        'market',
        'list',
        '--bootstrap',
        a.addresses()[0]!,
        '--wait',
        '3',
        '--min-reputation',
        '1',
        '--sort',
        'reputation',
      ])
      assert.equal(res.code, 0, res.stderr)
      out = JSON.parse(res.stdout) as Listed
    }
    assert.deepEqual(
      out.entries.map((e) => [
        e.key,
        e.reputation,
        e.reputationDetail.completedLeases,
        e.reputationDetail.leases,
      ]),
      [[`${provider.id}/pi-hist`, 1, 1, 1]],
    )
    const table = await runCli(['--home', home, 'market', 'show', `${provider.id}/pi-hist`, '--wait', '0'])
    assert.equal(table.code, 0, table.stderr)
    assert.match(table.stdout, /reputation 1: 1 of 1 leases completed/)
  })

  test('a refund that could not be made is visible in the public log and counts against the provider', async () => {
    const epoch = offersEpoch(Date.now())
    const cancelled = await rental(provider, renter, 'pi-hist', 'active')
    cancelled.state = leaseReducer(cancelled.state, {
      type: 'cancel',
      at: cancelled.state.updatedAt + 60_000,
    })
    cancelled.end = await signRecord(
      'lease-end',
      {
        leaseId: cancelled.offerId,
        reason: 'cancelled',
        endedAt: cancelled.state.endedAt ?? 0,
        servedSeconds: cancelled.state.servedSeconds ?? 0,
        refundDueSats: cancelled.state.refundDueSats ?? 0,
      },
      provider.key,
    )
    cancelled.refundError = 'refund failed: the wallet has no spendable coins'
    rentals.push(cancelled)
    await journalA!.sync()
    const failed = (await a.offers.records(epoch)).find(
      (x) => x.body.kind === 'refund-failed' && x.body.leaseId === cancelled.offerId,
    )
    assert.ok(failed, 'refund-failed entry in the log')
    assert.equal(failed.body.amountSats, cancelled.state.refundDueSats)
    assert.match(openHistory(failed, renter.key).detail ?? '', /no spendable coins/)
    const book = new ReputationBook({ offers: a.offers, index: a.index })
    await book.start()
    try {
      const rep = book.get(provider.id)
      assert.equal(rep.failedRefunds, 1)
      assert.equal(rep.failedRefundSats, cancelled.state.refundDueSats)
      assert.equal(rep.score, 1 - 3)
    } finally {
      book.stop()
    }
  })

  test('forged history is refused by the log', async () => {
    // the renter signs a "lease end" in the provider's name
    const forged = await signHistory(
      {
        kind: 'lease-end',
        leaseId: 'fe'.repeat(32),
        listingKey: `${provider.id}/pi-hist`,
        provider: provider.id,
        renter: renter.id,
        reason: 'expired',
      },
      undefined,
      renter.key,
      renter.id,
    )
    await assert.rejects(r.offers.append(encodeRecord(forged)), /must be signed by/)
  })

  test('a renter records an outage from missing presence and reports it, renter-signed, when it ends', async () => {
    // a provider that never beats: its lease with this renter is in the public log (provider-signed)
    const leaseId = 'dd'.repeat(32)
    const now = Date.now()
    const leaseEntry = await signHistory(
      {
        kind: 'lease',
        leaseId,
        listingKey: `${absent.id}/pi-gone`,
        provider: absent.id,
        renter: renter.id,
        startsAt: now - 60_000,
        endsAt: now + HOUR,
      },
      undefined,
      absent.key,
      absent.id,
    )
    await r.offers.append(encodeRecord(leaseEntry))
    held.push({
      leaseId,
      provider: absent.id,
      listingKey: `${absent.id}/pi-gone`,
      startsAt: now - 60_000,
      expiresAt: now + HOUR,
    })
    journalR = await startJournal(r, renter, join(dir, 'r'))
    const open = await waitFor('the outage to open', async () => {
      const o = journalR!.outages()
      return o.length === 1 ? o[0] : undefined
    })
    assert.equal(open.endsAt, undefined)
    assert.equal(open.provider, absent.id)
    const stored = await waitFor('the outage to be persisted', async () => {
      const text = await readFile(join(dir, 'r', 'history', 'outages.json'), 'utf8').catch(() => undefined)
      return text === undefined ? undefined : (JSON.parse(text) as { outages: { leaseId: string }[] })
    })
    assert.deepEqual(
      stored.outages.map((o) => o.leaseId),
      [leaseId],
    )

    // the lease ends (the renter no longer holds it): the outage closes and goes into the log
    held.length = 0
    const book = new ReputationBook({ offers: r.offers, index: r.index })
    await book.start()
    try {
      const rep = await waitFor('the outage to count against the provider', async () => {
        const x = book.get(absent.id)
        return x.outages === 1 ? x : undefined
      })
      assert.ok(rep.outageSeconds > 0)
      assert.equal(rep.score, -1)
      await waitFor('the outage to be marked reported', () => journalR!.outages()[0]?.published === true)
    } finally {
      book.stop()
    }
  })
})

test('market list filters: bad values are one-line usage errors', async () => {
  const home = await mkdtemp(join(tmpdir(), 'rpib-history-cli-'))
  try {
    const [cpus, reputation, sort, price] = await Promise.all([
      runCli(['--home', home, 'market', 'list', '--wait', '0', '--min-cpus', 'four']),
      runCli(['--home', home, 'market', 'list', '--wait', '0', '--min-reputation', 'good']),
      runCli(['--home', home, 'market', 'list', '--wait', '0', '--sort', 'fame']),
      runCli(['--home', home, 'market', 'list', '--wait', '0', '--max-price', '-5']),
    ])
    assert.notEqual(cpus.code, 0)
    assert.match(cpus.stderr, /--min-cpus must be a non-negative integer, got "four"/)
    assert.notEqual(reputation.code, 0)
    assert.match(reputation.stderr, /--min-reputation must be a number, got "good"/)
    assert.notEqual(sort.code, 0)
    assert.match(
      sort.stderr,
      /argument 'fame' is invalid.*price, cpuScore, memory, disk, reputation, newest, cpu/s,
    )
    assert.notEqual(price.code, 0)
    assert.match(price.stderr, /--max-price must be a non-negative integer/)
    for (const r of [cpus, reputation, sort, price])
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace')
  } finally {
    await rm(home, { recursive: true, force: true })
  }
})

describe('a hostile node writing forged history straight into OrbitDB', { timeout: 60_000 }, () => {
  const networkId = randomSandboxNetworkId()
  let dir: string
  let honest: MarketNode
  let hostile: MarketNode
  let hostileLog: EventsDatabase | undefined

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rpib-history-hostile-'))
    honest = await createMarketNode({ dataDir: join(dir, 'honest'), networkId, p2p: loopbackP2p() })
    hostile = await createMarketNode({
      dataDir: join(dir, 'hostile'),
      networkId,
      p2p: loopbackP2p(honest.addresses()),
    })
  })

  after(async () => {
    await hostileLog?.close()
    await hostile?.stop()
    await honest?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  test('the honest node refuses entries not signed by the party they speak for, and keeps its own', async () => {
    const epoch = offersEpoch(Date.now())
    const provider = partyOf(await generateKeyPair('Ed25519'))
    const renter = partyOf(await generateKeyPair('Ed25519'))
    const base = {
      leaseId: 'ab'.repeat(32),
      listingKey: `${provider.id}/pi`,
      provider: provider.id,
      renter: renter.id,
    }
    const real = await signHistory(
      { ...base, kind: 'lease', startsAt: 1, endsAt: 2 },
      undefined,
      provider.key,
      provider.id,
    )
    await honest.offers.append(encodeRecord(real))

    // the hostile node swaps its log for one whose access controller admits anything, at the same address
    await hostile.offers.stop()
    const address = await offersAccessAddress(networkId, epoch)
    const permissive: AccessControllerFactory = async () => ({
      type: OFFERS_ACCESS_TYPE,
      address,
      write: ['*'],
      canAppend: async () => true,
    })
    hostileLog = (await hostile.orbitdb.open(offersDbName(networkId, epoch), {
      Database: Events(),
      AccessController: permissive,
    })) as EventsDatabase
    const forged = await signHistory(
      { ...base, kind: 'lease-end', reason: 'expired', endsAt: 3 },
      undefined,
      renter.key,
      renter.id,
    )
    await hostileLog.add({ record: encodeRecord(forged) })

    await waitFor(
      'the forged entry to reach and be refused by the honest node',
      () => honest.offers.refused > 0,
    )
    const kept = await honest.offers.records(epoch)
    assert.deepEqual(
      kept.map((r) => [r.body.kind, r.signer]),
      [['lease', provider.id]],
    )
  })
})
