/**
 * The market's routes of the local API as data (zod schemas), shared by the daemon (market-service.ts)
 * and the CLI (`rpib market`, `rpib rent --replicas`), which must not load libp2p to send one request.
 */
import { z } from 'zod'
import { defineRoute } from '../api/contract.js'

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

export const ReputationViewSchema = z.object({
  leases: z.number().int(),
  completedLeases: z.number().int(),
  failedLeases: z.number().int(),
  refunds: z.number().int(),
  refundedSats: z.number().int(),
  failedRefunds: z.number().int(),
  failedRefundSats: z.number().int(),
  outages: z.number().int(),
  outageSeconds: z.number().int(),
  uptime: z.number().nullable().describe('share of the observed window the provider was present, 0..1'),
  score: z.number(),
})

export const MarketEntryViewSchema = z.object({
  key: z.string(),
  provider: z.string(),
  deviceId: z.string(),
  online: z.boolean(),
  lastSeenAt: z.number().nullable(),
  reputation: z.number().nullable(),
  reputationDetail: ReputationViewSchema.nullable().describe(
    'what the score is made of (market/reputation.ts)',
  ),
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
