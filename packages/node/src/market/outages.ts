/**
 * A renter's view of its providers' outages: a lease whose provider has sent no presence beat for longer
 * than the offline timeout is in an outage, from the last moment the provider was known alive until a beat
 * arrives again (or the lease ends). Pure state + `tick`; the history service persists and publishes it.
 */
import { z } from 'zod'

export const OutageSchema = z.strictObject({
  leaseId: z.string(),
  provider: z.string(),
  listingKey: z.string(),
  /** last moment the provider was known alive (its last beat, or when watching began) */
  startsAt: z.number().int(),
  /** when presence came back or the lease ended; absent while the outage lasts */
  endsAt: z.number().int().optional(),
  /** occurrence number within the lease */
  seq: z.number().int().min(0),
  /** set once the renter-signed report is in the public log */
  published: z.boolean(),
})
export type Outage = z.infer<typeof OutageSchema>

export const OutagesFileSchema = z.strictObject({ version: z.literal(1), outages: z.array(OutageSchema) })

/** A lease the renter holds, as the watcher needs it. */
export interface WatchedLease {
  leaseId: string
  provider: string
  listingKey: string
  startsAt: number
  expiresAt: number
}

export interface OutageTrackerOptions {
  /** no beat for longer than this = offline (the market's presence timeout) */
  offlineAfterMs: number
  /** when this node began listening for presence: a provider it has not heard yet is judged from here */
  watchingSince: number
}

export class OutageTracker {
  private readonly outages: Outage[]

  constructor(
    private readonly options: OutageTrackerOptions,
    initial: readonly Outage[] = [],
  ) {
    this.outages = initial.map((o) => ({ ...o }))
  }

  list(): Outage[] {
    return this.outages.map((o) => ({ ...o }))
  }

  private open(leaseId: string): Outage | undefined {
    return this.outages.find((o) => o.leaseId === leaseId && o.endsAt === undefined)
  }

  /**
   * Moves outages forward to `now` for the leases held; returns true when anything changed (to persist).
   * `lastSeen(provider)` is the newest beat heard from a provider.
   */
  tick(
    now: number,
    leases: readonly WatchedLease[],
    lastSeen: (provider: string) => number | undefined,
  ): boolean {
    let changed = false
    const held = new Map(leases.map((l) => [l.leaseId, l]))
    // outages of leases no longer held (ended, forgotten) close at the last time they could have lasted
    for (const o of this.outages) {
      if (o.endsAt !== undefined || held.has(o.leaseId)) continue
      o.endsAt = Math.max(o.startsAt, Math.min(now, lastSeen(o.provider) ?? now))
      changed = true
    }
    for (const lease of leases) {
      const seen = lastSeen(lease.provider)
      const current = this.open(lease.leaseId)
      if (current !== undefined) {
        if (seen !== undefined && seen > current.startsAt) {
          current.endsAt = seen
          changed = true
        } else if (now >= lease.expiresAt) {
          current.endsAt = Math.max(current.startsAt, lease.expiresAt)
          changed = true
        }
        continue
      }
      if (now < lease.startsAt || now >= lease.expiresAt) continue
      const alive = Math.max(seen ?? this.options.watchingSince, lease.startsAt, this.options.watchingSince)
      // a beat newer than the last outage's end is needed before a new outage can start
      const previous = this.outages.filter((o) => o.leaseId === lease.leaseId)
      const lastEnd = previous.reduce((m, o) => Math.max(m, o.endsAt ?? 0), 0)
      const from = Math.max(alive, lastEnd)
      if (now - from <= this.options.offlineAfterMs) continue
      this.outages.push({
        leaseId: lease.leaseId,
        provider: lease.provider,
        listingKey: lease.listingKey,
        startsAt: from,
        seq: previous.length,
        published: false,
      })
      changed = true
    }
    return changed
  }

  /** Closed outages not yet in the public log. */
  unpublished(): Outage[] {
    return this.outages.filter((o) => o.endsAt !== undefined && !o.published).map((o) => ({ ...o }))
  }

  markPublished(leaseId: string, seq: number): void {
    const o = this.outages.find((x) => x.leaseId === leaseId && x.seq === seq)
    if (o !== undefined) o.published = true
  }
}
