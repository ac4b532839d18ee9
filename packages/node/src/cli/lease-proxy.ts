import { request } from 'node:http'
import type { Socket } from 'node:net'
import type { Readable, Writable } from 'node:stream'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { RpibError } from '../errors.js'

/**
 * `rpib proxy <lease>`: an OpenSSH ProxyCommand that joins stdin/stdout to the lease's SSH server through
 * the renter's running daemon (`GET /api/rentals/<offerId>/ssh`, `Upgrade: rpib-ssh`). It loads nothing
 * but node:http, so OpenSSH is talking to the provider a few tens of milliseconds after it starts us.
 */
export async function proxyThroughDaemon(opts: {
  home: string
  offerId: string
  stdin: Readable
  stdout: Writable
}): Promise<void> {
  // read by hand, not through the zod-checked readers: loading zod would cost OpenSSH ~100 ms per login
  const read = (file: string): Promise<string | undefined> =>
    readFile(join(opts.home, file), 'utf8').catch(() => undefined)
  const [stateText, token] = await Promise.all([
    read('daemon.json'),
    read('api-token').then((t) => t?.trim()),
  ])
  let state: { apiUrl?: unknown } | undefined
  try {
    state = stateText != null ? (JSON.parse(stateText) as { apiUrl?: unknown }) : undefined
  } catch {
    state = undefined
  }
  if (typeof state?.apiUrl !== 'string' || token == null || token === '') {
    throw new RpibError(
      'ERR_NO_DAEMON',
      `no daemon runs for ${opts.home}: start it with \`rpib --home ${opts.home} daemon\``,
    )
  }
  const apiUrl = state.apiUrl
  const url = new URL(`/api/rentals/${opts.offerId}/ssh`, apiUrl)
  const socket = await new Promise<Socket>((resolve, reject) => {
    const req = request(url, {
      headers: { authorization: `Bearer ${token}`, connection: 'Upgrade', upgrade: 'rpib-ssh' },
    })
    req.on('upgrade', (_res, sock, head) => {
      if (head.length > 0) opts.stdout.write(head)
      resolve(sock)
    })
    req.on('response', (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => (body += d))
      res.on('end', () => {
        let detail = `HTTP ${res.statusCode ?? '?'}`
        try {
          detail = (JSON.parse(body) as { detail?: string }).detail ?? detail
        } catch {
          // not problem+json: keep the status
        }
        reject(new RpibError('ERR_SSH_GATEWAY', `the daemon could not connect to the lease: ${detail}`))
      })
    })
    req.on('error', (err) =>
      reject(new RpibError('ERR_NO_DAEMON', `the daemon at ${apiUrl} does not answer (${err.message})`)),
    )
    req.end()
  })
  await new Promise<void>((resolve, reject) => {
    opts.stdin.pipe(socket)
    socket.pipe(opts.stdout)
    socket.on('end', () => resolve())
    socket.on('close', () => resolve())
    socket.on('error', (err) =>
      reject(new RpibError('ERR_SSH_STREAM_LOST', `the connection to the lease was lost: ${err.message}`)),
    )
  })
}
