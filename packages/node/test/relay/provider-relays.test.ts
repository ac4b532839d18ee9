import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { createServer, type Server } from 'node:net'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { ProviderRelaySchema } from '../../src/config/schema.js'
import {
  createLeaseExposer,
  createProviderRelays,
  pruneExposed,
  rankEndpointsForRenters,
  startProviderRelayRole,
  type ProviderRelays,
} from '../../src/daemon/provider-relays.js'
import { RpibError } from '../../src/errors.js'
import { createEventBus } from '../../src/api/events.js'
import type { LeaseContainer } from '../../src/containers/types.js'
import type { ProviderRental } from '../../src/rentals/rental-store.js'
import { logger } from '../../src/log.js'
import { createHttpIngress, type HttpIngress } from '../../src/relay/http-ingress.js'
import { relayLimits } from '../../src/relay/limits.js'
import { ownerLabel } from '../../src/relay/names.js'
import { newIdentity, startJumpRelay, until, type TestRelay } from './fixtures.js'

const log = logger('rpib:test:provider-relays')

function get(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

async function rejectsWithCode(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof RpibError && err.code === code)
}

describe('provider relays: tunnels held by the provider, listings re-signed, lease sites', () => {
  let r1: TestRelay
  let r2: TestRelay
  let ingress: HttpIngress
  let site: HttpServer
  let sshTarget: Server
  let relays: ProviderRelays | undefined

  before(async () => {
    r1 = await startJumpRelay()
    r2 = await startJumpRelay()
    ingress = createHttpIngress({
      relay: r1.relay,
      host: '127.0.0.1',
      port: 0,
      limits: relayLimits(),
      logger: log,
    })
    await ingress.start()
    site = createHttpServer((req, res) => res.end(`lease site ${req.url}`))
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve))
    sshTarget = createServer((s) => s.end('SSH-2.0-test\r\n'))
    await new Promise<void>((resolve) => sshTarget.listen(0, '127.0.0.1', resolve))
  })

  after(async () => {
    await relays?.stop()
    await ingress?.stop()
    await r1?.relay.stop()
    await r2?.relay.stop()
    site?.closeAllConnections()
    await new Promise<void>((resolve) => (site != null ? site.close(() => resolve()) : resolve()))
    await new Promise<void>((resolve) => (sshTarget != null ? sshTarget.close(() => resolve()) : resolve()))
  })

  it('holds tunnels on both relays, re-signs once per change (debounced), serves and drops a lease site', async () => {
    const id = await newIdentity()
    const published: string[][] = []
    const multiaddr = '/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWRelayOne/p2p-circuit'
    relays = createProviderRelays({
      identity: id,
      relays: [
        ProviderRelaySchema.parse({
          ssh: `127.0.0.1:${r1.port}`,
          hostKeyFingerprint: r1.relay.hostKeyFingerprint,
          httpPort: ingress.address().port,
          httpDomain: 'relay1.example',
          multiaddr,
        }),
        ProviderRelaySchema.parse({
          ssh: `127.0.0.1:${r2.port}`,
          hostKeyFingerprint: r2.relay.hostKeyFingerprint,
        }),
      ],
      sshTarget: { host: '127.0.0.1', port: (sshTarget.address() as { port: number }).port },
      republish: async (endpoints) => {
        published.push(endpoints)
      },
      logger: log,
      debounceMs: 200,
      backoff: { initialMs: 100, maxMs: 300 },
    })
    assert.equal(relays.sshName, `ssh.${ownerLabel(id.publicKey.raw)}.rpib`)
    relays.start()
    const both = [`ssh://127.0.0.1:${r1.port}`, multiaddr, `ssh://127.0.0.1:${r2.port}`].sort()
    await until(
      () => published.length > 0 && published.at(-1)!.length === 3,
      10_000,
      'listing with both relays',
    )
    assert.deepEqual([...published.at(-1)!].sort(), both)
    // the two tunnels came up one after the other, but the debounce re-signed the listing only once
    await new Promise((r) => setTimeout(r, 400))
    assert.equal(published.length, 1, `re-signed ${published.length} times: ${JSON.stringify(published)}`)
    for (const s of relays.tunnels().statuses()) assert.deepEqual(s.accepted, [`${relays.sshName}:22`])

    // expose a lease: only relay 1 runs HTTP ingress, so one URL, on its domain
    const owner = ownerLabel(id.publicKey.raw)
    const rentals = new Map([['a'.repeat(64), { renter: 'renter-1', status: 'active' }]])
    rentals.set('b'.repeat(64), { renter: 'renter-1', status: 'expired' })
    const expose = createLeaseExposer({
      relays,
      rental: (offerId) => rentals.get(offerId),
      leaseLabel: (offerId) => `l${offerId.slice(0, 31)}`,
      containerAddress: async () => '127.0.0.1',
    })
    const label = `l${'a'.repeat(31)}`
    const sitePort = (site.address() as { port: number }).port
    const { urls } = await expose('a'.repeat(64), sitePort, 'renter-1')
    assert.deepEqual(urls, [`http://${label}.${owner}.relay1.example:${ingress.address().port}/`])
    const host = `${label}.${owner}.relay1.example`
    const page = await until(
      () =>
        relays!
          .tunnels()
          .statuses()
          .every((s) => s.accepted.length === 2),
      10_000,
      'the site forward on both relays',
    ).then(() => get(ingress.address().port, host))
    assert.deepEqual(page, { status: 200, body: 'lease site /' })

    // only the renter of an active lease may expose, and only a real port
    await rejectsWithCode(expose('a'.repeat(64), sitePort, 'someone-else'), 'ERR_EXPOSE_UNKNOWN')
    await rejectsWithCode(expose('c'.repeat(64), sitePort, 'renter-1'), 'ERR_EXPOSE_UNKNOWN')
    await rejectsWithCode(expose('b'.repeat(64), sitePort, 'renter-1'), 'ERR_EXPOSE_NOT_ACTIVE')
    await rejectsWithCode(expose('a'.repeat(64), 0, 'renter-1'), 'ERR_EXPOSE_PORT')

    // the lease ends: its site is dropped and the relay answers 502
    pruneExposed(relays, () => false)
    assert.deepEqual(relays.exposedLabels(), [])
    await until(
      () =>
        relays!
          .tunnels()
          .statuses()
          .every((s) => s.accepted.length === 1),
      10_000,
      'the site forward to be dropped',
    )
    assert.equal((await get(ingress.address().port, host)).status, 502)

    // relay 2 dies: the listing is re-signed with relay 1 only
    await r2.relay.stop()
    await until(() => published.at(-1)!.length === 2, 10_000, 'listing re-signed without relay 2')
    assert.deepEqual([...published.at(-1)!].sort(), [`ssh://127.0.0.1:${r1.port}`, multiaddr].sort())
    assert.deepEqual(relays.endpoints().sort(), [`ssh://127.0.0.1:${r1.port}`, multiaddr].sort())
  })

  it('a failed re-sign is retried, so the listing does not keep stale relays', async () => {
    const relay = await startJumpRelay()
    const attempts: string[][] = []
    const retrying = createProviderRelays({
      identity: await newIdentity(),
      relays: [ProviderRelaySchema.parse({ ssh: `127.0.0.1:${relay.port}` })],
      sshTarget: { host: '127.0.0.1', port: 1 },
      republish: async (endpoints) => {
        attempts.push(endpoints)
        if (attempts.length === 1) throw new Error('the market is busy')
      },
      logger: log,
      debounceMs: 50,
      retryMs: 100,
    })
    retrying.start()
    try {
      await until(() => attempts.length >= 2, 10_000, 'a second attempt')
      assert.deepEqual(attempts.slice(0, 2), [
        [`ssh://127.0.0.1:${relay.port}`],
        [`ssh://127.0.0.1:${relay.port}`],
      ])
      await new Promise((r) => setTimeout(r, 300))
      assert.equal(attempts.length, 2, 'no more attempts once one succeeded')
    } finally {
      await retrying.stop()
      await relay.relay.stop()
    }
  })

  it('the daemon role: announces re-signs as events and drops a site when its lease ends', async () => {
    const relay = await startJumpRelay()
    const events = createEventBus()
    const seen: unknown[] = []
    const unsubscribe = events.subscribe((e) => {
      if (e.type === 'provider.relays') seen.push(e.data)
    })
    const renter = 'renter-peer'
    const offerId = 'f'.repeat(64)
    let status = 'active'
    const role = startProviderRelayRole({
      identity: await newIdentity(),
      relays: [ProviderRelaySchema.parse({ ssh: `127.0.0.1:${relay.port}`, httpPort: 8080 })],
      sshTarget: { host: '127.0.0.1', port: 1 },
      events,
      leases: {
        get: (id) =>
          id === offerId
            ? ({ request: { signer: renter }, state: { status } } as unknown as ProviderRental)
            : undefined,
      },
      runtime: { getLease: async () => ({ ipAddress: '127.0.0.1' }) as LeaseContainer },
      republish: async () => {},
      logger: log,
      debounceMs: 50,
    })
    try {
      await until(() => seen.length === 1, 10_000, 'the provider.relays event')
      assert.deepEqual(seen[0], { relays: [`ssh://127.0.0.1:${relay.port}`] })
      const { urls } = await role.expose(offerId, 8000, renter)
      assert.equal(urls.length, 1)
      assert.deepEqual(role.relays.exposedLabels(), [`l${'f'.repeat(31)}`])
      // another lease's change leaves the site alone; this lease's end drops it
      events.publish('lease.updated', { offerId: 'e'.repeat(64), status: 'expired' })
      assert.equal(role.relays.exposedLabels().length, 1)
      status = 'expired'
      events.publish('lease.updated', { offerId, status: 'expired' })
      assert.deepEqual(role.relays.exposedLabels(), [])
      await assert.rejects(role.expose(offerId, 8000, renter), /only an active lease/)
    } finally {
      unsubscribe()
      await role.stop()
      await relay.relay.stop()
    }
  })

  it('a lease cannot be exposed while no relay with HTTP ingress is up', async () => {
    const id = await newIdentity()
    const lonely = createProviderRelays({
      identity: id,
      relays: [],
      sshTarget: { host: '127.0.0.1', port: 1 },
      republish: async () => {},
      logger: log,
    })
    lonely.start()
    try {
      const expose = createLeaseExposer({
        relays: lonely,
        rental: () => ({ renter: 'r', status: 'active' }),
        leaseLabel: () => 'lease1',
        containerAddress: async () => '127.0.0.1',
      })
      await rejectsWithCode(expose('a'.repeat(64), 80, 'r'), 'ERR_EXPOSE_NO_RELAY')
      assert.deepEqual(lonely.exposedLabels(), [], 'a refused site is not kept')
      const noContainer = createLeaseExposer({
        relays: lonely,
        rental: () => ({ renter: 'r', status: 'active' }),
        leaseLabel: () => 'lease1',
        containerAddress: async () => undefined,
      })
      await rejectsWithCode(noContainer('a'.repeat(64), 80, 'r'), 'ERR_EXPOSE_NO_CONTAINER')
    } finally {
      await lonely.stop()
    }
  })

  it('config: provider.relays entries are checked at the edge', () => {
    assert.equal(
      ProviderRelaySchema.safeParse({ ssh: 'relay.example.org:2222', httpPort: 8080 }).success,
      true,
    )
    assert.equal(ProviderRelaySchema.safeParse({ ssh: '[::1]:2222' }).success, true)
    for (const bad of [
      { ssh: 'relay.example.org' },
      { ssh: 'relay:22; rm -rf /' },
      { ssh: 'relay:2222', hostKeyFingerprint: 'MD5:abc' },
      { ssh: 'relay:2222', httpPort: 0 },
      { ssh: 'relay:2222', multiaddr: 'not-a-multiaddr' },
      { ssh: 'relay:2222', typo: true },
    ])
      assert.equal(ProviderRelaySchema.safeParse(bad).success, false, JSON.stringify(bad))
  })
})

