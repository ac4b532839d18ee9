import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { identify } from '@libp2p/identify'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { circuitRelayServerInit } from '../relay/circuit.js'
import type { RelayLimits } from '../relay/limits.js'

export interface TunnelLibp2pOptions {
  privateKey?: PrivateKey
  /** listen addresses; `<relay multiaddr>/p2p-circuit` takes a reservation on that relay */
  listen: string[]
  /** makes this node a circuit-relay-v2 server with these limits */
  relayServer?: RelayLimits
  /** addresses to announce instead of the listen addresses (a relay behind a port mapping) */
  announce?: string[]
}

/**
 * The small libp2p node used by `rpib relay`, `rpib proxy`/`rpib ssh` and the provider tunnel
 * agent: TCP, Noise, Yamux, identify, the circuit-relay-v2 transport (reservations and relayed
 * dials) and DCUtR hole punching; optionally a relay server. The full market node (p2p/) carries
 * the same pieces plus gossip and discovery.
 */
export async function createTunnelLibp2p(opts: TunnelLibp2pOptions): Promise<Libp2p> {
  const base = { identify: identify(), dcutr: dcutr() }
  const services =
    opts.relayServer != null
      ? { ...base, relay: circuitRelayServer(circuitRelayServerInit(opts.relayServer)) }
      : base
  return createLibp2p({
    privateKey: opts.privateKey,
    addresses: { listen: opts.listen, announce: opts.announce },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services,
  })
}
