import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { ProblemSchema, type Problem } from '../../src/api/contract.js'
import { NodeInfoSchema } from '../../src/api/routes/node.js'
import { rawRequest, seenResponses, type RawResponse } from './http.js'
import { createMarketService } from '../../src/daemon/market-service.js'
import { startTestDaemon, testRoutesService, type RunningDaemon } from './fixture.js'

function assertProblem(res: RawResponse, status: number, code: string): Problem {
  assert.equal(res.status, status, res.body)
  assert.match(String(res.headers['content-type']), /^application\/problem\+json/)
  const p = ProblemSchema.parse(res.json())
  assert.equal(p.status, status)
  assert.equal(p.code, code)
  assert.equal(p.type, `urn:rpib:error:${code}`)
  assert.ok(p.detail.length > 0 && !p.detail.includes('\n'), 'detail is one line')
  return p
}

interface OpenApiOperation {
  operationId: string
  security: unknown[]
  parameters: { name: string; in: string }[]
}

describe('local API', () => {
  let d: RunningDaemon
  const auth = (): Record<string, string> => ({ authorization: `Bearer ${d.token}` })

  before(async () => {
    // the real market service (libp2p + OrbitDB on loopback) and a route module exercising every input kind
    d = await startTestDaemon({}, (ctx) => [createMarketService(ctx), testRoutesService()])
  })
  after(async () => {
    await d.close()
    // whatever the request, the API never granted another origin access
    for (const res of seenResponses) {
      for (const h of Object.keys(res.headers))
        assert.ok(!h.startsWith('access-control-'), `CORS header ${h} sent`)
    }
  })

  async function operations(): Promise<{ method: string; path: string; op: OpenApiOperation }[]> {
    const docs = await rawRequest({ port: d.port, path: '/api/docs' })
    assert.equal(docs.status, 200)
    const paths = (docs.json() as { paths: Record<string, Record<string, OpenApiOperation>> }).paths
    return Object.entries(paths).flatMap(([path, ops]) =>
      Object.entries(ops).map(([method, op]) => ({ method: method.toUpperCase(), path, op })),
    )
  }

  test('every token-protected endpoint refuses a missing, wrong or non-bearer token with 401 problem+json', async () => {
    const ops = await operations()
    const protectedOps = ops.filter((o) => o.op.security.length > 0)
    assert.ok(protectedOps.length >= 5, 'node, config, events, network and the test routes are protected')
    for (const { method, path } of protectedOps) {
      const url = path.replace(/\{[^}]+\}/g, 'abc')
      const variants: Record<string, string>[] = [
        {},
        { authorization: 'Bearer wrong-token-wrong-token-wrong-token' },
        { authorization: `Basic ${Buffer.from(`x:${d.token}`).toString('base64')}` },
        { authorization: `Bearer ${d.token}x` },
      ]
      for (const headers of variants) {
        const res = await rawRequest({ port: d.port, method, path: url, headers })
        assertProblem(res, 401, 'ERR_UNAUTHORIZED')
        assert.equal(res.headers['www-authenticate'], 'Bearer realm="rpib"', `${method} ${url}`)
      }
    }
  })

  test('public endpoints (health, docs) answer without a token; everything else is protected', async () => {
    const ops = await operations()
    const publicOps = ops.filter((o) => o.op.security.length === 0).map((o) => `${o.method} ${o.path}`)
    assert.deepEqual(publicOps.sort(), ['GET /api/docs', 'GET /api/health'])
    const health = await rawRequest({ port: d.port, path: '/api/health' })
    assert.equal(health.status, 200)
    assert.deepEqual(health.json(), { status: 'ok' })
    assert.equal(health.headers['cache-control'], 'no-store')
    assert.equal(health.headers['x-content-type-options'], 'nosniff')
  })

  test('GET /api/node describes this node', async () => {
    const res = await rawRequest({ port: d.port, path: '/api/node', headers: auth() })
    assert.equal(res.status, 200, res.body)
    const node = NodeInfoSchema.parse(res.json())
    assert.match(node.peerId, /^12D3KooW/)
    assert.equal(node.network, 'regtest')
    assert.deepEqual(node.roles, { renter: true, provider: false, relay: false })
    assert.equal(node.pid, process.pid)
    assert.equal(node.apiUrl, `http://127.0.0.1:${d.port}`)
    assert.deepEqual(node.services, [
      { name: 'market', state: 'running' },
      { name: 'test-routes', state: 'running' },
    ])
  })

  test('GET /api/network shows the market node: loopback listen address, replica and presence counters', async () => {
    const res = await rawRequest({ port: d.port, path: '/api/network', headers: auth() })
    assert.equal(res.status, 200, res.body)
    const net = res.json() as { peerId: string; networkId: string; addresses: string[]; connections: number }
    const node = (await rawRequest({ port: d.port, path: '/api/node', headers: auth() })).json() as {
      peerId: string
    }
    assert.equal(net.peerId, node.peerId)
    assert.equal(net.networkId, 'regtest')
    assert.ok(net.addresses.length > 0)
    for (const a of net.addresses) assert.ok(a.endsWith(`/p2p/${node.peerId}`), a)
    assert.ok(
      net.addresses.some((a) => /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//.test(a)),
      `a loopback address among ${net.addresses.join(' ')}`,
    )
    assert.equal(net.connections, 0)
  })

  test('GET /api/config returns the effective config and never includes unknown fields', async () => {
    const res = await rawRequest({ port: d.port, path: '/api/config', headers: auth() })
    assert.equal(res.status, 200)
    const body = res.json() as {
      home: string
      config: { api: { port: number; host: string }; network: string }
    }
    assert.equal(body.home, d.home)
    assert.equal(body.config.api.host, '127.0.0.1')
    assert.equal(body.config.api.port, 0)
    assert.equal(body.config.network, 'regtest')
  })

  test('a valid request reaches the handler; fields outside the response schema are stripped', async () => {
    const res = await rawRequest({
      port: d.port,
      method: 'PUT',
      path: '/api/test/items/abc?dryRun=true',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ count: 3 }),
    })
    assert.equal(res.status, 200, res.body)
    assert.deepEqual(res.json(), { itemId: 'abc', count: 3, dryRun: true })
  })

  test('invalid params, query and body give 400 problem+json naming each bad field', async () => {
    const res = await rawRequest({
      port: d.port,
      method: 'PUT',
      path: '/api/test/items/NOT-OK?dryRun=maybe',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ count: 99, extra: 1 }),
    })
    const p = assertProblem(res, 400, 'ERR_VALIDATION')
    assert.deepEqual((p.issues ?? []).map((i) => i.path).sort(), [
      'body.count',
      'params.itemId',
      'query.dryRun',
    ])
    assert.match(p.detail, /^invalid request: /)

    const missingBody = await rawRequest({
      port: d.port,
      method: 'PUT',
      path: '/api/test/items/abc',
      headers: auth(),
    })
    assertProblem(missingBody, 400, 'ERR_VALIDATION')

    const badQuery = await rawRequest({ port: d.port, path: '/api/events?types=NOT%20OK', headers: auth() })
    const q = assertProblem(badQuery, 400, 'ERR_VALIDATION')
    assert.equal(q.issues?.[0]?.path, 'query.types')
  })

  test('malformed JSON, a wrong content type and an oversized body are problem+json client errors', async () => {
    const headers = { ...auth(), 'content-type': 'application/json' }
    const badJson = await rawRequest({
      port: d.port,
      method: 'PUT',
      path: '/api/test/items/abc',
      headers,
      body: '{"count":',
    })
    assertProblem(badJson, 400, 'ERR_BAD_REQUEST')
    const wrongType = await rawRequest({
      port: d.port,
      method: 'PUT',
      path: '/api/test/items/abc',
      headers: { ...auth(), 'content-type': 'application/x-www-form-urlencoded' },
      body: 'count=1',
    })
    assertProblem(wrongType, 415, 'ERR_BAD_REQUEST')
    const huge = await rawRequest({
      port: d.port,
      method: 'PUT',
      path: '/api/test/items/abc',
      headers,
      body: JSON.stringify({ count: 1, note: 'x'.repeat(300 * 1024) }),
    })
    assertProblem(huge, 413, 'ERR_BAD_REQUEST')
  })

  test('an unknown route is 404 problem+json (after authentication)', async () => {
    const res = await rawRequest({ port: d.port, path: '/api/no-such-thing', headers: auth() })
    const p = assertProblem(res, 404, 'ERR_NOT_FOUND')
    assert.equal(p.instance, '/api/no-such-thing')
    const wrongMethod = await rawRequest({
      port: d.port,
      method: 'DELETE',
      path: '/api/node',
      headers: auth(),
    })
    assertProblem(wrongMethod, 404, 'ERR_NOT_FOUND')
    const anon = await rawRequest({ port: d.port, path: '/api/no-such-thing' })
    assertProblem(anon, 401, 'ERR_UNAUTHORIZED')
  })

  test('a bug in a handler is a 500 problem without internals, and is logged', async () => {
    const res = await rawRequest({ port: d.port, path: '/api/test/fail', headers: auth() })
    const p = assertProblem(res, 500, 'ERR_INTERNAL')
    assert.ok(!res.body.includes('/etc/secret') && !res.body.includes(' at '), 'no internals leak')
    assert.match(p.detail, /see its log/)
    const logged = d.logs.map((l) => JSON.parse(l) as { event: string; err?: { message: string } })
    assert.ok(logged.some((l) => l.event === 'api.internal_error' && l.err?.message.includes('/etc/secret')))
  })

  test('DNS rebinding: any Host but the API’s own loopback authority is refused with 421', async () => {
    for (const host of [
      'evil.example',
      `evil.example:${d.port}`,
      `127.0.0.1:${d.port + 1}`,
      '127.0.0.1',
      `0.0.0.0:${d.port}`,
    ]) {
      for (const path of ['/api/health', '/api/node', '/api/docs']) {
        const res = await rawRequest({ port: d.port, path, host, headers: auth() })
        assertProblem(res, 421, 'ERR_HOST_NOT_ALLOWED')
      }
    }
    for (const host of [`localhost:${d.port}`, `LOCALHOST:${d.port}`, `[::1]:${d.port}`]) {
      const res = await rawRequest({ port: d.port, path: '/api/node', host, headers: auth() })
      assert.equal(res.status, 200, host)
    }
  })

  test('cross-origin requests are refused with 403 even with a valid token, preflights included', async () => {
    for (const origin of [
      'http://evil',
      'https://127.0.0.1:' + d.port,
      `http://127.0.0.1:${d.port + 1}`,
      'null',
    ]) {
      const res = await rawRequest({ port: d.port, path: '/api/node', headers: { ...auth(), origin } })
      assertProblem(res, 403, 'ERR_CROSS_ORIGIN')
    }
    const preflight = await rawRequest({
      port: d.port,
      method: 'OPTIONS',
      path: '/api/node',
      headers: {
        origin: 'http://evil',
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'authorization',
      },
    })
    assert.equal(preflight.status, 403)
    const fetchSite = await rawRequest({
      port: d.port,
      path: '/api/node',
      headers: { ...auth(), 'sec-fetch-site': 'cross-site' },
    })
    assertProblem(fetchSite, 403, 'ERR_CROSS_ORIGIN')
    // the daemon's own UI (same origin) is allowed
    const same = await rawRequest({
      port: d.port,
      path: '/api/node',
      headers: { ...auth(), origin: `http://127.0.0.1:${d.port}`, 'sec-fetch-site': 'same-origin' },
    })
    assert.equal(same.status, 200)
  })

  test('/api/docs is an OpenAPI 3.1 document generated from every registered route', async () => {
    const docs = (await rawRequest({ port: d.port, path: '/api/docs' })).json() as {
      openapi: string
      paths: Record<
        string,
        Record<
          string,
          {
            operationId: string
            requestBody?: { content: Record<string, { schema: { properties: Record<string, unknown> } }> }
            responses: Record<string, unknown>
            parameters: { name: string; in: string; required: boolean }[]
          }
        >
      >
      components: { schemas: Record<string, unknown>; securitySchemes: Record<string, { scheme: string }> }
    }
    assert.equal(docs.openapi, '3.1.0')
    assert.deepEqual(Object.keys(docs.paths).sort(), [
      '/api/config',
      '/api/docs',
      '/api/events',
      '/api/health',
      '/api/market/listings',
      '/api/market/outages',
      '/api/network',
      '/api/node',
      '/api/test/fail',
      '/api/test/items/{itemId}',
    ])
    const put = docs.paths['/api/test/items/{itemId}']?.put
    assert.equal(put?.operationId, 'putTestItem')
    assert.deepEqual(Object.keys(put?.requestBody?.content['application/json']?.schema.properties ?? {}), [
      'count',
      'note',
    ])
    assert.deepEqual(
      put?.parameters.map((p) => [p.name, p.in, p.required]),
      [
        ['itemId', 'path', true],
        ['dryRun', 'query', false],
      ],
    )
    assert.ok(put?.responses['401'] != null && put.responses['400'] != null)
    assert.ok(docs.paths['/api/events']?.get?.responses['200'] != null)
    assert.ok(docs.components.schemas.Problem != null)
    assert.equal(docs.components.securitySchemes.bearerToken?.scheme, 'bearer')
  })
})
