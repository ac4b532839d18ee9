import { connect, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import ssh2 from 'ssh2'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Logger } from '../log.js'
import { coalesceWrites } from '../net/sockets.js'
import { bridge } from '../relay/bridge.js'
import { RELAY_CIPHERS } from '../relay/jump-server.js'
import { fingerprintOfBlob, opensshPrivateKeyFromIdentity } from '../relay/ssh-keys.js'
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js'

/** A jump relay a provider holds a reverse tunnel on. */
export interface RelayEndpoint {
  host: string
  port: number
  /** pin the relay's host key (`SHA256:…`); without it the first key seen is accepted */
  hostKeyFingerprint?: string
}

/**
 * Where a tunnelled connection goes: a local TCP address, or a server that takes connected streams
 * directly (the embedded SSH server's `injectSocket`), which saves a loopback hop.
 */
export type ForwardTarget =
  { host: string; port: number } | { serve: (stream: Duplex, source: string) => void }

/** One name the provider serves through the relay: `<name>:<port>` on the relay → `target` locally. */
export interface TunnelForward {
  name: string
  port: number
  target: ForwardTarget
}

export type TunnelState = 'idle' | 'connecting' | 'up' | 'backoff' | 'stopped'

export interface TunnelStatus {
  relay: RelayEndpoint
  state: TunnelState
  /** forwards the relay accepted on the current connection */
  accepted: string[]
  /** forwards the relay refused (not owner, over the cap …) */
  refused: string[]
  /** the last failure, one line */
  lastError?: string
  /** reconnect attempts since the tunnel was last up */
  attempt: number
}

export interface ReverseTunnelInit {
  relay: RelayEndpoint
  identity: Ed25519PrivateKey
  forwards: TunnelForward[]
  logger: Logger
  keepaliveIntervalMs?: number
  keepaliveCountMax?: number
  readyTimeoutMs?: number
  backoff?: BackoffOptions
}

export interface ReverseTunnel {
  start(): void
  stop(): Promise<void>
  status(): TunnelStatus
  /** replaces the forward set; applied on the live connection and on every reconnect */
  setForwards(forwards: TunnelForward[]): void
  onStatus(listener: (status: TunnelStatus) => void): () => void
}

export const endpointId = (r: RelayEndpoint): string => `${r.host}:${r.port}`
const forwardId = (f: { name: string; port: number }): string => `${f.name.toLowerCase()}:${f.port}`

/**
 * Provider side of a reverse SSH tunnel: logs in to one jump relay as its peer id (with the identity
 * key), asks for `tcpip-forward` of each virtual name, and pipes every channel the relay opens to the
 * local target (the embedded SSH server, or port 80 of a lease). Keepalives detect a dead relay;
 * reconnects back off exponentially with jitter and reset once the tunnel is up again.
 */
