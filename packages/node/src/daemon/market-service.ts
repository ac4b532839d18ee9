import { ApiError } from '../api/problem.js'
import type { MarketEntry } from '../market/market-index.js'
import { createMarketNode, type MarketNode } from '../market/market-node.js'
import { ReputationBook } from '../market/reputation-book.js'
import type { WatchedLease } from '../market/outages.js'
import { createHistoryJournal, type HistoryJournal, type JournalRental } from './history-service.js'
import { marketListingsRoute, networkRoute } from './market-routes.js'
import type { DaemonService, ServiceContext } from './service.js'

export {
  MarketEntryViewSchema,
  marketListingsRoute,
  NetworkInfoSchema,
  networkRoute,
  ReputationViewSchema,
} from './market-routes.js'

/** Where the history journal finds the rentals it reports (set by the composition root). */
export interface HistorySources {
  providerRentals?(): readonly JournalRental[] | undefined
  renterLeases(): readonly WatchedLease[]
}

/**
 * The market participant (libp2p + Helia + OrbitDB listings store + presence) as a daemon service, run by
 * every role. Listing changes are published as `listing.updated` events. It also computes reputation from
 * the offers log and runs the history journal (daemon/history-service.ts) that feeds the log.
 */
export function createMarketService(
  ctx: ServiceContext,
  /** libp2p services a role adds (the relay role's circuit-relay-v2 server) */
  extraServices?: Record<string, unknown>,
): DaemonService & {
  node(): MarketNode | undefined
  setHistorySources(sources: HistorySources): void
  journal: HistoryJournal
} {
  let node: MarketNode | undefined
  let unwatch: (() => void) | undefined
  let book: ReputationBook | undefined
  let sources: HistorySources = { renterLeases: () => [] }
  const journal = createHistoryJournal(ctx, {
    market: () => node,
    providerRentals: () => sources.providerRentals?.(),
    renterLeases: () => sources.renterLeases(),
  })
  const running = (): MarketNode => {
    if (node == null)
      throw new ApiError(503, 'ERR_MARKET_NOT_RUNNING', 'the market is not running yet; retry shortly')
    return node
  }
  return {
    name: 'market',
    node: () => node,
    journal,
    setHistorySources(next) {
      sources = next
    },
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
      book = new ReputationBook({ offers: started.offers, index: started.index })
      await book.start()
      await journal.start()
      ctx.log.info('market.listening', { addresses: started.addresses() })
    },
    async stop() {
      await journal.stop()
      book?.stop()
      book = undefined
      unwatch?.()
      unwatch = undefined
      const stopping = node
      node = undefined
      await stopping?.stop()
    },
    registerRoutes(router) {
      journal.registerRoutes(router)
      const reputationView = (provider: string) => {
        const r = book?.get(provider)
        if (r === undefined) return null
        const { provider: _provider, uptime, ...counts } = r
        return { ...counts, uptime: uptime ?? null }
      }
      router.route(marketListingsRoute, ({ query }) => {
        const n = running()
        const view = (e: MarketEntry) => ({
          key: e.key,
          provider: e.provider,
          deviceId: e.deviceId,
          online: e.online,
          lastSeenAt: e.lastSeenAt ?? null,
          reputation: e.reputation ?? null,
          reputationDetail: reputationView(e.provider),
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
