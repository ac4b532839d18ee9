import { z } from 'zod'
import type { Listing } from './records.js'
import type { PresenceInterval } from './reputation.js'

/** Presence intervals kept per provider (older ones are dropped first). */
const MAX_PRESENCE_INTERVALS = 256

/** One row of the market: a listing joined with its provider's presence and reputation. */
export interface MarketEntry {
  key: string
  provider: string
  deviceId: string
  listing: Listing
  online: boolean
  /** unix ms of the provider's last valid presence beat, if any */
  lastSeenAt: number | undefined
  /** reputation score of the provider (see market/reputation.ts), if known */
  reputation: number | undefined
}

export const SORT_FIELDS = ['price', 'cpuScore', 'memory', 'disk', 'reputation', 'newest'] as const

export const MarketQuerySchema = z.strictObject({
  arch: z.string().max(16).optional(),
  minCpuCores: z.int().min(0).optional(),
  minCpuScore: z.int().min(0).optional(),
  minMemoryMb: z.int().min(0).optional(),
  minDiskMb: z.int().min(0).optional(),
  maxSatsPerHour: z.int().min(0).optional(),
  minReputation: z.number().optional(),
  /** default 'online': listings whose provider has no recent presence are hidden */
  presence: z.enum(['online', 'offline', 'any']).default('online'),
  provider: z.string().max(128).optional(),
  sort: z.enum(SORT_FIELDS).default('price'),
  order: z.enum(['asc', 'desc']).optional(),
  limit: z.int().min(1).max(10_000).default(100),
  offset: z.int().min(0).default(0),
})
export type MarketQuery = z.input<typeof MarketQuerySchema>

export interface MarketQueryResult {
  total: number
  entries: MarketEntry[]
}

interface Presence {
  at: number
  /** device ids the beat named; undefined = all listings of the provider */
  devices: Set<string> | undefined
}

export interface MarketIndexOptions {
  offlineAfterMs: number
  now?: () => number
  reputation?: (provider: string) => number | undefined
  /** how far back presence intervals are kept for uptime (default 7 days) */
  presenceWindowMs?: number
}

const DEFAULT_ORDER: Record<(typeof SORT_FIELDS)[number], 'asc' | 'desc'> = {
  price: 'asc',
  cpuScore: 'desc',
  memory: 'desc',
  disk: 'desc',
  reputation: 'desc',
  newest: 'desc',
}

function sortValue(entry: MarketEntry, field: (typeof SORT_FIELDS)[number]): number {
  const body = entry.listing.body
  switch (field) {
    case 'price':
      return body.satsPerHour
    case 'cpuScore':
      return body.specs.cpuScore
    case 'memory':
      return body.specs.memoryMb
    case 'disk':
      return body.specs.diskFreeMb
    case 'reputation':
      return entry.reputation ?? -Infinity
    case 'newest':
      return entry.listing.createdAt
  }
}

/**
 * The local market index: the newest valid version of every listing, joined at query time with
 * presence and reputation. Updates are O(1); a query is one pass over the listings (10,000 rows
 * take a few milliseconds), so nothing here grows with the number of messages.
 */
export class MarketIndex {
  /** newest version per key, including unlisted ones (their version still blocks replays) */
  private readonly listings = new Map<string, Listing>()
  private readonly presence = new Map<string, Presence>()
  private readonly presenceHistory = new Map<string, PresenceInterval[]>()
  private readonly now: () => number
  private reputationOf: ((provider: string) => number | undefined) | undefined
  /** when this index started hearing presence: uptime is only judged from here on */
  readonly observingSince: number

  constructor(private readonly options: MarketIndexOptions) {
    this.now = options.now ?? Date.now
    this.reputationOf = options.reputation
    this.observingSince = this.now()
  }

  /** Replaces the reputation source (the market service computes it from the offers log). */
  setReputation(reputation: (provider: string) => number | undefined): void {
    this.reputationOf = reputation
  }

  /** Unix ms of the newest valid presence beat of `provider`, if any was heard. */
  lastSeen(provider: string): number | undefined {
    return this.presence.get(provider)?.at
  }

