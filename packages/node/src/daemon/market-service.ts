import { z } from 'zod'
import { defineRoute } from '../api/contract.js'
import { ApiError } from '../api/problem.js'
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
      router.route(networkRoute, () => {
        const n = running()
        const stats = n.stats()
        return { ...stats, addresses: n.addresses() }
      })
    },
  }
}
