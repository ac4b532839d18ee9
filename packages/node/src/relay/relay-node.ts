import type { Ed25519PrivateKey, Libp2p } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import ssh2 from 'ssh2'
import type { Logger } from '../log.js'
import { createTunnelLibp2p } from '../tunnel/libp2p-node.js'
import { loadOrCreateRelayHostKey } from './host-key.js'
import { createHttpIngress, type HttpIngress, type HttpIngressStats } from './http-ingress.js'
import { createJumpRelay, type JumpRelay, type JumpRelayStats } from './jump-server.js'
import { relayLimits, type RelayLimitsInput } from './limits.js'

export interface RelayNodeInit {
  home: string
  identity: Ed25519PrivateKey
  listenHost: string
  sshPort: number
  /** omit to run without HTTP ingress */
  httpPort?: number
  /** omit to run without the libp2p circuit relay */
  p2pPort?: number
  announce?: string[]
  limits?: RelayLimitsInput
  logger: Logger
}

export interface RelayNodeInfo {
  peerId: string
  ssh: { host: string; port: number; hostKeyFingerprint: string; hostPublicKey: string }
  http?: { host: string; port: number }
  p2p?: string[]
}

export interface RelayNode {
  info(): RelayNodeInfo
  stats(): { ssh: JumpRelayStats; http?: HttpIngressStats; circuitReservations?: number }
  stop(): Promise<void>
}

/** Everything `rpib relay` runs: the SSH jump server, HTTP ingress over it, and a circuit relay. */
export async function startRelayNode(init: RelayNodeInit): Promise<RelayNode> {
  // undefined means "use the default" for every limit the caller did not set
  const limits = relayLimits(
    Object.fromEntries(Object.entries(init.limits ?? {}).filter(([, v]) => v != null)) as RelayLimitsInput,
  )
  const hostKey = await loadOrCreateRelayHostKey(init.home)
  const parsed = ssh2.utils.parseKey(hostKey)
  const hostPublicKey =
    parsed instanceof Error ? '' : `${parsed.type} ${parsed.getPublicSSH().toString('base64')}`
  const jump: JumpRelay = createJumpRelay({
    hostKey,
    host: init.listenHost,
    port: init.sshPort,
    limits,
    logger: init.logger,
  })
  let http: HttpIngress | undefined
  let p2p: Libp2p | undefined
  try {
    await jump.start()
    if (init.httpPort != null) {
      http = createHttpIngress({
        relay: jump,
        host: init.listenHost,
        port: init.httpPort,
        limits,
        logger: init.logger,
      })
      await http.start()
    }
    if (init.p2pPort != null) {
      p2p = await createTunnelLibp2p({
        privateKey: init.identity,
        listen: [`/ip4/${init.listenHost}/tcp/${init.p2pPort}`],
        announce: init.announce,
        relayServer: limits,
      })
    }
  } catch (err) {
    await p2p?.stop()
    await http?.stop()
    await jump.stop()
    throw err
  }
  const peerId = peerIdFromPrivateKey(init.identity).toString()
  return {
    info: () => ({
      peerId,
      ssh: { ...jump.address(), hostKeyFingerprint: jump.hostKeyFingerprint, hostPublicKey },
      http: http?.address(),
      p2p: p2p?.getMultiaddrs().map((a) => a.toString()),
    }),
    stats: () => ({ ssh: jump.stats(), http: http?.stats() }),
    async stop() {
      await p2p?.stop()
      await http?.stop()
      await jump.stop()
    },
  }
}
