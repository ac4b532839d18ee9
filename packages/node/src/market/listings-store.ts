import { Documents, type DocumentsDatabase, type OrbitDB, type OrbitEntry } from '@orbitdb/core'
import { listingsDbName } from '@rpib/protocol'
import type { Logger } from '../log.js'
import {
  ListingLedger,
  checkListingPayload,
  listingsAccessController,
  type ListingDoc,
  type RefusalReason,
} from './listings-access.js'
import type { MarketIndex } from './market-index.js'
import type { Listing } from './records.js'
import { keyOfListing, verifyListing } from './records.js'
import { RpibError } from '../errors.js'

export interface ListingsStoreStats {
  /** entries refused by the access controller, by reason */
  refused: Record<RefusalReason, number>
  /** sync or apply errors reported by OrbitDB (refusals included) */
  syncErrors: number
  /** listing keys known (listed and unlisted) */
  keys: number
}

export interface ListingsStoreOptions {
  orbitdb: OrbitDB
  networkId: string
  index: MarketIndex
  log: Logger
  maxListingsPerProvider: number
  /** called after a listing became the newest version of its key in the index */
  onListing?: (key: string, listing: Listing) => void
}

interface Pending {
  hash: string
  key: string
  listing: Listing
  clockTime: number
  at: number
}

/** Pending entries that never joined (their chain was refused) are forgotten after this long. */
const PENDING_TTL_MS = 60_000

/**
 * The replicated listings store: an OrbitDB documents store keyed `<providerPeerId>/<deviceId>`,
 * guarded by the listings access controller, feeding the local market index.
 *
 * OrbitDB reports only the head of each joined chain, so entries accepted by the access controller
 * wait in `pending` until the log confirms it holds them; the reader validates each again before it
 * reaches the index.
 */
export class ListingsStore {
  private db: DocumentsDatabase | undefined
  private readonly ledger = new ListingLedger()
  private readonly pending = new Map<string, Pending>()
  private readonly refused: Record<RefusalReason, number> = {
    op: 0,
    shape: 0,
    record: 0,
    key: 0,
    stale: 0,
    quota: 0,
  }
  private syncErrors = 0
  private draining: Promise<void> = Promise.resolve()

  constructor(private readonly options: ListingsStoreOptions) {}

  get address(): string {
    return this.requireDb().address
  }

  async start(): Promise<void> {
    const { orbitdb, networkId, log } = this.options
    const AccessController = listingsAccessController({
      networkId,
      ledger: this.ledger,
      maxListingsPerProvider: this.options.maxListingsPerProvider,
      onRefused: (reason, entry, detail) => {
        this.refused[reason]++
        log('refused listings entry %s (%s): %s', entry.hash, reason, detail)
      },
      onAccepted: (entry, key, listing) => {
        // local appends are checked before they have a hash; put() indexes them itself
        if (typeof entry.hash !== 'string') return
        this.pending.set(entry.hash, {
          hash: entry.hash,
          key,
          listing,
          clockTime: entry.clock.time,
          at: Date.now(),
        })
      },
    })
    const db = (await orbitdb.open(listingsDbName(networkId), {
      Database: Documents({ indexBy: '_id' }),
      AccessController,
    })) as DocumentsDatabase
    this.db = db
    db.events.on('update', this.onUpdate)
    db.events.on('error', this.onError)
    // The replica on disk was validated when it was written, but the reader checks it again.
    this.pending.clear()
    for await (const entry of db.log.iterator()) await this.ingest(entry)
  }

  async stop(): Promise<void> {
    const db = this.db
    if (db == null) return
    this.db = undefined
    db.events.off('update', this.onUpdate)
    await this.draining
    try {
      await db.close()
    } catch (err) {
      this.options.log('closing the listings store failed: %s', (err as Error).message)
    }
    db.events.off('error', this.onError)
  }

  /** Writes a signed listing; refuses (typed error) what honest peers would refuse. */
  async put(listing: Listing, bytes: Uint8Array): Promise<void> {
    const db = this.requireDb()
    const key = keyOfListing(listing)
    const doc: ListingDoc = { _id: key, record: bytes }
    const check = await checkListingPayload({ op: 'PUT', key, value: doc })
    if (!check.ok)
      throw new RpibError('ERR_LISTING_INVALID', `listing refused (${check.reason}): ${check.detail}`)
    const latest = this.options.index.latest(key)
    if (latest != null && latest.body.version >= listing.body.version) {
      throw new RpibError(
        'ERR_LISTING_STALE',
        `listing ${key} is at version ${latest.body.version}; publish a higher version`,
      )
    }
    try {
      const hash = await db.put(doc as unknown as Record<string, unknown>)
      const entry = await (db.log as unknown as { get(hash: string): Promise<OrbitEntry | undefined> }).get(
        hash,
      )
      this.accept(key, listing, entry?.clock.time ?? 0)
    } catch (err) {
      throw new RpibError(
        'ERR_LISTING_REFUSED',
        `the listings store refused ${key}: ${(err as Error).message}`,
        {
          cause: err,
        },
      )
    }
  }

  stats(): ListingsStoreStats {
    return { refused: { ...this.refused }, syncErrors: this.syncErrors, keys: this.options.index.size }
  }

  /** Peers currently exchanging heads of this store. */
  peers(): string[] {
    return [...(this.db?.peers ?? [])]
  }

  private requireDb(): DocumentsDatabase {
    if (this.db == null) throw new RpibError('ERR_MARKET_STOPPED', 'the market node is not running')
    return this.db
  }

  private readonly onUpdate = (): void => {
    this.draining = this.draining
      .then(() => this.drain())
      .catch((err: unknown) => {
        this.syncErrors++
        this.options.log.error('listings drain failed: %s', (err as Error).message)
      })
  }

  private readonly onError = (err: unknown): void => {
    this.syncErrors++
    this.options.log('listings sync error: %s', err instanceof Error ? err.message : String(err))
  }

  /** Moves accepted entries that the log now holds into the ledger and the index. */
  private async drain(): Promise<void> {
    const db = this.db
    if (db == null) return
    const now = Date.now()
    for (const pending of [...this.pending.values()]) {
      const has = await (db.log as unknown as { has(hash: string): Promise<boolean> }).has(pending.hash)
      if (has) {
        this.pending.delete(pending.hash)
        this.accept(pending.key, pending.listing, pending.clockTime)
      } else if (now - pending.at > PENDING_TTL_MS) {
        this.pending.delete(pending.hash)
      }
    }
  }

  private async ingest(entry: OrbitEntry): Promise<void> {
    const checked = await checkListingPayload(entry.payload)
    if (!checked.ok) {
      this.refused[checked.reason]++
      return
    }
    this.accept(checked.key, checked.listing, entry.clock.time)
  }

  private accept(key: string, listing: Listing, clockTime: number): void {
    this.ledger.record(key, listing.signer, listing, clockTime)
    if (this.options.index.upsert(key, listing)) this.options.onListing?.(key, listing)
  }
}

/** Re-validates a listing read from anywhere (e.g. a JSON file) before it is trusted. */
export async function parseListingBytes(bytes: Uint8Array): Promise<Listing> {
  const checked = await verifyListing(bytes)
  if (!checked.ok)
    throw new RpibError('ERR_LISTING_INVALID', `listing rejected (${checked.code}): ${checked.message}`)
  return checked.record
}
