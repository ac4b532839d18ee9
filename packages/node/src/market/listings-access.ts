import type { AccessControllerFactory, OrbitEntry } from '@orbitdb/core'
import * as dagCbor from '@ipld/dag-cbor'
import { sha256 } from 'multiformats/hashes/sha2'
import { base58btc } from 'multiformats/bases/base58'
import { CID } from 'multiformats/cid'
import type { Listing } from './records.js'
import { keyOfListing, verifyListing } from './records.js'

export const LISTINGS_ACCESS_TYPE = 'rpib-listings'

/** Why an entry was refused; each reason is counted separately. */
export type RefusalReason = 'op' | 'shape' | 'record' | 'key' | 'stale' | 'quota'

/** What the access controller remembers per listing key to refuse replays and enforce the quota. */
interface LedgerEntry {
  version: number
  clockTime: number
  sig: string
}

/**
 * The accepted state as the access controller sees it: highest version per listing key and the
 * number of keys per provider. Fed by the store after every accepted entry.
 */
export class ListingLedger {
  private readonly byKey = new Map<string, LedgerEntry>()
  private readonly keysByProvider = new Map<string, number>()

  record(key: string, provider: string, listing: Listing, clockTime: number): void {
    const previous = this.byKey.get(key)
    if (previous == null) this.keysByProvider.set(provider, (this.keysByProvider.get(provider) ?? 0) + 1)
    if (previous == null || listing.body.version >= previous.version) {
      this.byKey.set(key, { version: listing.body.version, clockTime, sig: sigString(listing) })
    }
  }

  get(key: string): LedgerEntry | undefined {
    return this.byKey.get(key)
  }

  keysOf(provider: string): number {
    return this.keysByProvider.get(provider) ?? 0
  }
}

function sigString(listing: Listing): string {
  return listing.sig
}

export interface ListingsAccessOptions {
  networkId: string
  ledger: ListingLedger
  maxListingsPerProvider: number
  onRefused(reason: RefusalReason, entry: OrbitEntry, detail: string): void
  /** called for every entry that passed, before OrbitDB has finished joining it */
  onAccepted(entry: OrbitEntry, key: string, listing: Listing): void
}

/** The shape of a listing document: `_id` is `<providerPeerId>/<deviceId>`, `record` the signed bytes. */
export interface ListingDoc {
  _id: string
  record: Uint8Array
}

export function isListingDoc(value: unknown): value is ListingDoc {
  if (value == null || typeof value !== 'object') return false
  const doc = value as Record<string, unknown>
  return typeof doc._id === 'string' && doc.record instanceof Uint8Array && Object.keys(doc).length === 2
}

export type ListingCheck =
  { ok: true; key: string; listing: Listing } | { ok: false; reason: RefusalReason; detail: string }

/**
 * The pure part of the access rule, shared by the access controller (writers) and the index
 * (readers validate again): a PUT of a listing signed by the peer id in its key, within limits.
 */
export async function checkListingPayload(payload: unknown): Promise<ListingCheck> {
  if (payload == null || typeof payload !== 'object')
    return { ok: false, reason: 'shape', detail: 'no payload' }
  const { op, key, value } = payload as { op?: unknown; key?: unknown; value?: unknown }
  if (op !== 'PUT') return { ok: false, reason: 'op', detail: `operation ${String(op)} is not allowed` }
  if (typeof key !== 'string' || !isListingDoc(value) || value._id !== key) {
    return { ok: false, reason: 'shape', detail: 'payload is not a listing document' }
  }
  const checked = await verifyListing(value.record, { ignoreExpiry: true })
  if (!checked.ok) return { ok: false, reason: 'record', detail: `${checked.code}: ${checked.message}` }
  if (keyOfListing(checked.record) !== key) {
    return {
      ok: false,
      reason: 'key',
      detail: `key ${key} does not belong to signer ${checked.record.signer}`,
    }
  }
  return { ok: true, key, listing: checked.record }
}

/** A deterministic access-controller address, so every node opening the store by name gets one address. */
export async function listingsAccessAddress(networkId: string): Promise<string> {
  const bytes = dagCbor.encode({ type: LISTINGS_ACCESS_TYPE, networkId, v: 1 })
  const cid = CID.createV1(dagCbor.code, await sha256.digest(bytes))
  return `/${LISTINGS_ACCESS_TYPE}/${cid.toString(base58btc)}`
}

/**
 * OrbitDB access controller of the listings store. Anyone may write (`write: ['*']`), but only
 * entries that carry a valid listing signed by the key's provider, that do not replay an older
 * version, and that keep the provider within its quota. DEL is always refused: unlisting is a
 * signed listing with status "unlisted".
 */
export function listingsAccessController(options: ListingsAccessOptions): AccessControllerFactory {
  return async () => {
    const address = await listingsAccessAddress(options.networkId)
    const canAppend = async (entry: OrbitEntry): Promise<boolean> => {
      const checked = await checkListingPayload(entry.payload)
      if (!checked.ok) {
        options.onRefused(checked.reason, entry, checked.detail)
        return false
      }
      const { key, listing } = checked
      const stored = options.ledger.get(key)
      if (stored != null) {
        const version = listing.body.version
        // An older version is only a replay when it tries to win in log order (a later clock).
        // Honest history reached late (older clock) is kept in the log and ignored by the index.
        const replay = version < stored.version && entry.clock.time > stored.clockTime
        const equivocation = version === stored.version && sigString(listing) !== stored.sig
        if (replay || equivocation) {
          options.onRefused(
            'stale',
            entry,
            `version ${version} of ${key} does not supersede ${stored.version}`,
          )
          return false
        }
      } else if (options.ledger.keysOf(listing.signer) >= options.maxListingsPerProvider) {
        options.onRefused(
          'quota',
          entry,
          `${listing.signer} already has ${options.maxListingsPerProvider} listings`,
        )
        return false
      }
      options.onAccepted(entry, key, listing)
      return true
    }
    return { type: LISTINGS_ACCESS_TYPE, address, write: ['*'], canAppend }
  }
}
