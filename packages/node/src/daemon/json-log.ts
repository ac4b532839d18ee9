import type { Writable } from 'node:stream'
import type { LogLevel } from '../config/schema.js'

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export type LogFields = Record<string, unknown>

/**
 * Structured daemon log: one JSON object per line on stdout (`{"time","level","area","event",…}`), the
 * format journald, `jq` and log shippers read as is. Debug tracing of libraries stays on `DEBUG=rpib:*`.
 */
export interface EventLogger {
  debug(event: string, fields?: LogFields): void
  info(event: string, fields?: LogFields): void
  warn(event: string, fields?: LogFields): void
  error(event: string, fields?: LogFields): void
  /** a logger whose lines carry `area` (e.g. `api`, `market`) */
  child(area: string): EventLogger
}

export interface JsonLoggerOptions {
  level: LogLevel
  stream?: Writable
  area?: string
  now?: () => Date
}

function serializable(value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code
    return { name: value.name, message: value.message, ...(code != null ? { code } : {}) }
  }
  return value
}

export function createJsonLogger(opts: JsonLoggerOptions): EventLogger {
  const stream = opts.stream ?? process.stdout
  const now = opts.now ?? (() => new Date())
  const min = RANK[opts.level]
  const write = (level: LogLevel, event: string, fields: LogFields = {}): void => {
    if (RANK[level] < min) return
    const entry: LogFields = { time: now().toISOString(), level, area: opts.area ?? 'daemon', event }
    for (const [k, v] of Object.entries(fields)) entry[k] = serializable(v)
    stream.write(JSON.stringify(entry, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n')
  }
  return {
    debug: (e, f) => write('debug', e, f),
    info: (e, f) => write('info', e, f),
    warn: (e, f) => write('warn', e, f),
    error: (e, f) => write('error', e, f),
    child: (area) => createJsonLogger({ ...opts, area }),
  }
}
