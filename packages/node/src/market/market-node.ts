import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { OrbitDB } from '@orbitdb/core'
import { listingKey, presenceTopic, type ListingBody } from '@rpib/protocol'
import { LevelDatastore } from 'datastore-level'
import { join } from 'node:path'
import { loadOrCreateIdentity } from '../config/identity.js'
import { ensurePrivateDir } from '../config/paths.js'
import { RpibError } from '../errors.js'
import { logger, type Logger } from '../log.js'
import { rankEndpointsForRenters } from '../p2p/addresses.js'
import { parseP2pConfig, type P2pConfigInput } from '../p2p/config.js'
import { createHeliaNode, type HeliaNode } from '../p2p/helia.js'
import { createP2pNode, type P2pNode } from '../p2p/libp2p.js'
import { parseNetworkId } from '../p2p/network-id.js'
import { createMarketOrbitDB } from './orbitdb.js'
import { MarketConfigSchema, type MarketConfig, type MarketConfigInput } from './config.js'
import { ListingsStore, parseListingBytes, type ListingsStoreStats } from './listings-store.js'
import { MarketIndex, type MarketEntry, type MarketQuery, type MarketQueryResult } from './market-index.js'
import { OffersLog } from './offers-log.js'
import { PresenceService, type PresenceStats } from './presence.js'
import { signListing, type Listing } from './records.js'

export interface MarketNodeOptions {
  /** the node's data directory; the market keeps its replica under `<dataDir>/market/<networkId>` */
  dataDir: string
  networkId: string
  /** signing key and peer id; default: the identity in `dataDir` (created on first use) */
  privateKey?: PrivateKey
  p2p?: P2pConfigInput
  market?: MarketConfigInput
  log?: Logger
  /** libp2p services a role adds (the relay role's circuit-relay-v2 server) */
  extraServices?: Record<string, unknown>
}

/** What a provider supplies to publish a listing; version and status are set by the node. */
export type ListingInput = Omit<ListingBody, 'version' | 'status'>

export interface MarketStats {
  peerId: string
  networkId: string
  connections: number
  listings: ListingsStoreStats
  presence: PresenceStats
}

export interface MarketNode {
  readonly peerId: string
  readonly networkId: string
  readonly libp2p: P2pNode
  readonly helia: HeliaNode<P2pNode>
  readonly orbitdb: OrbitDB
  readonly index: MarketIndex
  /** the signed market history (offers and lease outcomes), one log per month */
  readonly offers: OffersLog
  readonly config: MarketConfig
  /** multiaddrs others can dial (with /p2p/<peer id>) */
  addresses(): string[]
  dial(address: string, signal?: AbortSignal): Promise<void>
  /** signs and publishes a listing (a new version if the device was listed before) */
  publishListing(input: ListingInput): Promise<Listing>
  /** writes a listing signed by anyone (re-publishing, seeding); refused like any hostile write */
  importListing(bytes: Uint8Array): Promise<Listing>
  /** publishes a signed "unlisted" version of one of this node's listings */
  unlist(deviceId: string): Promise<Listing>
  /** calls `listener` whenever a listing key gets a newer version; returns the unsubscribe function */
  watchListings(listener: (key: string, listing: Listing) => void): () => void
  query(query?: MarketQuery): MarketQueryResult
  show(key: string): MarketEntry | undefined
  stats(): MarketStats
  stop(): Promise<void>
}

/**
 * A running market participant: libp2p + a minimal Helia + OrbitDB + the listings store, presence
 * service and local index. The future daemon composes one of these; tests start many.
 */
