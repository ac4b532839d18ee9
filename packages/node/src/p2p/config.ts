import { z } from 'zod'

/**
 * Every libp2p knob a node operator (or a test) may turn. Defaults suit a home node: listen on all
 * interfaces, find peers by bootstrap list, mDNS and the DHT, use relays when behind NAT.
 */
export const P2pConfigSchema = z.object({
  /** multiaddrs to listen on; `/p2p-circuit` asks relays for a reservation */
  listen: z.array(z.string()).default(['/ip4/0.0.0.0/tcp/0', '/ip4/0.0.0.0/tcp/0/ws']),
  /** addresses to announce instead of the observed ones (e.g. a public IP behind port forwarding) */
  announce: z.array(z.string()).default([]),
  /** multiaddrs (with /p2p/<peer id>) dialled at start and kept as discovery seeds */
  bootstrap: z.array(z.string()).default([]),
  transports: z
    .object({ tcp: z.boolean().default(true), websockets: z.boolean().default(true) })
    .prefault({}),
  /** LAN discovery by multicast DNS */
  mdns: z.boolean().default(true),
  /** Kademlia DHT for wide-area peer routing (protocol namespaced by network id) */
  dht: z.boolean().default(true),
  /** circuit-relay-v2 client transport (dial and listen through relays) */
  relayClient: z.boolean().default(true),
  /** direct connection upgrade through relay (hole punching) */
  dcutr: z.boolean().default(true),
  /** answer and ask autoNAT reachability checks */
  autonat: z.boolean().default(true),
  connectionManager: z
    .object({
      maxConnections: z.number().int().min(1).default(200),
      dialTimeoutMs: z.number().int().min(100).default(10_000),
    })
    .prefault({}),
  gossipsub: z
    .object({
      /** heartbeat of the mesh; lower values spread messages faster at a CPU cost */
      heartbeatIntervalMs: z.number().int().min(50).default(700),
      /** reject messages above this size at the wire */
      maxMessageBytes: z
        .number()
        .int()
        .min(1024)
        .default(1024 * 1024),
      /** peer score threshold below which gossip from a peer is ignored */
      gossipThreshold: z.number().max(0).default(-10),
      publishThreshold: z.number().max(0).default(-50),
      graylistThreshold: z.number().max(0).default(-80),
      /**
       * peers sharing one IP beyond this count are penalised (sybil defence); note that every peer of
       * a loopback test shares 127.0.0.1
       */
      ipColocationThreshold: z.number().int().min(1).default(10),
      /** IPs exempt from the colocation penalty (e.g. `127.0.0.1` for local test networks) */
      ipColocationWhitelist: z.array(z.string()).default([]),
      /** weight of a rejected (invalid) message in a peer's score (negative) */
      invalidMessagePenalty: z.number().max(0).default(-10),
    })
    .prefault({}),
})

export type P2pConfig = z.infer<typeof P2pConfigSchema>
export type P2pConfigInput = z.input<typeof P2pConfigSchema>

export function parseP2pConfig(input: P2pConfigInput = {}): P2pConfig {
  return P2pConfigSchema.parse(input)
}
