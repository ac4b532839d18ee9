import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { request } from 'node:http'
import { connect } from 'node:net'
import { createHttpIngress, type HttpIngress } from '../../src/relay/http-ingress.js'
import { relayLimits } from '../../src/relay/limits.js'
import { tunnelName } from '../../src/relay/names.js'
import { createReverseTunnel, type ReverseTunnel } from '../../src/tunnel/reverse-tunnel.js'
import { logger } from '../../src/log.js'
import { newIdentity, startJumpRelay, until, type TestRelay } from './fixtures.js'

function get(port: number, host: string, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('HTTP ingress by Host header over the provider tunnel', () => {
  let relay: TestRelay
  let ingress: HttpIngress
  let site: Server
  let tunnel: ReverseTunnel
  let name: string

  before(async () => {
    relay = await startJumpRelay({ bytesPerSecondPerProvider: 512 * 1024, maxConnectionsPerSource: 8 })
    ingress = createHttpIngress({
      relay: relay.relay,
      host: '127.0.0.1',
      port: 0,
      limits: relayLimits({ maxConnectionsPerSource: 8 }),
      logger: logger('rpib:test:http'),
    })
    await ingress.start()
    site = createServer((req, res) => {
      if (req.url === '/big') res.end(Buffer.alloc(1024 * 1024, 'z'))
      else res.end(`site says ${req.method} ${req.url}`)
    })
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve))
    const id = await newIdentity()
    name = tunnelName('web', id.publicKey.raw)
    tunnel = createReverseTunnel({
      relay: { host: relay.host, port: relay.port },
      identity: id,
      forwards: [
        { name, port: 80, target: { host: '127.0.0.1', port: (site.address() as { port: number }).port } },
      ],
      logger: logger('rpib:test:http'),
    })
    tunnel.start()
    await until(() => tunnel.status().state === 'up', 10_000, 'tunnel up')
  })

  after(async () => {
    await tunnel?.stop()
    await ingress?.stop()
    await relay?.relay.stop()
    site?.closeAllConnections()
    await new Promise<void>((resolve) => (site != null ? site.close(() => resolve()) : resolve()))
  })

  const hostFor = (n: string) => `${n.replace(/\.rpib$/, '')}.relay.example:8080`

  it('serves the lease site at http://<lease>.<key>.<relay-host>/', async () => {
    const r = await get(ingress.address().port, hostFor(name), '/hello?x=1')
    assert.equal(r.status, 200)
    assert.equal(r.body, 'site says GET /hello?x=1')
    assert.equal(ingress.stats().requests, 1)
  })

  it('answers 502 for an unknown tunnel and 400 for a host that names none', async () => {
    const stranger = await newIdentity()
    const unknown = await get(ingress.address().port, hostFor(tunnelName('web', stranger.publicKey.raw)))
    assert.equal(unknown.status, 502)
    const bad = await get(ingress.address().port, 'example.org')
    assert.equal(bad.status, 400)
    assert.equal(ingress.stats().refusedUnknownHost, 1)
    assert.equal(ingress.stats().refusedBadRequest, 1)
  })

  it('refuses an oversized request head', async () => {
    const reply = await new Promise<string>((resolve) => {
      const s = connect(ingress.address().port, '127.0.0.1')
      let data = ''
      s.setEncoding('utf8').on('data', (d: string) => (data += d))
      s.on('close', () => resolve(data))
      s.on('error', () => {})
      s.write('GET / HTTP/1.1\r\nx-junk: ' + 'j'.repeat(20_000))
    })
    assert.match(reply, /^HTTP\/1.1 431 /)
  })

  it("enforces the relay's per-provider bandwidth cap", async () => {
    // 1 MiB at 512 KiB/s with a 128 KiB burst cannot finish in less than ~1.7 s
    const start = Date.now()
    const r = await get(ingress.address().port, hostFor(name), '/big')
    const elapsed = Date.now() - start
    assert.equal(r.body.length, 1024 * 1024)
    assert.ok(elapsed >= 1_500, `a capped transfer finished in ${elapsed} ms`)
  })
})
