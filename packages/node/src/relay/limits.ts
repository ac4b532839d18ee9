import { z } from 'zod'

/** Relay limits; every one is configurable (`rpib relay --max-…`) and validated here. */
export const RelayLimitsSchema = z.object({
  /** forwards (names) one provider key may hold at once on this relay */
  maxTunnelsPerProvider: z.number().int().min(1).max(10_000).default(16),
  /** simultaneous TCP connections from one source IP (SSH and HTTP ingress counted separately) */
  maxConnectionsPerSource: z.number().int().min(1).max(100_000).default(32),
  /** channels one renter connection may have open through the relay at once */
  maxChannelsPerConnection: z.number().int().min(1).max(10_000).default(16),
  /** bytes per second per provider, both directions summed over its channels; 0 = unlimited */
  bytesPerSecondPerProvider: z.number().int().min(0).default(0),
  /** circuit-relay-v2: reservations held at once */
  maxCircuitReservations: z.number().int().min(1).max(100_000).default(128),
  /** circuit-relay-v2: bytes one relayed libp2p connection may carry (SSH needs far more than 128 KiB) */
  circuitDataLimitBytes: z
    .number()
    .int()
    .min(1 << 17)
    .default(4 * 1024 * 1024 * 1024),
  /** circuit-relay-v2: how long one relayed libp2p connection may live */
  circuitDurationLimitMs: z
    .number()
    .int()
    .min(10_000)
    .default(12 * 60 * 60 * 1000),
})

export type RelayLimits = z.infer<typeof RelayLimitsSchema>
export type RelayLimitsInput = z.input<typeof RelayLimitsSchema>

export function relayLimits(input: RelayLimitsInput = {}): RelayLimits {
  return RelayLimitsSchema.parse(input)
}
