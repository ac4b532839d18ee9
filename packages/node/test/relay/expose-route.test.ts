/**
 * `expose` end to end on loopback: the renter daemon's route POST /api/rentals/:offerId/expose → the rent
 * protocol over real libp2p → the provider's negotiator → the provider relays, which serve the lease's
 * site through a real jump relay and HTTP ingress.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { createServer, type Server } from 'node:http'
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Command } from 'commander'
import { addLeaseExpose } from '../../src/cli/lease-expose.js'
import { ProviderRelaySchema } from '../../src/config/schema.js'
import { UsageError } from '../../src/errors.js'
import {
  createLeaseExposer,
  createProviderRelays,
  type ProviderRelays,
} from '../../src/daemon/provider-relays.js'
import { registerRenterExpose } from '../../src/daemon/renter-expose.js'
import { logger } from '../../src/log.js'
import { createHttpIngress, type HttpIngress } from '../../src/relay/http-ingress.js'
import { relayLimits } from '../../src/relay/limits.js'
import { createRentalNegotiator, type RentalNegotiator } from '../../src/rentals/negotiation.js'
import { createTunnelLibp2p } from '../../src/tunnel/libp2p-node.js'
import { startTestDaemon, type RunningDaemon } from '../api/fixture.js'
import { newIdentity, startJumpRelay, until, type TestRelay } from './fixtures.js'

const log = logger('rpib:test:expose')
const ACTIVE = 'a'.repeat(64)
const PENDING = 'b'.repeat(64)
const STRANGERS = 'c'.repeat(64)

function httpGet(port: number, host: string): Promise<{ status: number; body: string }> {
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

describe('expose: renter route → rent protocol → provider relays → HTTP ingress', () => {
  let relay: TestRelay
  let ingress: HttpIngress
  let site: Server
  let providerNode: Libp2p
  let renterNode: Libp2p
  let negotiator: RentalNegotiator
  let relays: ProviderRelays
  let renterDaemon: RunningDaemon
  let providerOnline = true

  before(async () => {
    relay = await startJumpRelay()
    ingress = createHttpIngress({
      relay: relay.relay,
      host: '127.0.0.1',
      port: 0,
      limits: relayLimits(),
      logger: log,
    })
    await ingress.start()
    site = createServer((req, res) => res.end(`site of the lease ${req.url}`))
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve))

    const providerKey = await newIdentity()
    const renterKey = await newIdentity()
    const renter = peerIdFromPrivateKey(renterKey).toString()
    providerNode = await createTunnelLibp2p({ privateKey: providerKey, listen: ['/ip4/127.0.0.1/tcp/0'] })
    renterNode = await createTunnelLibp2p({ privateKey: renterKey, listen: [] })
    relays = createProviderRelays({
      identity: providerKey,
      relays: [
        ProviderRelaySchema.parse({
          ssh: `127.0.0.1:${relay.port}`,
          hostKeyFingerprint: relay.relay.hostKeyFingerprint,
          httpPort: ingress.address().port,
          httpDomain: 'relay.example',
        }),
      ],
      sshTarget: { host: '127.0.0.1', port: 1 },
      republish: async () => {},
      logger: log,
    })
    relays.start()
    await relays.tunnels().waitForUp(1, 10_000)
    const rentals = new Map([
      [ACTIVE, { renter, status: 'active' as const }],
      [PENDING, { renter, status: 'awaiting-payment' as const }],
      [
        STRANGERS,
        { renter: peerIdFromPrivateKey(await newIdentity()).toString(), status: 'active' as const },
      ],
    ])
    const sitePort = (site.address() as { port: number }).port
    const expose = createLeaseExposer({
      relays,
      rental: (offerId) => rentals.get(offerId),
      leaseLabel: (offerId) => `l${offerId.slice(0, 31)}`,
      // the "container" is the local site; the port the renter names must be the one it listens on
      containerAddress: async () => '127.0.0.1',
    })
    negotiator = createRentalNegotiator({
      privateKey: providerKey,
      peerId: peerIdFromPrivateKey(providerKey),
      listing: () => undefined,
      busySlots: () => 0,
      invoices: {
        create: () => Promise.reject(new Error('no invoices in this test')),
      },
      bitcoinNetwork: 'regtest',
      status: (offerId) => {
        const r = rentals.get(offerId)
        return r === undefined ? undefined : { ...r, paidSats: 0 }
      },
      expose: (offerId, port, who) => expose(offerId, port === 8000 ? sitePort : port, who),
      logger: log,
    })
    await negotiator.start(providerNode)
    await renterNode.dial(providerNode.getMultiaddrs()[0]!)

    const provider = providerNode.peerId.toString()
    renterDaemon = await startTestDaemon({}, () => [
      {
        name: 'renter-expose',
        async start() {},
        async stop() {},
        registerRoutes: (router) =>
          registerRenterExpose(router, {
            libp2p: () => renterNode,
            rental: (offerId) => {
              if (offerId === 'd'.repeat(64)) return { provider, status: 'offered' }
              return rentals.has(offerId) && providerOnline ? { provider, status: 'active' } : undefined
            },
          }),
      },
    ])
  })

  after(async () => {
    await renterDaemon?.close()
    await negotiator?.stop()
    await relays?.stop()
    await renterNode?.stop()
    await providerNode?.stop()
    await ingress?.stop()
    await relay?.relay.stop()
    site?.closeAllConnections()
    await new Promise<void>((resolve) => (site != null ? site.close(() => resolve()) : resolve()))
  })

  const post = (offerId: string, body: unknown) =>
    fetch(`http://127.0.0.1:${renterDaemon.port}/api/rentals/${offerId}/expose`, {
      method: 'POST',
      headers: { authorization: `Bearer ${renterDaemon.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }).then(async (res) => ({ status: res.status, json: (await res.json()) as Record<string, unknown> }))

  it('answers with the site URL, and the site is served through the relay', async () => {
    const r = await post(ACTIVE, { port: 8000 })
    assert.equal(r.status, 200, JSON.stringify(r.json))
    const urls = r.json.urls as string[]
    assert.equal(urls.length, 1)
    const url = new URL(urls[0]!)
    assert.match(url.hostname, /^l[a]{31}\.[a-z2-7]{52}\.relay\.example$/)
    assert.equal(Number(url.port), ingress.address().port)
    await until(() => relays.tunnels().statuses()[0]!.accepted.length === 2, 10_000, 'the site forward')
    assert.deepEqual(await httpGet(ingress.address().port, url.host), {
      status: 200,
      body: 'site of the lease /',
    })
  })

  it('passes the provider’s refusal through with its code', async () => {
    const pending = await post(PENDING, { port: 8000 })
    assert.equal(pending.status, 502)
    assert.equal(pending.json.code, 'ERR_EXPOSE_NOT_ACTIVE')
    // an offer of someone else: the provider answers as if it did not exist
    const other = await post(STRANGERS, { port: 8000 })
    assert.equal(other.status, 502)
    assert.equal(other.json.code, 'ERR_RENT_UNKNOWN_OFFER')
  })

  it('refuses bad input and leases it cannot expose before asking the provider', async () => {
    assert.equal((await post(ACTIVE, { port: 0 })).status, 400)
    assert.equal((await post(ACTIVE, { port: '80' })).status, 400)
    assert.equal((await post(ACTIVE, { port: 80, extra: 1 })).status, 400)
    assert.equal((await post('not-an-id', { port: 80 })).status, 400)
    const unknown = await post('e'.repeat(64), { port: 80 })
    assert.equal(unknown.status, 404)
    assert.equal(unknown.json.code, 'ERR_UNKNOWN_RENTAL')
    const offered = await post('d'.repeat(64), { port: 80 })
    assert.equal(offered.status, 409)
    assert.equal(offered.json.code, 'ERR_EXPOSE_NOT_ACTIVE')
  })

  it('a provider that went away gives a clear error', async () => {
    await negotiator.stop()
    await providerNode.stop()
    try {
      const r = await post(ACTIVE, { port: 8000 })
      assert.equal(r.status, 502)
      assert.equal(r.json.code, 'ERR_PROVIDER_UNREACHABLE', JSON.stringify(r.json))
      assert.match(String(r.json.detail), /is it online\?/)
    } finally {
      providerOnline = false
    }
  })

  it('rpib lease expose refuses a port that is not 1-65535 before it contacts the daemon', async () => {
    for (const port of ['0', '65536', '80x', '-1']) {
      const program = new Command().exitOverride().option('--home <dir>')
      addLeaseExpose(program.command('lease'))
      await assert.rejects(
        program.parseAsync(['--home', renterDaemon.home, 'lease', 'expose', 'abcdef', port], {
          from: 'user',
        }),
        (err: unknown) => err instanceof UsageError && /port must be 1-65535/.test(err.message),
      )
    }
  })
})
