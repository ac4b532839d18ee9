import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { z } from 'zod'
import type { EventLogger } from '../daemon/json-log.js'
import type { AnyApiRoute, ApiRoute, ObjectSchema, RouteInput } from './contract.js'
import { ApiError } from './problem.js'
import { SECURITY_HEADERS } from './security.js'

/** A live server-sent-events stream handed to an `sse` route's `open` function. */
export interface SseSink {
  /** sends one event; returns false when the client is gone */
  send(event: { id?: string | number; event: string; data: unknown }): boolean
  /** the request's abort signal: fires when the client disconnects or the server shuts down */
  readonly signal: AbortSignal
  /** the `Last-Event-ID` the client resumes from, if any */
  readonly lastEventId?: string
}

export type RouteHandler<P, Q, B, R extends z.ZodType> = (
  input: RouteInput<P, Q, B>,
  request: FastifyRequest,
) => z.input<R> | Promise<z.input<R>>

/**
 * How every module adds its routes: `router.route(descriptor, handler)`. Input is validated with the
 * descriptor's zod schemas (400 problem+json naming each bad field), the result is parsed with its response
 * schema (which strips fields the contract does not promise), and the route is listed in /api/docs.
 */
export interface ApiRouter {
  route<
    P extends ObjectSchema | undefined,
    Q extends ObjectSchema | undefined,
    B extends z.ZodType | undefined,
    R extends z.ZodType,
  >(
    spec: ApiRoute<P, Q, B, R>,
    handler: RouteHandler<P, Q, B, R>,
  ): void
  /** a text/event-stream route; `open` subscribes and returns the function that unsubscribes */
  sse<P extends ObjectSchema | undefined, Q extends ObjectSchema | undefined>(
    spec: ApiRoute<P, Q, undefined, z.ZodType>,
    open: (input: RouteInput<P, Q, undefined>, sink: SseSink) => () => void,
  ): void
  /**
   * A byte-stream route reached with `Connection: Upgrade` (HTTP/1.1 101): `open` checks the request and
   * prepares the far end (throwing an ApiError refuses it with problem+json); the function it returns then
   * owns the upgraded socket. A plain GET on the path is told to upgrade (426).
   */
  upgrade<P extends ObjectSchema | undefined>(
    spec: ApiRoute<P, undefined, undefined, z.ZodType>,
    protocol: string,
    open: (input: RouteInput<P, undefined, undefined>) => Promise<(socket: Duplex) => Promise<void>>,
  ): void
  readonly routes: readonly AnyApiRoute[]
  readonly upgrades: readonly UpgradeRoute[]
}

/** A registered upgrade route, as the server's `upgrade` listener finds it. */
export interface UpgradeRoute {
  spec: AnyApiRoute
  protocol: string
  /** the route's params when `path` is this route, undefined otherwise */
  match(path: string): Record<string, string> | undefined
  open(params: Record<string, string>): Promise<(socket: Duplex) => Promise<void>>
}

/** `/api/rentals/:offerId/ssh` → a matcher returning `{ offerId }` */
function pathMatcher(path: string): (candidate: string) => Record<string, string> | undefined {
  const names: string[] = []
  const source = path
    .split('/')
    .map((part) => {
      if (!part.startsWith(':')) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
      names.push(part.slice(1))
      return '([^/]+)'
    })
    .join('/')
  const re = new RegExp(`^${source}$`)
  return (candidate) => {
    const m = re.exec(candidate)
    if (m == null) return undefined
    try {
      return Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(m[i + 1]!)]))
    } catch {
      return undefined // malformed %-escape: no route of ours
    }
  }
}

/** A module that contributes API routes (the same shape every service uses). */
export interface RouteModule {
  registerRoutes(router: ApiRouter): void
}

function formatIssues(where: string, error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((i) => ({ path: [where, ...i.path.map(String)].join('.'), message: i.message }))
}