  /** When `provider` was seen online: each beat covers the `offlineAfterMs` after it, merged. */
  presenceIntervals(provider: string): readonly PresenceInterval[] {
    return this.presenceHistory.get(provider) ?? []
  }

  private recordPresence(provider: string, at: number): void {
    const window = this.options.presenceWindowMs ?? 7 * 24 * 3_600_000
    const intervals = this.presenceHistory.get(provider) ?? []
    const last = intervals.at(-1)
    const to = at + this.options.offlineAfterMs
    if (last !== undefined && at >= last.from && at <= last.to) last.to = Math.max(last.to, to)
    else if (last === undefined || at > last.to) intervals.push({ from: at, to })
    else return // an older beat than the newest interval: already covered or too late to matter
    const horizon = this.now() - window
    while (
      intervals.length > MAX_PRESENCE_INTERVALS ||
      (intervals[0] !== undefined && intervals[0].to < horizon)
    )
      intervals.shift()
    this.presenceHistory.set(provider, intervals)
  }

  /** Offers a validated listing; returns true when it became the newest version of its key. */
  upsert(key: string, listing: Listing): boolean {
    const current = this.listings.get(key)
    if (current != null && current.body.version >= listing.body.version) return false
    this.listings.set(key, listing)
    return true
  }

  /** Records a valid presence beat of `provider` at `at` (unix ms). */
  markSeen(provider: string, at: number, devices?: readonly string[]): void {
    const current = this.presence.get(provider)
    if (current != null && current.at > at) return
    this.presence.set(provider, { at, devices: devices == null ? undefined : new Set(devices) })
    this.recordPresence(provider, at)
  }

  /** The newest version of a listing, whatever its status. */
  latest(key: string): Listing | undefined {
    return this.listings.get(key)
  }

  /** Number of keys held (listed and unlisted). */
  get size(): number {
    return this.listings.size
  }

  entry(key: string): MarketEntry | undefined {
    const listing = this.listings.get(key)
    if (listing == null || listing.body.status !== 'listed') return undefined
    return this.toEntry(key, listing, this.now())
  }

  query(input: MarketQuery = {}): MarketQueryResult {
    const q = MarketQuerySchema.parse(input)
    const now = this.now()
    const matches: MarketEntry[] = []
    for (const [key, listing] of this.listings) {
      const body = listing.body
      if (body.status !== 'listed') continue
      if (listing.expiresAt < now) continue
      if (q.arch != null && body.specs.arch !== q.arch) continue
      if (q.minCpuCores != null && body.specs.cpuCores < q.minCpuCores) continue
      if (q.minCpuScore != null && body.specs.cpuScore < q.minCpuScore) continue
      if (q.minMemoryMb != null && body.specs.memoryMb < q.minMemoryMb) continue
      if (q.minDiskMb != null && body.specs.diskFreeMb < q.minDiskMb) continue
      if (q.maxSatsPerHour != null && body.satsPerHour > q.maxSatsPerHour) continue
      if (q.provider != null && listing.signer !== q.provider) continue
      const entry = this.toEntry(key, listing, now)
      if (q.presence === 'online' && !entry.online) continue
      if (q.presence === 'offline' && entry.online) continue
      if (q.minReputation != null && (entry.reputation ?? 0) < q.minReputation) continue
      matches.push(entry)
    }
    const direction = (q.order ?? DEFAULT_ORDER[q.sort]) === 'asc' ? 1 : -1
    matches.sort(
      (a, b) => direction * (sortValue(a, q.sort) - sortValue(b, q.sort)) || (a.key < b.key ? -1 : 1),
    )
    return { total: matches.length, entries: matches.slice(q.offset, q.offset + q.limit) }
  }

  private toEntry(key: string, listing: Listing, now: number): MarketEntry {
    const seen = this.presence.get(listing.signer)
    const online =
      seen != null &&
      now - seen.at <= this.options.offlineAfterMs &&
      (seen.devices == null || seen.devices.has(listing.body.deviceId))
    return {
      key,
      provider: listing.signer,
      deviceId: listing.body.deviceId,
      listing,
      online,
      lastSeenAt: seen?.at,
      reputation: this.reputationOf?.(listing.signer),
    }
  }
}