export async function createMarketNode(options: MarketNodeOptions): Promise<MarketNode> {
  const networkId = parseNetworkId(options.networkId)
  const p2pConfig = parseP2pConfig(options.p2p)
  const parsedMarket = MarketConfigSchema.safeParse(options.market ?? {})
  if (!parsedMarket.success) {
    throw new RpibError(
      'ERR_MARKET_CONFIG',
      `invalid market config: ${parsedMarket.error.issues[0]?.message}`,
    )
  }
  const config = parsedMarket.data
  const log = options.log ?? logger('rpib:market')
  await ensurePrivateDir(options.dataDir)
  const privateKey = options.privateKey ?? (await loadOrCreateIdentity(options.dataDir)).privateKey
  const root = await ensurePrivateDir(join(options.dataDir, 'market', networkId))

  const datastore = new LevelDatastore(join(root, 'datastore'))
  await datastore.open()
  let libp2p: P2pNode | undefined
  let helia: HeliaNode<P2pNode> | undefined
  let orbitdb: OrbitDB | undefined
  try {
    libp2p = await createP2pNode({
      config: p2pConfig,
      networkId,
      privateKey,
      // two copies of interface-datastore in the tree have identical runtime shapes
      datastore: datastore as unknown as Parameters<typeof createP2pNode>[0]['datastore'],
      scoredTopics: [presenceTopic(networkId)],
      ...(options.extraServices != null ? { extraServices: options.extraServices } : {}),
    })
    helia = await createHeliaNode({
      libp2p,
      directory: root,
      datastore: datastore as unknown as Parameters<typeof createHeliaNode>[0]['datastore'],
    })
    orbitdb = await createMarketOrbitDB({ helia, directory: join(root, 'orbitdb') })
  } catch (err) {
    await orbitdb?.stop().catch(() => {})
    if (helia != null) await helia.stop().catch(() => {})
    else if (libp2p != null) await Promise.resolve(libp2p.stop()).catch(() => {})
    await closeQuietly(datastore)
    throw err
  }
  const node = libp2p
  const heliaNode = helia
  const orbit = orbitdb
  const peerId = node.peerId.toString()

  // reputation comes from the offers log's history records (ReputationBook, wired by the market service)
  const index = new MarketIndex({ offlineAfterMs: config.offlineAfterMs })
  const offers = new OffersLog({
    orbitdb: orbit,
    networkId,
    keepEpochs: config.offersEpochsKept,
    log: log.newScope('offers'),
  })
  const watchers = new Set<(key: string, listing: Listing) => void>()
  const listings = new ListingsStore({
    orbitdb: orbit,
    networkId,
    index,
    log: log.newScope('listings'),
    maxListingsPerProvider: config.maxListingsPerProvider,
    onListing: (key, listing) => {
      for (const watcher of watchers) watcher(key, listing)
    },
  })
  const ownListed = (): string[] =>
    index
      .query({ provider: peerId, presence: 'any', limit: 10_000 })
      .entries.map((e) => e.deviceId)
      .slice(0, 32)
  const presence = new PresenceService({
    pubsub: node.services.pubsub,
    networkId,
    peerId: node.peerId,
    privateKey,
    index,
    log: log.newScope('presence'),
    intervalMs: config.presenceIntervalMs,
    announced: ownListed,
    addresses: () => rankEndpointsForRenters(node.getMultiaddrs().map((ma) => ma.toString())),
    // a provider's signed addresses let any node reach it, not only the peers it happens to be connected to
    onAddresses: (provider, addrs) => {
      if (provider === peerId) return
      const multiaddrs = []
      for (const a of addrs) {
        try {
          const ma = multiaddr(a)
          // the trailing /p2p/<provider> is the peer-store key, not part of the address
          multiaddrs.push(ma.getComponents().at(-1)?.value === provider ? ma.decapsulateCode(421) : ma)
        } catch {
          // ssh:// endpoints and malformed strings are not for libp2p
        }
      }
      if (multiaddrs.length === 0) return
      node.peerStore
        .merge(peerIdFromString(provider), { multiaddrs })
        .catch((err: unknown) => log('peer store: %s', (err as Error).message))
    },
  })

  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    presence.stop()
    await offers.stop()
    await listings.stop()
    await orbit.stop()
    await heliaNode.stop()
    await closeQuietly(datastore)
  }

  try {
    await listings.start()
    await offers.start()
    presence.start()
    await Promise.allSettled(p2pConfig.bootstrap.map((addr) => node.dial(multiaddr(addr))))
  } catch (err) {
    await stop()
    throw err
  }

  const nextVersion = (deviceId: string): number => {
    const latest = index.latest(listingKey(peerId, deviceId))
    // time-based versions stay monotonic even if the local replica was lost
    return Math.max(Date.now(), (latest?.body.version ?? 0) + 1)
  }

  const publish = async (body: ListingBody): Promise<Listing> => {
    if (stopped) throw new RpibError('ERR_MARKET_STOPPED', 'the market node is stopped')
    const { record, bytes } = await signListing(body, privateKey)
    await listings.put(record, bytes)
    await presence.beat()
    return record
  }

  return {
    peerId,
    networkId,
    libp2p: node,
    helia: heliaNode,
    orbitdb: orbit,
    index,
    offers,
    config,
    addresses: () => node.getMultiaddrs().map((ma) => ma.toString()),
    dial: async (address, signal) => {
      try {
        await node.dial(multiaddr(address), { signal })
      } catch (err) {
        throw new RpibError('ERR_DIAL', `could not reach ${address}: ${(err as Error).message}`, {
          cause: err,
        })
      }
    },
    importListing: async (bytes) => {
      if (stopped) throw new RpibError('ERR_MARKET_STOPPED', 'the market node is stopped')
      const record = await parseListingBytes(bytes)
      await listings.put(record, bytes)
      return record
    },
    publishListing: (input) => publish({ ...input, version: nextVersion(input.deviceId), status: 'listed' }),
    unlist: async (deviceId) => {
      const latest = index.latest(listingKey(peerId, deviceId))
      if (latest == null)
        throw new RpibError('ERR_LISTING_UNKNOWN', `no listing for device ${deviceId} on this node`)
      return publish({ ...latest.body, version: nextVersion(deviceId), status: 'unlisted' })
    },
    watchListings: (listener) => {
      watchers.add(listener)
      return () => watchers.delete(listener)
    },
    query: (query) => index.query(query),
    show: (key) => index.entry(key),
    stats: () => ({
      peerId,
      networkId,
      connections: node.getConnections().length,
      listings: listings.stats(),
      presence: presence.stats(),
    }),
    stop,
  }
}

async function closeQuietly(store: { close(): void | Promise<void> }): Promise<void> {
  try {
    await store.close()
  } catch {
    // already closed by Helia's stop()
  }
}