describe('lease SSH endpoints, ranked for renters', () => {
  it('puts public addresses first, then relay circuits, then LAN and loopback, at most eight', () => {
    const p = '/p2p/12D3KooWProvider'
    const ranked = rankEndpointsForRenters([
      `/ip4/127.0.0.1/tcp/4002${p}`,
      `/ip4/192.168.77.2/tcp/4002${p}`,
      `/ip4/10.77.0.1/tcp/4001/p2p/12D3KooWRelay/p2p-circuit${p}`,
      `/ip4/203.0.113.7/tcp/4002${p}`,
      `/ip6/::1/tcp/4002${p}`,
      `/ip6/2001:db8::1/tcp/4002${p}`,
      `/ip4/172.20.0.5/tcp/4002${p}`,
    ])
    assert.deepEqual(ranked, [
      `/ip4/203.0.113.7/tcp/4002${p}`,
      `/ip6/2001:db8::1/tcp/4002${p}`,
      `/ip4/10.77.0.1/tcp/4001/p2p/12D3KooWRelay/p2p-circuit${p}`,
      `/ip4/192.168.77.2/tcp/4002${p}`,
      `/ip4/172.20.0.5/tcp/4002${p}`,
      `/ip4/127.0.0.1/tcp/4002${p}`,
      `/ip6/::1/tcp/4002${p}`,
    ])
    const many = Array.from({ length: 12 }, (_, i) => `/ip4/192.168.1.${i}/tcp/1${p}`)
    assert.equal(rankEndpointsForRenters(many).length, 8)
  })
})
