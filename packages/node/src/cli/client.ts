import type { z } from 'zod'
import { ProblemSchema, fillPath, type ApiRoute, type CallInput, type ObjectSchema } from '../api/contract.js'
import { DaemonEventSchema, eventsRoute, type DaemonEvent } from '../api/events.js'
import { readApiToken } from '../api/token.js'
import { processAlive } from '../daemon/lock.js'
import { readDaemonState, type DaemonState } from '../daemon/state-file.js'
import { RpibError } from '../errors.js'

export interface CallOptions {
  signal?: AbortSignal
}

type CallArgs<P, Q, B> = [P, Q, B] extends [undefined, undefined, undefined]
  ? [input?: CallInput<P, Q, B>, options?: CallOptions]
  : [input: CallInput<P, Q, B>, options?: CallOptions]

/**
 * A typed client of the local API built from the same route descriptors as the server: `call(nodeRoute)`
 * sends the request, turns problem+json into a RpibError with the server's code and message, and
 * validates the response with the route's schema.
 */
export interface ApiClient {
  readonly baseUrl: string
  call<
    P extends ObjectSchema | undefined,
    Q extends ObjectSchema | undefined,
    B extends z.ZodType | undefined,
    R extends z.ZodType,
  >(
    route: ApiRoute<P, Q, B, R>,
    ...args: CallArgs<P, Q, B>
  ): Promise<z.output<R>>
  /** follows `/api/events` until the stream ends or `signal` aborts */
  events(opts?: { types?: string[]; lastEventId?: number; signal?: AbortSignal }): AsyncGenerator<DaemonEvent>
}

export interface ApiClientOptions {
  baseUrl: string
  token: string
  /** the error to raise when nothing answers at baseUrl */
  unreachable?: () => RpibError
}

function queryString(query: Record<string, unknown> | undefined): string {
  if (query == null) return ''
  const search = new URLSearchParams()
  for (const [k, v] of Object.entries(query)) if (v != null) search.set(k, String(v))
  const s = search.toString()
  return s === '' ? '' : `?${s}`
}

async function problemError(res: Response, what: string): Promise<RpibError> {
  const text = await res.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  const p = ProblemSchema.safeParse(json)
  if (p.success) return new RpibError(p.data.code, p.data.detail)
  return new RpibError('ERR_API_STATUS', `the daemon answered ${what} with HTTP ${res.status}`)
}

export function createApiClient(opts: ApiClientOptions): ApiClient {
  const baseUrl = opts.baseUrl.replace(/\/$/, '')
  const unreachable =
    opts.unreachable ??
    (() => new RpibError('ERR_NO_DAEMON', `no daemon answers at ${baseUrl}; start one with \`rpib daemon\``))

  async function send(
    method: string,
    path: string,
    body: unknown,
    accept: string,
    signal?: AbortSignal,
  ): Promise<Response> {
    try {
      return await fetch(`${baseUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${opts.token}`,
          accept,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
        signal,
      })
    } catch (err) {
      if (signal?.aborted === true) throw err
      throw unreachable()
    }
  }

  return {
    baseUrl,
    async call(route, ...args) {
      const [input, options] = args
      const path =
        fillPath(route.path, input?.params as Record<string, unknown> | undefined) +
        queryString(input?.query as Record<string, unknown> | undefined)
      const what = `${route.method} ${route.path}`
      const res = await send(route.method, path, input?.body, 'application/json', options?.signal)
      if (!res.ok) throw await problemError(res, what)
      const parsed = route.response.safeParse(await res.json())
      if (!parsed.success) {
        throw new RpibError(
          'ERR_API_RESPONSE',
          `the daemon answered ${what} with an unexpected body; are the CLI and daemon the same version?`,
        )
      }
      return parsed.data
    },
    async *events(eopts = {}) {
      const query =
        eopts.types != null && eopts.types.length > 0
          ? `?types=${encodeURIComponent(eopts.types.join(','))}`
          : ''
      let res: Response
      try {
        res = await fetch(`${baseUrl}${eventsRoute.path}${query}`, {
          headers: {
            authorization: `Bearer ${opts.token}`,
            accept: 'text/event-stream',
            ...(eopts.lastEventId != null ? { 'last-event-id': String(eopts.lastEventId) } : {}),
          },
          signal: eopts.signal,
        })
      } catch {
        if (eopts.signal?.aborted === true) return
        throw unreachable()
      }
      if (!res.ok || res.body == null) throw await problemError(res, `GET ${eventsRoute.path}`)
      const decoder = new TextDecoder()
      let buffered = ''
      try {
        for await (const chunk of res.body) {
          buffered += decoder.decode(chunk, { stream: true })
          let end: number
          while ((end = buffered.indexOf('\n\n')) !== -1) {
            const block = buffered.slice(0, end)
            buffered = buffered.slice(end + 2)
            const data = block
              .split('\n')
              .filter((line) => line.startsWith('data:'))
              .map((line) => line.slice(5).trimStart())
              .join('\n')
            if (data === '') continue // comments (heartbeats) and retry hints
            yield DaemonEventSchema.parse(JSON.parse(data))
          }
        }
      } catch (err) {
        if (eopts.signal?.aborted === true) return
        throw err
      }
    },
  }
}

function noDaemon(home: string, extra = ''): RpibError {
  return new RpibError(
    'ERR_NO_DAEMON',
    `no daemon running for ${home}${extra}; start one with \`rpib daemon\``,
  )
}

/** A client of the daemon that runs for `home`, found through `<home>/daemon.json` and `<home>/api-token`. */
export async function connectToDaemon(home: string): Promise<{ client: ApiClient; state: DaemonState }> {
  const state = await readDaemonState(home)
  if (state == null) throw noDaemon(home)
  if (!processAlive(state.pid)) throw noDaemon(home, ` (pid ${state.pid} in daemon.json is gone)`)
  const token = await readApiToken(home)
  if (token == null) throw noDaemon(home, ' (no api-token file)')
  const client = createApiClient({
    baseUrl: state.apiUrl,
    token,
    unreachable: () => noDaemon(home, ` (nothing answers at ${state.apiUrl})`),
  })
  return { client, state }
}
