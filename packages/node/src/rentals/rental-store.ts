import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Lease, LeaseEnd, LeaseState, Offer, RentRequest } from '@rpib/protocol'
import { writePrivateFile } from '../config/paths.js'
import { RpibError } from '../errors.js'

/** Everything a provider knows about one rental, from its offer to its end and refunds. */
export interface ProviderRental {
  /** recordId() of the offer; also the lease id (64 hex) and the container's lease id. */
  offerId: string
  invoiceId: string
  request: RentRequest
  offer: Offer
  state: LeaseState
  lease?: Lease
  end?: LeaseEnd
  refunds: { txid: string; amountSats: number; at: number }[]
  /** Why a refund that was due could not be made (shown to the owner and kept for the public log). */
  refundError?: string
}

export interface RentalStore {
  load(): Promise<ProviderRental[]>
  save(rentals: readonly ProviderRental[]): Promise<void>
}

/** Rentals in one JSON file (`<dir>/rentals.json`, mode 0600), rewritten atomically on every change. */
export function createRentalFileStore(dir: string): RentalStore {
  const path = join(dir, 'rentals.json')
  return {
    async load() {
      let text: string
      try {
        text = await readFile(path, 'utf8')
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
        throw err
      }
      try {
        const data = JSON.parse(text) as { version: number; rentals: ProviderRental[] }
        if (data.version !== 1 || !Array.isArray(data.rentals)) throw new Error('unknown format')
        return data.rentals
      } catch (err) {
        throw new RpibError(
          'ERR_RENTALS_CORRUPT',
          `${path} is unreadable (${(err as Error).message}); restore it from a backup before starting`,
          { cause: err },
        )
      }
    },
    async save(rentals) {
      await writePrivateFile(path, JSON.stringify({ version: 1, rentals }, null, 1))
    },
  }
}
