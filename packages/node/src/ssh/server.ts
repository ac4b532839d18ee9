import { access, constants } from 'node:fs/promises'
import { createServer, type Server as NetServer, type Socket } from 'node:net'
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import ssh2, { type AuthContext, type CipherAlgorithm, type Connection } from 'ssh2'
import type { ContainerRuntime } from '../containers/types.js'
import { coalesceWrites, listen } from '../net/sockets.js'
import { logger as namedLogger, type Logger } from '../log.js'
import {
  AuthRateLimiter,
  matchPublicKey,
  type AuthRateLimiterOptions,
  type LeaseAccess,
  type LookupLease,
} from './access.js'
import { SshServerStateError } from './errors.js'
import { handleDirectTcpip } from './forward.js'
import { loadOrCreateHostKey, type HostKey } from './host-key.js'
import { handleSession, type OpenSession } from './session.js'

const { Server } = ssh2

/**
 * AES-GCM only: Node's OpenSSL does it in hardware, and OpenSSH clients (which pick the first of their
 * own preferences that the server offers) would otherwise choose chacha20 or CTR+HMAC, both much slower
 * in ssh2.
 */
export const SSH_CIPHERS: CipherAlgorithm[] = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com']

export interface SshServerOptions {
  hostKeyPath: string
  runtime: Pick<ContainerRuntime, 'exec' | 'getLease'>
  lookupLease: LookupLease
  /** Default 127.0.0.1; providers reach the world through relays, not open ports. */
  host?: string
  /** 0 = any free port. */
  port?: number
  logger?: Logger
  now?: () => number
  /** Renters are warned this long before expiry (default 15, 5 and 1 minute). */
  expiryWarningsMs?: readonly number[]
  /** How often open connections are checked against their lease (default 5 s). */
  expiryCheckIntervalMs?: number
  rateLimit?: AuthRateLimiterOptions
  /**
   * busybox on the host for `ssh -L` to services on the lease's loopback (default: found on PATH;
   * null disables it, and loopback forwards then go to the lease's network address).
   */
  busyboxPath?: string | null
}

export interface SshServer {
  start(): Promise<void>
  stop(): Promise<void>
  /** The listening port (after start). */
  readonly port: number
  /** `SHA256:…` of the host key (after start), as `ssh-keygen -lf` prints it. */
  readonly hostKeyFingerprint: string
  /** `ssh-ed25519 AAAA…` (after start), for a renter's known_hosts. */
  readonly hostPublicKey: string
  /**
   * Serves an already-connected stream (e.g. a libp2p stream or a relay's reverse tunnel). `source`
   * labels it for rate limiting.
   */
  injectSocket(socket: Duplex, source: string): void
  /** Sends a notice to every open session of a lease; returns how many got it. */
  notifyLease(leaseId: string, message: string): number
  /** Disconnects every connection of a lease (e.g. when it ended early). */
  disconnectLease(leaseId: string, message?: string): number
}

interface ConnectionState {
  client: Connection
  source: string
  leaseId: string | undefined
  sessions: Set<OpenSession>
  warned: Set<number>
}

function formatDuration(ms: number): string {
  const minutes = Math.max(0, Math.round(ms / 60_000))
  if (minutes < 60) return `${minutes} min`
  const hours = Math.floor(minutes / 60)
  return `${hours} h ${minutes % 60} min`
}

