import { STATUS_CODES } from 'node:http'
import { RpibError } from '../errors.js'
import type { Problem } from './contract.js'

/** An error with an HTTP status; everything a client can cause is one of these (or a RpibError). */
export class ApiError extends RpibError {
  readonly status: number
  readonly issues?: Problem['issues']
  constructor(status: number, code: string, message: string, options?: { issues?: Problem['issues'] }) {
    super(code, message)
    this.status = status
    this.issues = options?.issues
  }
}

/** Error codes services raise whose HTTP status is not 422; modules register theirs at load time. */
const statusByCode = new Map<string, number>([
  ['ERR_NOT_FOUND', 404],
  ['ERR_VALIDATION', 400],
  ['ERR_CONFLICT', 409],
])

export function registerErrorStatus(code: string, status: number): void {
  statusByCode.set(code, status)
}

export function problem(status: number, code: string, detail: string, instance?: string): Problem {
  return {
    type: `urn:rpib:error:${code}`,
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail,
    code,
    ...(instance != null ? { instance } : {}),
  }
}

interface FastifyLikeError {
  statusCode?: number
  code?: string
  message: string
}

/**
 * Maps any thrown value to problem details. Typed errors keep their message (they are written for
 * users); Fastify's own client errors (bad JSON, body too large…) keep theirs; anything else is a bug
 * and is reported without internals.
 */
export function toProblem(err: unknown, instance: string): { problem: Problem; internal: boolean } {
  if (err instanceof ApiError) {
    const p = problem(err.status, err.code, err.message, instance)
    return { problem: err.issues != null ? { ...p, issues: err.issues } : p, internal: false }
  }
  if (err instanceof RpibError) {
    return {
      problem: problem(statusByCode.get(err.code) ?? 422, err.code, err.message, instance),
      internal: false,
    }
  }
  const f = err as FastifyLikeError
  if (typeof f?.statusCode === 'number' && f.statusCode >= 400 && f.statusCode < 500) {
    const code =
      typeof f.code === 'string' && f.code.startsWith('FST_')
        ? 'ERR_BAD_REQUEST'
        : (f.code ?? 'ERR_BAD_REQUEST')
    return { problem: problem(f.statusCode, code, f.message, instance), internal: false }
  }
  return {
    problem: problem(500, 'ERR_INTERNAL', 'internal error in the daemon; see its log for details', instance),
    internal: true,
  }
}
