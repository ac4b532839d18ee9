import { randomBytes } from 'node:crypto'
import { NetworkIdSchema, isNetworkId } from '@rpib/protocol'
import { RpibError } from '../errors.js'

/**
 * A market network id is part of every topic, database name and DHT protocol, so test and sandbox
 * networks can never mix with real ones: `mainnet`, `testnet`, `regtest` or `sandbox-<name>`.
 */
export { NetworkIdSchema }
export type NetworkId = string

export function parseNetworkId(input: string): NetworkId {
  if (!isNetworkId(input)) {
    throw new RpibError(
      'ERR_NETWORK_ID',
      `invalid market network id "${input}": use mainnet, testnet, regtest or sandbox-<name> (a-z, 0-9, -)`,
    )
  }
  return input
}

/** A fresh, private sandbox network id (used by tests and the local sandbox). */
export function randomSandboxNetworkId(): NetworkId {
  return `sandbox-${randomBytes(6).toString('hex')}`
}
