import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { RpibError } from '../errors.js'
import { listen } from '../net/sockets.js'
import type { Logger } from '../log.js'
import type { JumpRelay } from './jump-server.js'
import type { RelayLimits } from './limits.js'
import { tunnelNameFromHost } from './names.js'

/** The port inside the lease that HTTP ingress forwards to (the provider registers `<name>:80`). */
export const HTTP_TUNNEL_PORT = 80
const MAX_HEAD_BYTES = 16 * 1024
const HEAD_TIMEOUT_MS = 10_000

export interface HttpIngressInit {
  relay: JumpRelay
  host: string
  port: number
  limits: RelayLimits
  logger: Logger
}

export interface HttpIngressStats {
  requests: number
  refusedUnknownHost: number
  refusedBadRequest: number
  refusedSourceCap: number
}

export interface HttpIngress {
  start(): Promise<void>
  stop(): Promise<void>
  address(): { host: string; port: number }
  stats(): HttpIngressStats
}

function reply(socket: Socket, status: string, text: string): void {
  socket.end(
    `HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(text) + 1}\r\n` +
      `connection: close\r\n\r\n${text}\n`,
  )
}

/**
 * `http://<label>.<owner>.<relay-host>:<port>/` → the provider's tunnel `<label>.<owner>.rpib:80`.
 * The relay reads only the request head to find the Host header, then passes raw bytes both ways
 * (one TCP connection = one tunnel channel; keep-alive stays on that site).
 */
export function createHttpIngress(init: HttpIngressInit): HttpIngress {
  const { relay, limits, logger: log } = init
  const stats: HttpIngressStats = {
    requests: 0,
    refusedUnknownHost: 0,
    refusedBadRequest: 0,
    refusedSourceCap: 0,
  }
  const perSource = new Map<string, number>()
  const sockets = new Set<Socket>()
  let server: Server | undefined

  function onSocket(socket: Socket): void {
    const ip = socket.remoteAddress ?? 'unknown'
    const open = perSource.get(ip) ?? 0
    if (open >= limits.maxConnectionsPerSource) {
      stats.refusedSourceCap++
      socket.destroy()
      return
    }
    perSource.set(ip, open + 1)
    sockets.add(socket)
    socket.once('close', () => {
      sockets.delete(socket)
      const left = (perSource.get(ip) ?? 1) - 1
      if (left <= 0) perSource.delete(ip)
      else perSource.set(ip, left)
    })
    socket.on('error', () => socket.destroy())
    socket.setNoDelay(true)
    socket.setTimeout(HEAD_TIMEOUT_MS, () => socket.destroy())

    let head = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) {
        if (head.length > MAX_HEAD_BYTES) {
          stats.refusedBadRequest++
          socket.off('data', onData)
          reply(socket, '431 Request Header Fields Too Large', 'request head too large')
        }
        return
      }
      socket.off('data', onData)
      socket.pause()
      socket.setTimeout(0)
      const hostLine = head
        .subarray(0, end)
        .toString('latin1')
        .split('\r\n')
        .find((l) => /^host:/i.test(l))
      const name = hostLine != null ? tunnelNameFromHost(hostLine.slice(5)) : undefined
      if (name == null) {
        stats.refusedBadRequest++
        return reply(
          socket,
          '400 Bad Request',
          'this relay serves http://<lease>.<provider-key>.<relay-host>/ only',
        )
      }
      if (!relay.hasTunnel(name, HTTP_TUNNEL_PORT)) {
        stats.refusedUnknownHost++
        return reply(
          socket,
          '502 Bad Gateway',
          `no tunnel for ${name} on this relay (is HTTP exposed for that lease?)`,
        )
      }
      stats.requests++
      // give the buffered head back to the stream so the bridge forwards it first
      socket.unshift(head)
      relay
        .bridgeTo(name, HTTP_TUNNEL_PORT, socket, { ip, port: socket.remotePort ?? 0 })
        .catch((err: unknown) => {
          log('http ingress: %s', err instanceof Error ? err.message : String(err))
          if (!socket.destroyed)
            reply(socket, '502 Bad Gateway', 'the provider did not accept the connection')
        })
    }
    socket.on('data', onData)
  }

  return {
    async start() {
      if (server != null) return
      const s = createServer(onSocket)
      await listen(s, init.port, init.host)
      server = s
    },
    async stop() {
      const s = server
      server = undefined
      if (s == null) return
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => s.close(() => resolve()))
    },
    address() {
      const a = server?.address() as AddressInfo | null | undefined
      if (a == null) throw new RpibError('ERR_RELAY_NOT_STARTED', 'the HTTP ingress is not listening')
      return { host: a.address, port: a.port }
    },
    stats: () => ({ ...stats }),
  }
}
