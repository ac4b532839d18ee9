import Fastify, { type FastifyInstance } from 'fastify'
import type { IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { RpibError } from '../errors.js'
import type { EventLogger } from '../daemon/json-log.js'
import { buildOpenApiDocument } from './openapi.js'
import { ApiError, toProblem, problem } from './problem.js'
import { createRouter, SseStreams, type ApiRouter } from './router.js'
import { checkRequest, installSecurityHooks, SECURITY_HEADERS } from './security.js'
import { docsRoute } from './routes/docs.js'

export interface ApiServerOptions {
  host: '127.0.0.1' | '::1'
  /** 0 picks a free port */
  port: number
  token: string
  log: EventLogger
  version: string
  sseHeartbeatMs: number
  /** request bodies above this are refused with 413 (the API carries small JSON documents) */
  bodyLimitBytes?: number
}

export interface ApiServer {
  readonly router: ApiRouter
  /** binds the socket; routes must all be registered before */
  listen(): Promise<string>
  /** ends event streams, refuses new requests and releases the socket */
  close(): Promise<void>
  /** `http://127.0.0.1:<port>` once listening */
  readonly url: string | undefined
  /** for tests: the number of open event streams */
  readonly openStreams: number
}

function pathOf(url: string): string {
  return url.split('?')[0] ?? url
}

export function createApiServer(opts: ApiServerOptions): ApiServer {
  const app: FastifyInstance = Fastify({
    logger: false,
    bodyLimit: opts.bodyLimitBytes ?? 256 * 1024,
    // keep-alive sockets of finished clients must not hold the daemon open at shutdown
    forceCloseConnections: true,
    return503OnClosing: true,
  })
  const log = opts.log
  let boundPort = opts.port
  let url: string | undefined
  const streams = new SseStreams()

  const security = { port: () => boundPort, token: opts.token }
  installSecurityHooks(app, security)
  app.setErrorHandler((err, req, reply) => {
    const { problem: body, internal } = toProblem(err, pathOf(req.url))
    if (internal) log.error('api.internal_error', { method: req.method, path: pathOf(req.url), err })
    if (body.status === 401) reply.header('www-authenticate', 'Bearer realm="rpib"')
    void reply.status(body.status).type('application/problem+json').send(body)
  })
  app.setNotFoundHandler((req, reply) => {
    const body = problem(
      404,
      'ERR_NOT_FOUND',
      `no API route ${req.method} ${pathOf(req.url)}; see /api/docs`,
      pathOf(req.url),
    )
    void reply.status(404).type('application/problem+json').send(body)
  })
  app.addHook('onResponse', async (req, reply) => {
    log.debug('api.request', {
      method: req.method,
      path: pathOf(req.url),
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime),
    })
  })
  // Hijacked SSE responses and upgraded sockets are invisible to Fastify's close: end them first.
  const upgraded = new Set<Duplex>()
  app.addHook('preClose', async () => {
    streams.closeAll()
    for (const socket of upgraded) socket.destroy()
  })

  const router = createRouter(
    app,
    log,
    { heartbeatMs: opts.sseHeartbeatMs, maxBufferedBytes: 1024 * 1024 },
    streams,
  )
  router.route(docsRoute, () =>
    buildOpenApiDocument(router.routes, { version: opts.version, apiUrl: url ?? '' }),
  )

  /** Byte-stream routes (`router.upgrade`): same guard as every request, then 101 and the route owns the socket. */
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = pathOf(req.url ?? '/')
    const refuse = (err: unknown): void => {
      const { problem: body, internal } = toProblem(err, path)
      if (internal) log.error('api.internal_error', { method: req.method, path, err })
      const json = JSON.stringify(body)
      socket.end(
        `HTTP/1.1 ${body.status} ${body.title}\r\n` +
          Object.entries(SECURITY_HEADERS)
            .map(([k, v]) => `${k}: ${v}\r\n`)
            .join('') +
          `content-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(json)}\r\n` +
          `connection: close\r\n\r\n${json}`,
      )
    }
    socket.on('error', () => socket.destroy())
    let switched = false
    void (async () => {
      try {
        let params: Record<string, string> | undefined
        const route = router.upgrades.find((u) => (params = u.match(path)) !== undefined)
        checkRequest(req.headers, path, route?.spec.auth === 'public', security)
        if (route === undefined || params === undefined || req.method !== 'GET') {
          throw new ApiError(404, 'ERR_NOT_FOUND', `no upgrade route ${req.method} ${path}; see /api/docs`)
        }
        if ((req.headers.upgrade ?? '').toLowerCase() !== route.protocol) {
          throw new ApiError(400, 'ERR_UPGRADE_PROTOCOL', `${path} speaks "${route.protocol}" only`)
        }
        const pipe = await route.open(params)
        // the client left while the far end was prepared: the route's pipe releases it at once
        if (socket.destroyed) return await pipe(socket)
        socket.write(
          `HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${route.protocol}\r\n\r\n`,
        )
        switched = true
        if (head.length > 0) socket.unshift(head)
        upgraded.add(socket)
        log.info('api.upgraded', { route: route.spec.id })
        await pipe(socket).finally(() => upgraded.delete(socket))
      } catch (err) {
        if (switched || !socket.writable) {
          if (switched)
            log.warn('api.upgrade_ended', { path, err: err instanceof Error ? err.message : String(err) })
          socket.destroy()
        } else refuse(err)
      }
    })()
  })

  let listening = false
  return {
    router,
    get url() {
      return url
    },
    get openStreams() {
      return streams.size
    },
    async listen() {
      try {
        await app.listen({ host: opts.host, port: opts.port })
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'EADDRINUSE') {
          throw new RpibError(
            'ERR_API_PORT_IN_USE',
            `API port ${opts.port} on ${opts.host} is in use; pass --api-port <n> (0 picks a free port)`,
            { cause: err },
          )
        }
        throw err
      }
      listening = true
      boundPort = (app.server.address() as AddressInfo).port
      url = opts.host === '::1' ? `http://[::1]:${boundPort}` : `http://127.0.0.1:${boundPort}`
      log.info('api.listening', { url })
      return url
    },
    async close() {
      if (!listening) {
        await app.close()
        return
      }
      listening = false
      await app.close()
      log.info('api.closed', { url })
    },
  }
}
