/**
 * Byte-stream routes of the local API (`router.upgrade`, used by `rpib proxy <lease>`): the same guard as
 * every request (token, Host, Origin), problem+json refusals before the switch, 101 then raw bytes.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { request, type IncomingHttpHeaders } from 'node:http'
import type { Socket } from 'node:net'
import { z } from 'zod'
import { defineRoute } from '../../src/api/contract.js'
import { ApiError } from '../../src/api/problem.js'
import type { ApiRouter } from '../../src/api/router.js'
import { startTestDaemon, type RunningDaemon } from './fixture.js'

const echoRoute = defineRoute({
  id: 'testEcho',
  method: 'GET',
  path: '/api/test/echo/:name',
  tag: 'test',
  auth: 'token',
  summary: 'test byte stream that echoes',
  params: z.strictObject({ name: z.string().regex(/^[a-z]{1,8}$/) }),
  response: z.never(),
})

type Outcome =
  | { kind: 'upgraded'; socket: Socket }
  | { kind: 'response'; status: number; headers: IncomingHttpHeaders; body: string }

function open(port: number, path: string, headers: Record<string, string>): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers })
    req.on('upgrade', (_res, socket) => resolve({ kind: 'upgraded', socket }))
    req.on('response', (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => (body += d))
      res.on('end', () =>
        resolve({ kind: 'response', status: res.statusCode ?? 0, headers: res.headers, body }),
      )
    })
    req.on('error', reject)
    req.end()
  })
}

function problem(o: Outcome, status: number, code: string): void {
  assert.equal(o.kind, 'response')
  if (o.kind !== 'response') return
  assert.equal(o.status, status, o.body)
  assert.match(String(o.headers['content-type']), /^application\/problem\+json/)
  const p = JSON.parse(o.body) as { code: string; detail: string }
  assert.equal(p.code, code)
  assert.ok(p.detail.length > 0)
}

describe('local API byte-stream (upgrade) routes', () => {
  let d: RunningDaemon
  const upgrade = (extra: Record<string, string> = {}): Record<string, string> => ({
    authorization: `Bearer ${d.token}`,
    connection: 'Upgrade',
    upgrade: 'test-echo',
    ...extra,
  })

  before(async () => {
    d = await startTestDaemon({}, () => [
      {
        name: 'echo',
        async start() {},
        async stop() {},
        registerRoutes(router: ApiRouter) {
          router.upgrade(echoRoute, 'test-echo', async ({ params }) => {
            if (params.name === 'busy') throw new ApiError(409, 'ERR_BUSY', 'the far end is busy')
            return (socket) =>
              new Promise<void>((resolve) => {
                socket.pipe(socket)
                socket.on('close', () => resolve())
              })
          })
        },
      },
    ])
  })
  after(async () => d.close())

  test('with the token: 101, then the bytes flow both ways', async () => {
    const o = await open(d.port, '/api/test/echo/abc', upgrade())
    assert.equal(o.kind, 'upgraded')
    if (o.kind !== 'upgraded') return
    const echoed = new Promise<string>((resolve) =>
      o.socket.once('data', (b: Buffer) => resolve(b.toString())),
    )
    o.socket.write('hello over the stream')
    assert.equal(await echoed, 'hello over the stream')
    o.socket.destroy()
  })

  test('refusals are problem+json before any switch: token, Host, Origin, params, protocol, route', async () => {
    problem(
      await open(d.port, '/api/test/echo/abc', upgrade({ authorization: 'Bearer wrong' })),
      401,
      'ERR_UNAUTHORIZED',
    )
    problem(
      await open(d.port, '/api/test/echo/abc', upgrade({ host: 'evil.example' })),
      421,
      'ERR_HOST_NOT_ALLOWED',
    )
    problem(
      await open(d.port, '/api/test/echo/abc', upgrade({ origin: 'http://evil.example' })),
      403,
      'ERR_CROSS_ORIGIN',
    )
    problem(await open(d.port, '/api/test/echo/NOPE1', upgrade()), 400, 'ERR_VALIDATION')
    problem(
      await open(d.port, '/api/test/echo/abc', upgrade({ upgrade: 'websocket' })),
      400,
      'ERR_UPGRADE_PROTOCOL',
    )
    problem(await open(d.port, '/api/test/other', upgrade()), 404, 'ERR_NOT_FOUND')
    problem(await open(d.port, '/api/test/echo/busy', upgrade()), 409, 'ERR_BUSY')
  })

  test('a plain GET is told to upgrade (426); the route is listed in /api/docs', async () => {
    const plain = await open(d.port, '/api/test/echo/abc', { authorization: `Bearer ${d.token}` })
    problem(plain, 426, 'ERR_UPGRADE_REQUIRED')
    const docs = await open(d.port, '/api/docs', {})
    assert.equal(docs.kind, 'response')
    if (docs.kind === 'response')
      assert.ok(docs.body.includes('/api/test/echo/{name}'), docs.body.slice(0, 200))
  })

  test('stopping the daemon closes an upgraded stream', async () => {
    const other = await startTestDaemon({}, () => [
      {
        name: 'hold',
        async start() {},
        async stop() {},
        registerRoutes(router: ApiRouter) {
          router.upgrade(
            echoRoute,
            'test-echo',
            async () => (socket) => new Promise<void>((resolve) => socket.on('close', () => resolve())),
          )
        },
      },
    ])
    const o = await open(other.port, '/api/test/echo/abc', {
      authorization: `Bearer ${other.token}`,
      connection: 'Upgrade',
      upgrade: 'test-echo',
    })
    assert.equal(o.kind, 'upgraded')
    if (o.kind !== 'upgraded') return
    const closed = new Promise<void>((resolve) => o.socket.on('close', () => resolve()))
    await other.close()
    await closed
  })
})