async function findOnPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    if (dir === '') continue
    const candidate = join(dir, name)
    try {
      await access(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

export function createSshServer(options: SshServerOptions): SshServer {
  const log = options.logger ?? namedLogger('rpib:ssh')
  const now = options.now ?? Date.now
  const warningsMs = [...(options.expiryWarningsMs ?? [15 * 60_000, 5 * 60_000, 60_000])].sort(
    (a, b) => b - a,
  )
  const limiter = new AuthRateLimiter(options.rateLimit)
  const connections = new Set<ConnectionState>()
  let hostKey: HostKey | undefined
  let sshServer: InstanceType<typeof Server> | undefined
  let netServer: NetServer | undefined
  let ticker: NodeJS.Timeout | undefined
  let listeningPort = 0
  let busyboxPath: string | undefined
  const expiresAtCache = new WeakMap<ConnectionState, number>()

  async function lookup(user: string): Promise<LeaseAccess | undefined> {
    try {
      const lease = await options.lookupLease(user)
      if (lease == null || lease.leaseId !== user || lease.expiresAt <= now()) return undefined
      return lease
    } catch (err) {
      log.error('lease lookup for %s failed: %s', user, (err as Error).message)
      return undefined
    }
  }

  async function authenticate(state: ConnectionState, ctx: AuthContext): Promise<void> {
    if (ctx.method !== 'publickey') {
      // OpenSSH probes with "none" first; that is not a failed attempt
      if (ctx.method !== 'none') limiter.recordFailure(state.source)
      return ctx.reject(['publickey'])
    }
    const lease = await lookup(ctx.username)
    const key = lease != null ? matchPublicKey(ctx, lease.authorizedKeys) : undefined
    if (lease == null || key == null) {
      limiter.recordFailure(state.source)
      log('refused %s from %s', ctx.username, state.source)
      return ctx.reject(['publickey'])
    }
    if (ctx.signature != null) {
      state.leaseId = lease.leaseId
      expiresAtCache.set(state, lease.expiresAt)
    }
    ctx.accept()
  }

  function onConnection(client: Connection, info: { ip: string }): void {
    const state: ConnectionState = {
      client,
      source: info.ip ?? 'unknown',
      leaseId: undefined,
      sessions: new Set(),
      warned: new Set(),
    }
    connections.add(state)
    client.on('authentication', (ctx) => {
      if (limiter.blocked(state.source)) return ctx.reject([])
      void authenticate(state, ctx)
    })
    client.on('session', (accept, reject) => {
      const leaseId = state.leaseId
      if (leaseId == null) return reject()
      handleSession(accept(), {
        leaseId,
        runtime: options.runtime,
        log,
        loginNotice: () => leaseNotice(state),
        expiryWarning: () => {
          const left = leaseEndsAt(state) - now()
          return left <= (warningsMs[0] ?? 0) ? `this lease ends in ${formatDuration(left)}` : undefined
        },
        register(session) {
          state.sessions.add(session)
          return () => state.sessions.delete(session)
        },
      })
    })
    client.on('tcpip', (accept, reject, tcpInfo) => {
      if (state.leaseId == null) return reject()
      void handleDirectTcpip(state.leaseId, options.runtime, tcpInfo, accept, reject, log, { busyboxPath })
    })
    // remote forwarding and other global requests are not offered
    client.on('request', (_accept, reject) => reject?.())
    client.on('error', (err) => log('connection from %s: %s', state.source, err.message))
    client.on('close', () => connections.delete(state))
  }

  /** Disconnects after this tick's (corked) writes went out, so a last notice reaches the client. */
  /**
   * Ends a connection shortly after its last notice was written: ending it at once (even on the next
   * tick) let the disconnect overtake the notice under load, and the renter never saw why.
   */
  function endAfterFlush(state: ConnectionState): void {
    setTimeout(() => state.client.end(), 250).unref()
  }

  function leaseEndsAt(state: ConnectionState): number {
    return expiresAtCache.get(state) ?? Number.MAX_SAFE_INTEGER
  }
  function leaseNotice(state: ConnectionState): string {
    const endsAt = leaseEndsAt(state)
    return `lease ${state.leaseId} ends at ${new Date(endsAt).toISOString()} (in ${formatDuration(endsAt - now())})`
  }

  /** Warns open sessions before expiry and disconnects leases that ended (or were extended: re-read). */
  async function checkExpiry(): Promise<void> {
    for (const state of connections) {
      if (state.leaseId == null) continue
      const lease = await lookup(state.leaseId)
      if (lease == null) {
        for (const session of state.sessions) session.notify('this lease has ended; disconnecting')
        endAfterFlush(state)
        continue
      }
      expiresAtCache.set(state, lease.expiresAt)
      const left = lease.expiresAt - now()
      const due = warningsMs.filter((w) => left <= w && !state.warned.has(w))
      if (due.length > 0) {
        for (const w of due) state.warned.add(w)
        for (const session of state.sessions) session.notify(`this lease ends in ${formatDuration(left)}`)
      }
    }
  }

  function accept(socket: Duplex, source: string): void {
    if (sshServer == null) {
      socket.destroy()
      return
    }
    if (limiter.blocked(source)) {
      log('refusing connection from %s: too many failed attempts', source)
      socket.destroy()
      return
    }
    // ssh2 reads the client address from socket.remoteAddress; label injected streams with their source
    if ((socket as Partial<Socket>).remoteAddress !== source) {
      Object.defineProperty(socket, 'remoteAddress', { value: source, configurable: true })
    }
    coalesceWrites(socket)
    sshServer.injectSocket(socket as Socket)
  }

  return {
    async start() {
      if (sshServer != null) throw new SshServerStateError('the SSH server is already running')
      hostKey = await loadOrCreateHostKey(options.hostKeyPath)
      busyboxPath =
        options.busyboxPath === null ? undefined : (options.busyboxPath ?? (await findOnPath('busybox')))
      sshServer = new Server(
        { hostKeys: [hostKey.privateKey], ident: 'rpib', algorithms: { cipher: SSH_CIPHERS } },
        onConnection,
      )
      sshServer.on('error', (err: Error) => log.error('ssh server: %s', err.message))
      const server = createServer((socket) => {
        socket.setNoDelay(true)
        accept(socket, socket.remoteAddress ?? 'unknown')
      })
      netServer = server
      await listen(server, options.port ?? 0, options.host ?? '127.0.0.1')
      const address = server.address()
      listeningPort = typeof address === 'object' && address != null ? address.port : 0
      let checking = false // a slow lookup must not let two checks warn or disconnect twice
      ticker = setInterval(() => {
        if (checking) return
        checking = true
        checkExpiry()
          .catch((err: unknown) => log('expiry check failed: %s', err instanceof Error ? err.message : err))
          .finally(() => (checking = false))
      }, options.expiryCheckIntervalMs ?? 5_000)
      ticker.unref()
      log('listening on %s:%d, host key %s', options.host ?? '127.0.0.1', listeningPort, hostKey.fingerprint)
    },
    async stop() {
      if (ticker != null) clearInterval(ticker)
      ticker = undefined
      const server = netServer
      netServer = undefined
      sshServer = undefined
      const closing = [...connections].map(
        (state) =>
          new Promise<void>((resolve) => {
            state.client.once('close', () => resolve())
            state.client.end()
            setTimeout(resolve, 2_000).unref()
          }),
      )
      await Promise.all(closing)
      connections.clear()
      if (server != null) await new Promise<void>((resolve) => server.close(() => resolve()))
    },
    get port() {
      return listeningPort
    },
    get hostKeyFingerprint() {
      if (hostKey == null) throw new SshServerStateError('start the SSH server before reading its host key')
      return hostKey.fingerprint
    },
    get hostPublicKey() {
      if (hostKey == null) throw new SshServerStateError('start the SSH server before reading its host key')
      return hostKey.publicKey
    },
    injectSocket: accept,
    notifyLease(leaseId, message) {
      let count = 0
      for (const state of connections) {
        if (state.leaseId !== leaseId) continue
        for (const session of state.sessions) {
          session.notify(message)
          count++
        }
      }
      return count
    },
    disconnectLease(leaseId, message) {
      let count = 0
      for (const state of connections) {
        if (state.leaseId !== leaseId) continue
        if (message != null) for (const session of state.sessions) session.notify(message)
        endAfterFlush(state)
        count++
      }
      return count
    },
  }
}