export function createReverseTunnel(init: ReverseTunnelInit): ReverseTunnel {
  const log = init.logger
  const privateKeyPem = opensshPrivateKeyFromIdentity(init.identity)
  const username = peerIdFromPrivateKey(init.identity).toString()
  const backoff = init.backoff ?? DEFAULT_BACKOFF
  const listeners = new Set<(s: TunnelStatus) => void>()
  let forwards = new Map(init.forwards.map((f) => [forwardId(f), f]))
  let status: TunnelStatus = { relay: init.relay, state: 'idle', accepted: [], refused: [], attempt: 0 }
  let client: ssh2.Client | undefined
  let transport: Socket | undefined
  let timer: NodeJS.Timeout | undefined
  let stopped = false
  const sockets = new Set<Socket>()

  function update(patch: Partial<TunnelStatus>): void {
    status = { ...status, ...patch }
    for (const l of listeners) l(status)
  }

  function requestForward(c: ssh2.Client, f: TunnelForward): Promise<boolean> {
    return new Promise((resolve) => {
      c.forwardIn(f.name, f.port, (err) => resolve(err == null))
    })
  }

  async function applyForwards(c: ssh2.Client, wanted: TunnelForward[], drop: string[]): Promise<void> {
    for (const id of drop) {
      const [name, port] = [id.slice(0, id.lastIndexOf(':')), Number(id.slice(id.lastIndexOf(':') + 1))]
      await new Promise<void>((resolve) => c.unforwardIn(name, port, () => resolve()))
    }
    const results = await Promise.all(
      wanted.map(async (f) => [forwardId(f), await requestForward(c, f)] as const),
    )
    if (c !== client) return
    const accepted = status.accepted.filter((id) => !drop.includes(id) && forwards.has(id))
    const refused: string[] = []
    for (const [id, ok] of results) {
      if (ok) accepted.push(id)
      else refused.push(id)
    }
    if (refused.length > 0) log('relay %s refused forwards %o', endpointId(init.relay), refused)
    update({ state: 'up', accepted: [...new Set(accepted)], refused, attempt: 0, lastError: undefined })
  }

  function scheduleReconnect(reason: string): void {
    client = undefined
    if (stopped) return
    const attempt = status.attempt + 1
    const delay = backoffDelay(attempt - 1, backoff)
    log('tunnel to %s down (%s); retry %d in %d ms', endpointId(init.relay), reason, attempt, delay)
    update({ state: 'backoff', accepted: [], lastError: reason, attempt })
    timer = setTimeout(connectOnce, delay)
  }

  function onChannel(
    info: ssh2.TcpConnectionDetails,
    accept: () => ssh2.ClientChannel,
    reject: () => void,
  ): void {
    const fwd = forwards.get(forwardId({ name: info.destIP, port: info.destPort }))
    if (fwd == null) return reject()
    if ('serve' in fwd.target) return fwd.target.serve(accept(), `relay ${endpointId(init.relay)}`)
    const socket = connect({ port: fwd.target.port, host: fwd.target.host, noDelay: true })
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    const onError = (): void => {
      reject()
      socket.destroy()
    }
    socket.once('error', onError)
    socket.once('connect', () => {
      socket.off('error', onError)
      const channel = accept()
      void bridge(channel, socket, { aToB: () => {}, bToA: () => {} })
    })
  }

  function connectOnce(): void {
    timer = undefined
    if (stopped) return
    const c = new ssh2.Client()
    client = c
    update({ state: 'connecting' })
    let settled = false
    const fail = (reason: string): void => {
      if (settled) return
      settled = true
      c.removeAllListeners('tcp connection')
      c.end()
      if (client === c) scheduleReconnect(reason)
    }
    c.on('ready', () => {
      void applyForwards(c, [...forwards.values()], [])
    })
    c.on('tcp connection', onChannel)
    c.on('error', (err) => fail(err.message))
    c.on('close', () => fail('connection closed'))
    const expected = init.relay.hostKeyFingerprint
    const sock = coalesceWrites(connect({ host: init.relay.host, port: init.relay.port, noDelay: true }))
    transport = sock
    sock.on('error', (err) => fail(err.message))
    c.connect({
      sock,
      username,
      privateKey: privateKeyPem,
      keepaliveInterval: init.keepaliveIntervalMs ?? 5_000,
      keepaliveCountMax: init.keepaliveCountMax ?? 3,
      readyTimeout: init.readyTimeoutMs ?? 10_000,
      algorithms: { cipher: [...RELAY_CIPHERS] },
      hostVerifier: (key: Buffer) => expected == null || fingerprintOfBlob(key) === expected,
    })
  }

  return {
    start() {
      if (stopped || client != null || timer != null) return
      connectOnce()
    },
    async stop() {
      stopped = true
      if (timer != null) clearTimeout(timer)
      timer = undefined
      const c = client
      client = undefined
      for (const s of sockets) s.destroy()
      if (c != null) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 2_000)
          c.once('close', () => {
            clearTimeout(t)
            resolve()
          })
          c.end()
        })
      }
      transport?.destroy()
      update({ state: 'stopped', accepted: [] })
    },
    status: () => status,
    setForwards(next) {
      const nextMap = new Map(next.map((f) => [forwardId(f), f]))
      const drop = [...forwards.keys()].filter((id) => !nextMap.has(id))
      const add = [...nextMap.entries()].filter(([id]) => !forwards.has(id)).map(([, f]) => f)
      forwards = nextMap
      if (client != null && status.state === 'up') void applyForwards(client, add, drop)
    },
    onStatus(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  }
}
