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
  /** `reason`: 'lease-end' (what the LeaseEnd owes), 'outage' (down time mid-lease) or 'paid-late'. */
  refunds: { txid: string; amountSats: number; at: number; reason?: string }[]
  /** Why a refund that was due could not be made (shown to the owner and kept for the public log). */
  refundError?: string
}

export interface RentalStore {
  load(): Promise<ProviderRental[]>
  save(rentals: readonly ProviderRental[]): Promise<void>
  /** When the provider was last known to be serving (unix ms), to measure an outage after a crash. */
  lastAlive?(): Promise<number | undefined>
  markAlive?(at: number): Promise<void>
}

/** Rentals in one JSON file (`<dir>/rentals.json`, mode 0600), rewritten atomically on every change. */
export function createRentalFileStore(dir: string): RentalStore {
  const path = join(dir, 'rentals.json')
  // a separate tiny file, so marking presence every few seconds never rewrites the rentals
  const alivePath = join(dir, 'alive')
  return {
    async lastAlive() {
      try {
        const at = Number.parseInt(await readFile(alivePath, 'utf8'), 10)
        return Number.isSafeInteger(at) && at > 0 ? at : undefined
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
        throw err
      }
    },
    async markAlive(at) {
      await writePrivateFile(alivePath, `${at}\n`)
    },
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
