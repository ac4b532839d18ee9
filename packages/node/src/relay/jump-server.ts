import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net'
import { timingSafeEqual } from 'node:crypto'
import type { Duplex } from 'node:stream'
import ssh2 from 'ssh2'
import type { AuthContext, Connection, ServerChannel } from 'ssh2'
import { peerIdFromString } from '@libp2p/peer-id'
import { RpibError } from '../errors.js'
import type { Logger } from '../log.js'
import { coalesceWrites, listen } from '../net/sockets.js'
import { bridge, TokenBucket } from './bridge.js'
import type { RelayLimits } from './limits.js'
import { ownerLabel, parseTunnelName } from './names.js'
import { ed25519FromBlob, fingerprintOfBlob } from './ssh-keys.js'

/**
 * Ciphers the relay offers, AES-GCM first: Node runs it through OpenSSL with AES-NI, while
 * chacha20-poly1305 (OpenSSH's default choice) costs several times more CPU in ssh2. The relay only
 * protects the hop; the renter's session inside is end-to-end encrypted with whatever the provider
 * and renter agree on.
 */
export const RELAY_CIPHERS = [
  'aes128-gcm@openssh.com',
  'aes256-gcm@openssh.com',
  'aes128-ctr',
  'aes256-ctr',
] as const

/** The user name renters use for the jump hop (`ssh -J jump@relay …`). */
export const RENTER_USER = 'jump'

/** Counters are all a relay records: no names, no addresses, no payload. */
export interface JumpRelayStats {
  connections: number
  providerLogins: number
  renterLogins: number
  activeTunnels: number
  bridgedChannels: number
  bytesToProviders: number
  bytesFromProviders: number
  refused: {
    auth: number
    sourceCap: number
    unknownName: number
    notOwner: number
    tunnelCap: number
    channelCap: number
    badRequest: number
  }
}

export interface JumpRelayInit {
  /** OpenSSH-format host private key of the relay */
  hostKey: string
  host: string
  port: number
  limits: RelayLimits
  logger: Logger
}

interface Provider {
  owner: string
  bucket: TokenBucket | undefined
}

interface Forward {
  provider: Provider
  connection: Connection
  name: string
  port: number
}

export interface JumpRelay {
  start(): Promise<void>
  stop(): Promise<void>
  /** bound address (after start) */
  address(): { host: string; port: number }
  stats(): JumpRelayStats
  /** the relay's own host key fingerprint (`SHA256:…`) */
  hostKeyFingerprint: string
  /** true while some provider holds a forward for `name:port` */
  hasTunnel(name: string, port: number): boolean
  /**
   * Opens a channel through a provider's reverse tunnel and joins it to `peer` (used by the HTTP
   * ingress). Throws `ERR_TUNNEL_UNKNOWN` when no provider holds that name and port.
   */
  bridgeTo(name: string, port: number, peer: Duplex, source: { ip: string; port: number }): Promise<void>
}

const forwardKey = (name: string, port: number): string => `${name.toLowerCase()}:${port}`

