import { request } from 'node:http'

export interface RawResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
  json(): unknown
}

export interface RawRequest {
  port: number
  method?: string
  path: string
  headers?: Record<string, string>
  body?: string
  /** override the Host header (node:http sends `127.0.0.1:<port>` by default) */
  host?: string
}

/** Every response seen by this process, so a test can assert no CORS header was ever sent. */
export const seenResponses: RawResponse[] = []

/** A plain HTTP/1.1 request with full control over Host, Origin and body (fetch forbids setting Host). */
export function rawRequest(req: RawRequest): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const r = request(
      {
        host: '127.0.0.1',
        port: req.port,
        method: req.method ?? 'GET',
        path: req.path,
        headers: { host: req.host ?? `127.0.0.1:${req.port}`, ...req.headers },
        agent: false,
        timeout: 10_000,
      },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (body += d))
        res.on('end', () => {
          const out: RawResponse = {
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            json: () => JSON.parse(body) as unknown,
          }
          seenResponses.push(out)
          resolve(out)
        })
        res.on('error', reject)
      },
    )
    r.on('timeout', () => r.destroy(new Error('request timed out')))
    r.on('error', reject)
    if (req.body != null) r.write(req.body)
    r.end()
  })
}

/** Polls `check` until it returns a value, failing after `ms` (no fixed sleeps). */
export async function waitFor<T>(
  check: () => T | undefined | Promise<T | undefined>,
  ms: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await check()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
