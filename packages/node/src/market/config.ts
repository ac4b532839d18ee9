import { z } from 'zod'
import { TIMEOUTS } from '@rpib/protocol'

/** Market knobs: presence timing, quotas and what this node replicates. */
export const MarketConfigSchema = z.strictObject({
  /** interval between a provider's presence beats (ms) */
  presenceIntervalMs: z.int().min(100).max(3_600_000).default(TIMEOUTS.presenceIntervalMs),
  /** a listing without a beat for this long is shown offline and hidden by default (ms) */
  offlineAfterMs: z
    .int()
    .min(200)
    .max(24 * 3_600_000)
    .default(TIMEOUTS.presenceOfflineAfterMs),
  /** listings one provider may hold in the store; entries beyond it are refused by every node */
  maxListingsPerProvider: z.int().min(1).max(1024).default(16),
  /** offers-log epochs (months) kept locally, the current one included */
  offersEpochsKept: z.int().min(1).max(120).default(3),
})

export type MarketConfig = z.infer<typeof MarketConfigSchema>
export type MarketConfigInput = z.input<typeof MarketConfigSchema>