export function createJumpRelay(init: JumpRelayInit): JumpRelay {
  const { limits, logger: log } = init
  const parsedHostKey = ssh2.utils.parseKey(init.hostKey)
  if (parsedHostKey instanceof Error) {
    throw new RpibError('ERR_RELAY_HOST_KEY', `relay host key is unreadable: ${parsedHostKey.message}`)
  }
  const hostKeyFingerprint = fingerprintOfBlob(parsedHostKey.getPublicSSH())
  const forwards = new Map<string, Forward>()
  const perSource = new Map<string, number>()
  const buckets = new Map<string, { bucket: TokenBucket; users: number }>()
  const sockets = new Set<Socket>()
  const stats: JumpRelayStats = {
    connections: 0,
    providerLogins: 0,
    renterLogins: 0,
    activeTunnels: 0,
    bridgedChannels: 0,
    bytesToProviders: 0,
    bytesFromProviders: 0,
    refused: {
      auth: 0,
      sourceCap: 0,
      unknownName: 0,
      notOwner: 0,
      tunnelCap: 0,
      channelCap: 0,
      badRequest: 0,
    },
  }
  let netServer: NetServer | undefined

  const sshServer = new ssh2.Server(
    {
      hostKeys: [init.hostKey],
      keepaliveInterval: 15_000,
      keepaliveCountMax: 3,
      algorithms: { cipher: [...RELAY_CIPHERS] },
    } as ssh2.ServerConfig,
    (client) => onClient(client),
  )

  function tunnelsOf(owner: string): number {
    let n = 0
    for (const f of forwards.values()) if (f.provider.owner === owner) n++
    return n
  }

  function openThroughTunnel(fwd: Forward, source: { ip: string; port: number }): Promise<ServerChannel> {
    return new Promise((resolve, reject) => {
      fwd.connection.forwardOut(fwd.name, fwd.port, source.ip, source.port, (err, channel) => {
        if (err != null)
          reject(new RpibError('ERR_TUNNEL_OPEN', `provider refused the channel: ${err.message}`))
        else resolve(channel)
      })
    })
  }

  async function bridgeTo(
    name: string,
    port: number,
    peer: Duplex,
    source: { ip: string; port: number },
  ): Promise<void> {
    const fwd = forwards.get(forwardKey(name, port))
    if (fwd == null) {
      stats.refused.unknownName++
      throw new RpibError(
        'ERR_TUNNEL_UNKNOWN',
        `no provider holds a tunnel named ${name}:${port} on this relay`,
      )
    }
    const channel = await openThroughTunnel(fwd, source)
    stats.bridgedChannels++
    await bridge(
      peer,
      channel,
      { aToB: (n) => (stats.bytesToProviders += n), bToA: (n) => (stats.bytesFromProviders += n) },
      fwd.provider.bucket,
    )
  }

  function authenticateProvider(ctx: AuthContext): Provider | undefined {
    if (ctx.method !== 'publickey') return undefined
    let expected: Uint8Array | undefined
    try {
      const peerId = peerIdFromString(ctx.username)
      expected = peerId.type === 'Ed25519' ? peerId.publicKey.raw : undefined
    } catch {
      return undefined
    }
    const offered = ctx.key.algo === 'ssh-ed25519' ? ed25519FromBlob(ctx.key.data) : undefined
    if (expected == null || offered == null || !timingSafeEqual(expected, offered)) return undefined
    return { owner: ownerLabel(expected), bucket: undefined }
  }

  /** one bandwidth budget per provider key, however many connections it holds */
  function bucketFor(owner: string): TokenBucket | undefined {
    if (limits.bytesPerSecondPerProvider === 0) return undefined
    const entry = buckets.get(owner) ?? {
      bucket: new TokenBucket(limits.bytesPerSecondPerProvider),
      users: 0,
    }
    entry.users++
    buckets.set(owner, entry)
    return entry.bucket
  }

  function releaseBucket(owner: string): void {
    const entry = buckets.get(owner)
    if (entry != null && --entry.users <= 0) buckets.delete(owner)
  }

  function onClient(client: Connection): void {
    let provider: Provider | undefined
    let isRenter = false
    let openChannels = 0
    const mine = new Set<string>()

    client.on('authentication', (ctx) => {
      if (ctx.username === RENTER_USER) {
        // renters need no account: the relay only bridges bytes, the provider authenticates them
        if (ctx.method === 'none' || ctx.method === 'publickey') {
          isRenter = true
          return ctx.accept()
        }
        return ctx.reject(['none'])
      }
      const candidate = authenticateProvider(ctx)
      if (candidate == null || ctx.method !== 'publickey') {
        stats.refused.auth++
        return ctx.reject(['publickey'])
      }
      if (ctx.signature == null) return ctx.accept() // key probe: "would you accept this key?"
      const key = ssh2.utils.parseKey(ctx.key.data)
      if (key instanceof Error || ctx.blob == null || !key.verify(ctx.blob, ctx.signature, ctx.hashAlgo)) {
        stats.refused.auth++
        return ctx.reject(['publickey'])
      }
      provider = candidate
      provider.bucket = bucketFor(candidate.owner)
      ctx.accept()
    })

    client.on('ready', () => {
      if (provider != null) stats.providerLogins++
      else if (isRenter) stats.renterLogins++
    })

    client.on('request', (accept, reject, name, info) => {
      const ok = (): void => accept?.()
      const no = (): void => reject?.()
      if (provider == null || (name !== 'tcpip-forward' && name !== 'cancel-tcpip-forward')) {
        stats.refused.badRequest++
        return no()
      }
      const { bindAddr, bindPort } = info as { bindAddr: string; bindPort: number }
      const parsed = parseTunnelName(bindAddr)
      if (parsed == null || !Number.isInteger(bindPort) || bindPort < 1 || bindPort > 65535) {
        stats.refused.badRequest++
        return no()
      }
      const key = forwardKey(bindAddr, bindPort)
      if (parsed.owner !== provider.owner) {
        stats.refused.notOwner++
        return no()
      }
      if (name === 'cancel-tcpip-forward') {
        if (mine.delete(key)) forwards.delete(key)
        stats.activeTunnels = forwards.size
        return ok()
      }
      const existing = forwards.get(key)
      // a reconnecting provider replaces its own stale forward; that does not count against the cap
      if (existing == null && tunnelsOf(provider.owner) >= limits.maxTunnelsPerProvider) {
        stats.refused.tunnelCap++
        return no()
      }
      forwards.set(key, { provider, connection: client, name: bindAddr.toLowerCase(), port: bindPort })
      mine.add(key)
      stats.activeTunnels = forwards.size
      ok()
    })

    client.on('tcpip', (accept, reject, info) => {
      if (!isRenter) {
        stats.refused.badRequest++
        return reject()
      }
      const fwd = forwards.get(forwardKey(info.destIP, info.destPort))
      if (fwd == null) {
        stats.refused.unknownName++
        return reject()
      }
      if (openChannels >= limits.maxChannelsPerConnection) {
        stats.refused.channelCap++
        return reject()
      }
      openChannels++
      openThroughTunnel(fwd, { ip: info.srcIP, port: info.srcPort }).then(
        (providerChannel) => {
          const renterChannel = accept()
          stats.bridgedChannels++
          renterChannel.once('close', () => openChannels--)
          void bridge(
            renterChannel,
            providerChannel,
            { aToB: (n) => (stats.bytesToProviders += n), bToA: (n) => (stats.bytesFromProviders += n) },
            fwd.provider.bucket,
          )
        },
        () => {
          openChannels--
          reject()
        },
      )
    })

    client.on('session', (_accept, reject) => reject())
    client.on('error', (err) => log('ssh client error: %s', err.message))
    client.on('close', () => {
      if (provider?.bucket != null) releaseBucket(provider.owner)
      for (const key of mine) if (forwards.get(key)?.connection === client) forwards.delete(key)
      stats.activeTunnels = forwards.size
    })
  }

  function onSocket(socket: Socket): void {
    const ip = socket.remoteAddress ?? 'unknown'
    const open = perSource.get(ip) ?? 0
    if (open >= limits.maxConnectionsPerSource) {
      stats.refused.sourceCap++
      socket.destroy()
      return
    }
    perSource.set(ip, open + 1)
    sockets.add(socket)
    stats.connections++
    socket.once('close', () => {
      sockets.delete(socket)
      const left = (perSource.get(ip) ?? 1) - 1
      if (left <= 0) perSource.delete(ip)
      else perSource.set(ip, left)
    })
    socket.on('error', () => socket.destroy())
    // interactive SSH: never let Nagle hold back a keystroke
    socket.setNoDelay(true)
    sshServer.injectSocket(coalesceWrites(socket))
  }

  return {
    hostKeyFingerprint,
    async start() {
      if (netServer != null) return
      const server = createServer(onSocket)
      await listen(server, init.port, init.host)
      netServer = server
      log('jump relay listening on %s:%d', init.host, (server.address() as AddressInfo).port)
    },
    async stop() {
      const server = netServer
      netServer = undefined
      if (server == null) return
      for (const s of sockets) s.destroy()
      forwards.clear()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
    address() {
      const a = netServer?.address() as AddressInfo | null | undefined
      if (a == null) throw new RpibError('ERR_RELAY_NOT_STARTED', 'the jump relay is not listening')
      return { host: a.address, port: a.port }
    },
    stats: () => structuredClone({ ...stats, activeTunnels: forwards.size }),
    hasTunnel: (name, port) => forwards.has(forwardKey(name, port)),
    bridgeTo,
  }
}
