import { circuitRelayServer, type CircuitRelayServerInit } from '@libp2p/circuit-relay-v2'
import type { RelayLimits } from './limits.js'

/**
 * circuit-relay-v2 server settings for an rpib relay. The library default cuts a relayed connection
 * after 128 KiB and 2 minutes, which kills an SSH session at once; we apply our own, deliberate
 * limits (large but finite, so one renter cannot tie a relay up forever). DCUtR moves traffic to a
 * direct connection whenever hole punching works, which keeps relayed volume small in practice.
 */
export function circuitRelayServerInit(limits: RelayLimits): CircuitRelayServerInit {
  return {
    reservations: {
      maxReservations: limits.maxCircuitReservations,
      applyDefaultLimit: true,
      defaultDataLimit: BigInt(limits.circuitDataLimitBytes),
      defaultDurationLimit: limits.circuitDurationLimitMs,
    },
  }
}

export function rpibCircuitRelayServer(limits: RelayLimits): ReturnType<typeof circuitRelayServer> {
  return circuitRelayServer(circuitRelayServerInit(limits))
}
