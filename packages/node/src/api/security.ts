import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import { ApiError } from './problem.js'
import { tokensEqual } from './token.js'

/** Sent with every response: nothing is cached, sniffed, framed or leaked through Referer. */
export const SECURITY_HEADERS: Record<string, string> = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'cross-origin-resource-policy': 'same-origin',
}

/** `Host` values the API answers to: its own loopback address under every spelling. */
export function allowedHosts(port: number): Set<string> {
  return new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`])
}

export interface SecurityOptions {
  /** the bound port (known only after listen when configured as 0) */
  port(): number
  token: string
}

function pathOf(req: FastifyRequest): string {
  return req.url.split('?')[0] ?? req.url
}

/**
 * The API's guard, run before routing work on every request (404s and upgrades included):
 * 1. `Host` must be the API's own loopback authority — a DNS-rebinding page (evil.example resolving to
 *    127.0.0.1) sends its own name and is refused with 421;
 * 2. a browser `Origin` (or `Sec-Fetch-Site`) from any other origin is refused with 403, and no CORS
 *    header is ever sent, so other sites can neither read responses nor pass preflights;
 * 3. every route that is not explicitly public needs `Authorization: Bearer <token>` (401 otherwise).
 */
export function checkRequest(
  headers: IncomingHttpHeaders,
  path: string,
  isPublic: boolean,
  opts: SecurityOptions,
): void {
  const hosts = allowedHosts(opts.port())
  const host = (headers.host ?? '').toLowerCase()
  if (!hosts.has(host)) {
    throw new ApiError(
      421,
      'ERR_HOST_NOT_ALLOWED',
      `Host "${host.slice(0, 100)}" is not this API; use http://127.0.0.1:${opts.port()}`,
    )
  }
  const origin = headers.origin
  if (
    origin != null &&
    !(origin.startsWith('http://') && hosts.has(origin.slice('http://'.length).toLowerCase()))
  ) {
    throw new ApiError(
      403,
      'ERR_CROSS_ORIGIN',
      `cross-origin requests are refused (Origin ${origin.slice(0, 100)})`,
    )
  }
  const fetchSite = headers['sec-fetch-site']
  if (fetchSite === 'cross-site' || fetchSite === 'same-site') {
    throw new ApiError(
      403,
      'ERR_CROSS_ORIGIN',
      `cross-origin requests are refused (Sec-Fetch-Site ${fetchSite})`,
    )
  }
  if (isPublic) return
  const header = headers.authorization
  const match = header != null ? /^Bearer ([^\s]+)$/i.exec(header) : null
  if (match == null) {
    throw new ApiError(
      401,
      'ERR_UNAUTHORIZED',
      `${path} needs "Authorization: Bearer <token>"; the token is in the api-token file of the data directory`,
    )
  }
  if (!tokensEqual(opts.token, match[1] ?? '')) {
    throw new ApiError(
      401,
      'ERR_UNAUTHORIZED',
      'wrong API token; read it again from the api-token file of the data directory',
    )
  }
}

export function installSecurityHooks(app: FastifyInstance, opts: SecurityOptions): void {
  app.addHook('onRequest', async (req) => {
    const config = req.routeOptions.config as { auth?: string } | undefined
    checkRequest(req.headers, pathOf(req), config?.auth === 'public', opts)
  })
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.headers(SECURITY_HEADERS)
    return payload
  })
}
