import { z } from 'zod'
import { defineRoute } from '../api/contract.js'
import { ApiError } from '../api/problem.js'
import type { MarketEntry } from '../market/market-index.js'
import { createMarketNode, type MarketNode } from '../market/market-node.js'
import type { DaemonService, ServiceContext } from './service.js'

export const NetworkInfoSchema = z.object({
  peerId: z.string(),
  networkId: z.string(),
  addresses: z.array(z.string()).describe('multiaddrs others can dial (with /p2p/<peer id>)'),
  connections: z.number().int().nonnegative(),
  listings: z.object({
    keys: z.number().int().nonnegative().describe('listing keys known locally'),
    syncErrors: z.number().int().nonnegative(),
    refused: z
      .record(z.string(), z.number().int())
      .describe('entries refused by the access controller, by reason'),
  }),
  presence: z.object({
    published: z.number().int(),
    accepted: z.number().int(),
    rejected: z.number().int(),
    ignored: z.number().int(),
  }),
})

export const networkRoute = defineRoute({
  id: 'getNetwork',
  method: 'GET',
  path: '/api/network',
  tag: 'network',
  auth: 'token',
  summary: 'The p2p side of this node: listen addresses, connections, listings replica and presence counters',
  response: NetworkInfoSchema,
})

const MarketEntryViewSchema = z.object({
  key: z.string(),
  provider: z.string(),
  deviceId: z.string(),
  online: z.boolean(),
  lastSeenAt: z.number().nullable(),
  reputation: z.number().nullable(),
  listing: z.unknown().describe('the signed Listing record'),
})
const int = z.coerce.number().int().min(0)

export const marketListingsRoute = defineRoute({
  id: 'listMarket',
  method: 'GET',
  path: '/api/market/listings',
  tag: 'market',
  auth: 'token',
  summary: 'Query the local market index (listings joined with presence and reputation)',
  query: z.strictObject({
    arch: z.string().max(16).optional(),
    minCpuCores: int.optional(),
    minCpuScore: int.optional(),
    minMemoryMb: int.optional(),
    minDiskMb: int.optional(),
    maxSatsPerHour: int.optional(),
    minReputation: z.coerce.number().optional(),
    presence: z.enum(['online', 'offline', 'any']).default('online'),
    sort: z.enum(['price', 'cpuScore', 'memory', 'disk', 'reputation', 'newest']).default('price'),
    order: z.enum(['asc', 'desc']).optional(),
    limit: z.coerce.number().int().min(1).max(10_000).default(100),
    key: z.string().max(200).optional(),
  }),
  response: z.object({
    networkId: z.string(),
    total: z.number().int(),
    entries: z.array(MarketEntryViewSchema),
  }),
})

/**
 * The market participant (libp2p + Helia + OrbitDB listings store + presence) as a daemon service, run by
 * every role. Listing changes are published as `listing.updated` events.
 */
export function createMarketService(
  ctx: ServiceContext,
  /** libp2p services a role adds (the relay role's circuit-relay-v2 server) */
  extraServices?: Record<string, unknown>,
): DaemonService & { node(): MarketNode | undefined } {
  let node: MarketNode | undefined
  let unwatch: (() => void) | undefined
  const running = (): MarketNode => {
    if (node == null)
      throw new ApiError(503, 'ERR_MARKET_NOT_RUNNING', 'the market is not running yet; retry shortly')
    return node
  }
  return {
    name: 'market',
    node: () => node,
    async start(signal) {
      const started = await createMarketNode({
        dataDir: ctx.home,
        networkId: ctx.config.network,
        privateKey: ctx.identity.privateKey,
        p2p: ctx.config.p2p,
        market: { presenceIntervalMs: ctx.config.presence.intervalSeconds * 1000 },
        ...(extraServices != null ? { extraServices } : {}),
      })
      if (signal.aborted) {
        await started.stop()
        return
      }
      node = started
      unwatch = started.watchListings((key, listing) => {
        ctx.events.publish('listing.updated', {
          key,
          version: listing.body.version,
          status: listing.body.status,
        })
      })
      ctx.log.info('market.listening', { addresses: started.addresses() })
    },
    async stop() {
      unwatch?.()
      unwatch = undefined
      const stopping = node
      node = undefined
      await stopping?.stop()
    },
    registerRoutes(router) {
      router.route(marketListingsRoute, ({ query }) => {
        const n = running()
        const view = (e: MarketEntry) => ({
          key: e.key,
          provider: e.provider,
          deviceId: e.deviceId,
          online: e.online,
          lastSeenAt: e.lastSeenAt ?? null,
          reputation: e.reputation ?? null,
          listing: e.listing,
        })
        if (query.key != null) {
          const entry = n.show(query.key)
          return {
            networkId: n.networkId,
            total: entry == null ? 0 : 1,
            entries: entry == null ? [] : [view(entry)],
          }
        }
        const { key: _key, ...q } = query
        const result = n.query(q)
        return { networkId: n.networkId, total: result.total, entries: result.entries.map(view) }
      })
      router.route(networkRoute, () => {
        const n = running()
        const stats = n.stats()
        return { ...stats, addresses: n.addresses() }
      })
    },
  }
}
