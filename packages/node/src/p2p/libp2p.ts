import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { bootstrap } from '@libp2p/bootstrap'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { createTopicScoreParams, type TopicScoreParams } from '@libp2p/gossipsub/score'
import { identify, type Identify } from '@libp2p/identify'
import type { KadDHT } from '@libp2p/kad-dht'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { ping, type Ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2pOptions } from 'libp2p'
import { RpibError } from '../errors.js'
import type { P2pConfig } from './config.js'
import type { NetworkId } from './network-id.js'

/** The services every RPi Broker libp2p node carries. OrbitDB finds gossipsub under `pubsub`. */
export interface P2pServices extends Record<string, unknown> {
  identify: Identify
  ping: Ping
  pubsub: GossipSub
  dht?: KadDHT
}

export type P2pNode = Libp2p<P2pServices>

export interface CreateP2pNodeOptions {
  config: P2pConfig
  networkId: NetworkId
  privateKey: PrivateKey
  /** persistent peer store and DHT records; in-memory when omitted */
  datastore?: Libp2pOptions['datastore']
  /** gossipsub topics scored with a heavy penalty for invalid messages (e.g. the presence topic) */
  scoredTopics?: string[]
  /** start listening and dialling at once (default true) */
  start?: boolean
  /** services a role adds to the node, e.g. the relay's circuit-relay-v2 server under `relay` */
  extraServices?: Record<string, unknown>
}

/** Scoring for topics whose messages we validate: a rejected message costs the sender dearly. */
function strictTopicScore(config: P2pConfig): TopicScoreParams {
  return createTopicScoreParams({
    topicWeight: 1,
    timeInMeshWeight: 0.01,
    timeInMeshQuantum: 1000,
    timeInMeshCap: 100,
    firstMessageDeliveriesWeight: 1,
    firstMessageDeliveriesDecay: 0.9,
    firstMessageDeliveriesCap: 20,
    meshMessageDeliveriesWeight: 0,
    meshFailurePenaltyWeight: 0,
    invalidMessageDeliveriesWeight: config.gossipsub.invalidMessagePenalty,
    invalidMessageDeliveriesDecay: 0.9,
  })
}

/**
 * Builds (and by default starts) a libp2p node: TCP + WebSockets, Noise, Yamux, identify, ping,
 * gossipsub with peer scoring, circuit-relay-v2 client, DCUtR, autoNAT, and discovery by bootstrap
 * list, mDNS and a Kademlia DHT namespaced by the market network id. Every part can be switched
 * off in the config (tests on loopback turn off mDNS and the DHT).
 */
export async function createP2pNode(options: CreateP2pNodeOptions): Promise<P2pNode> {
  const { config, networkId } = options
  const transports: NonNullable<Libp2pOptions['transports']> = []
  if (config.transports.tcp) transports.push(tcp())
  // optional parts are imported only when enabled: the DHT alone costs ~40 MB of RSS to load
  if (config.transports.websockets) transports.push((await import('@libp2p/websockets')).webSockets())
  if (config.relayClient) transports.push((await import('@libp2p/circuit-relay-v2')).circuitRelayTransport())
  if (transports.length === 0) {
    throw new RpibError('ERR_P2P_CONFIG', 'no transport enabled: enable tcp or websockets in the p2p config')
  }

  const peerDiscovery: NonNullable<Libp2pOptions['peerDiscovery']> = []
  if (config.bootstrap.length > 0) peerDiscovery.push(bootstrap({ list: config.bootstrap, timeout: 0 }))
  if (config.mdns) {
    const { mdns } = await import('@libp2p/mdns')
    peerDiscovery.push(mdns({ serviceTag: `rpib-${networkId}.local` }))
  }

  const topics: Record<string, TopicScoreParams> = {}
  for (const topic of options.scoredTopics ?? []) topics[topic] = strictTopicScore(config)

  const services: Record<string, unknown> = {
    identify: identify(),
    ping: ping(),
    pubsub: gossipsub({
      allowPublishToZeroTopicPeers: true,
      emitSelf: false,
      heartbeatInterval: config.gossipsub.heartbeatIntervalMs,
      maxInboundDataLength: config.gossipsub.maxMessageBytes,
      scoreParams: {
        topics,
        IPColocationFactorThreshold: config.gossipsub.ipColocationThreshold,
        IPColocationFactorWhitelist: new Set(config.gossipsub.ipColocationWhitelist),
      },
      scoreThresholds: {
        gossipThreshold: config.gossipsub.gossipThreshold,
        publishThreshold: config.gossipsub.publishThreshold,
        graylistThreshold: config.gossipsub.graylistThreshold,
      },
    }),
  }
  if (config.dht) {
    const { kadDHT } = await import('@libp2p/kad-dht')
    services.dht = kadDHT({ protocol: `/rpib/${networkId}/kad/1.0.0`, clientMode: false })
  }
  if (config.autonat) {
    const { autoNAT } = await import('@libp2p/autonat')
    services.autonat = autoNAT({ protocolPrefix: `rpib-${networkId}` })
  }
  if (config.dcutr) services.dcutr = (await import('@libp2p/dcutr')).dcutr()
  Object.assign(services, options.extraServices)

  const node = await createLibp2p({
    privateKey: options.privateKey,
    start: options.start ?? true,
    addresses: { listen: config.listen, announce: config.announce },
    transports,
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery,
    connectionManager: {
      maxConnections: config.connectionManager.maxConnections,
      dialTimeout: config.connectionManager.dialTimeoutMs,
    },
    ...(options.datastore != null ? { datastore: options.datastore } : {}),
    services: services as Libp2pOptions<P2pServices>['services'],
  })
  return node
}