function parseInput<P, Q, B>(spec: AnyApiRoute, req: FastifyRequest): RouteInput<P, Q, B> {
  const issues: { path: string; message: string }[] = []
  const part = (
    where: 'params' | 'query' | 'body',
    schema: z.ZodType | undefined,
    value: unknown,
  ): unknown => {
    if (schema == null) return undefined
    const parsed = schema.safeParse(value ?? (where === 'body' ? undefined : {}))
    if (parsed.success) return parsed.data
    issues.push(...formatIssues(where, parsed.error))
    return undefined
  }
  const input = {
    params: part('params', spec.params, req.params),
    query: part('query', spec.query, req.query),
    body: part('body', spec.body, req.body),
  }
  if (issues.length > 0) {
    throw new ApiError(
      400,
      'ERR_VALIDATION',
      `invalid request: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      { issues },
    )
  }
  return input as RouteInput<P, Q, B>
}

export interface SseOptions {
  heartbeatMs: number
  /** a client that lets this much output pile up unread is dropped, so memory stays bounded */
  maxBufferedBytes: number
}

/** Tracks open event streams so shutdown can end them (a hijacked response is invisible to Fastify). */
export class SseStreams {
  private readonly open = new Set<{ res: ServerResponse; abort: () => void }>()
  get size(): number {
    return this.open.size
  }
  add(entry: { res: ServerResponse; abort: () => void }): () => void {
    this.open.add(entry)
    return () => this.open.delete(entry)
  }
  closeAll(): void {
    for (const entry of [...this.open]) {
      entry.abort()
      entry.res.end()
    }
    this.open.clear()
  }
}

export function createRouter(
  app: FastifyInstance,
  log: EventLogger,
  sse: SseOptions,
  streams: SseStreams,
): ApiRouter {
  const routes: AnyApiRoute[] = []
  const upgrades: UpgradeRoute[] = []
  const known = new Set<string>()

  const remember = (spec: AnyApiRoute): void => {
    const key = `${spec.method} ${spec.path}`
    if (known.has(key)) throw new Error(`API route ${key} registered twice`)
    known.add(key)
    routes.push(spec)
  }

  return {
    routes,
    upgrades,
    upgrade(spec, protocol, open) {
      remember(spec as AnyApiRoute)
      upgrades.push({
        spec: spec as AnyApiRoute,
        protocol,
        match: pathMatcher(spec.path),
        open: (params) => {
          const parsed = spec.params?.safeParse(params)
          if (parsed != null && !parsed.success) {
            const issues = formatIssues('params', parsed.error)
            throw new ApiError(
              400,
              'ERR_VALIDATION',
              `invalid request: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
              { issues },
            )
          }
          return open({ params: parsed?.data } as RouteInput<never, undefined, undefined>)
        },
      })
      app.route({
        method: 'GET',
        url: spec.path,
        config: { auth: spec.auth },
        handler: async () => {
          throw new ApiError(
            426,
            'ERR_UPGRADE_REQUIRED',
            `${spec.path} carries a byte stream: send "Connection: Upgrade" and "Upgrade: ${protocol}" (rpib proxy does)`,
          )
        },
      })
    },
    route(spec, handler) {
      remember(spec as AnyApiRoute)
      app.route({
        method: spec.method,
        url: spec.path,
        config: { auth: spec.auth },
        handler: async (req: FastifyRequest, reply: FastifyReply) => {
          const input = parseInput<never, never, never>(spec as AnyApiRoute, req)
          const result = await handler(input, req)
          const checked = spec.response.safeParse(result)
          if (!checked.success) {
            log.error('api.response_invalid', { route: spec.id, issues: checked.error.issues.length })
            throw new Error(`response of ${spec.id} does not match its schema`)
          }
          reply.status(spec.successStatus ?? 200).type('application/json; charset=utf-8')
          return checked.data
        },
      })
    },
    sse(spec, open) {
      remember(spec as AnyApiRoute)
      app.route({
        method: spec.method,
        url: spec.path,
        config: { auth: spec.auth },
        handler: async (req: FastifyRequest, reply: FastifyReply) => {
          const input = parseInput<never, never, undefined>(spec as AnyApiRoute, req)
          const lastEventIdHeader = req.headers['last-event-id']
          const lastEventId = typeof lastEventIdHeader === 'string' ? lastEventIdHeader : undefined
          reply.hijack()
          const res = reply.raw
          res.writeHead(200, {
            ...SECURITY_HEADERS,
            'content-type': 'text/event-stream; charset=utf-8',
            connection: 'keep-alive',
            'x-accel-buffering': 'no',
          })
          res.write(`: rpib event stream\nretry: 2000\n\n`)
          const controller = new AbortController()
          let closed = false
          let unsubscribe = (): void => {}
          const heartbeat = setInterval(() => {
            res.write(`: heartbeat ${new Date().toISOString()}\n\n`)
          }, sse.heartbeatMs)
          const untrack = streams.add({ res, abort: () => controller.abort() })
          const cleanup = (): void => {
            if (closed) return
            closed = true
            clearInterval(heartbeat)
            untrack()
            unsubscribe()
            controller.abort()
          }
          res.on('close', () => {
            if (!closed) log.info('api.stream_closed', { route: spec.id })
            cleanup()
          })
          const sink: SseSink = {
            signal: controller.signal,
            lastEventId,
            send(ev) {
              if (closed || res.destroyed) return false
              if (res.writableLength > sse.maxBufferedBytes) {
                log.warn('api.sse_client_too_slow', { route: spec.id, buffered: res.writableLength })
                res.destroy()
                cleanup()
                return false
              }
              const id = ev.id != null ? `id: ${String(ev.id).replace(/[\r\n]/g, '')}\n` : ''
              const name = ev.event.replace(/[\r\n]/g, '')
              res.write(`${id}event: ${name}\ndata: ${JSON.stringify(ev.data)}\n\n`)
              return true
            },
          }
          unsubscribe = open(input as RouteInput<never, never, undefined>, sink)
          if (closed) unsubscribe()
          else log.info('api.stream_opened', { route: spec.id, streams: streams.size })
        },
      })
    },
  }
}
