import { z } from 'zod'
import { defineRoute } from './contract.js'
import type { ApiRouter } from './router.js'

/**
 * Live changes a client may follow: `<area>.<what>` types such as `daemon.started`, `daemon.stopping`,
 * `service.started`, and (as services land) `listing.*`, `invoice.state`, `lease.state`, `presence.*`.
 */
export const DaemonEventSchema = z.object({
  id: z.number().int().positive().describe('increasing per daemon run; send as Last-Event-ID to resume'),
  type: z.string().regex(/^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+$/),
  time: z.iso.datetime(),
  data: z.unknown(),
})
export type DaemonEvent = z.infer<typeof DaemonEventSchema>

export type EventListener = (event: DaemonEvent) => void

/** In-process publish/subscribe for daemon events, with a bounded replay buffer for reconnecting clients. */
export interface EventBus {
  publish(type: string, data: unknown): DaemonEvent
  subscribe(listener: EventListener): () => void
  /** buffered events with an id above `id` (oldest first) */
  since(id: number): DaemonEvent[]
  /** how many listeners are subscribed (open event streams and in-process listeners) */
  readonly subscriberCount: number
}

export function createEventBus(
  opts: { replay?: number; onListenerError?: (err: unknown) => void } = {},
): EventBus {
  const replay = opts.replay ?? 256
  const buffer: DaemonEvent[] = []
  const listeners = new Set<EventListener>()
  let nextId = 1
  return {
    publish(type, data) {
      const event = DaemonEventSchema.parse({ id: nextId++, type, time: new Date().toISOString(), data })
      buffer.push(event)
      if (buffer.length > replay) buffer.shift()
      for (const l of [...listeners]) {
        try {
          l(event)
        } catch (err) {
          opts.onListenerError?.(err)
        }
      }
      return event
    },
    subscribe(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    since(id) {
      return buffer.filter((e) => e.id > id)
    },
    get subscriberCount() {
      return listeners.size
    },
  }
}

export const eventsRoute = defineRoute({
  id: 'streamEvents',
  method: 'GET',
  path: '/api/events',
  tag: 'events',
  auth: 'token',
  stream: 'sse',
  summary: 'Server-sent events: live changes of listings, invoices, leases, presence and the daemon',
  description:
    'A text/event-stream; each event has `id`, `event` (its type) and `data` (the JSON event). Comment lines ' +
    'are heartbeats. Send `Last-Event-ID` to replay the events you missed (the last 256 are kept).',
  query: z.object({
    types: z
      .string()
      .regex(/^[a-z0-9_.,-]*$/, 'comma-separated event type prefixes, e.g. lease.,invoice.')
      .max(1000)
      .optional()
      .describe('comma-separated type prefixes to receive (default: all)'),
  }),
  response: DaemonEventSchema,
})

export function registerEventRoutes(router: ApiRouter, bus: EventBus): void {
  router.sse(eventsRoute, ({ query }, sink) => {
    const prefixes = (query.types ?? '').split(',').filter((p) => p !== '')
    const wanted = (e: DaemonEvent): boolean =>
      prefixes.length === 0 || prefixes.some((p) => e.type.startsWith(p))
    const forward = (e: DaemonEvent): void => {
      if (wanted(e)) sink.send({ id: e.id, event: e.type, data: e })
    }
    const resumeFrom = sink.lastEventId != null ? Number.parseInt(sink.lastEventId, 10) : NaN
    if (Number.isSafeInteger(resumeFrom)) for (const e of bus.since(resumeFrom)) forward(e)
    return bus.subscribe(forward)
  })
}
