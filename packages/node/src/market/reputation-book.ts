import type { HistoryRecord } from '@rpib/protocol'
import type { MarketIndex } from './market-index.js'
import type { OffersLog } from './offers-log.js'
import {
  emptySummary,
  presenceUptime,
  providerReputation,
  summarizeHistory,
  type HistorySummary,
  type ProviderReputation,
} from './reputation.js'

export interface ReputationBookOptions {
  offers: Pick<OffersLog, 'epochs' | 'records' | 'watch'>
  index: Pick<MarketIndex, 'presenceIntervals' | 'observingSince' | 'setReputation'>
  /** uptime is judged over this window (default 7 days) */
  windowMs?: number
  /** uptime is left unknown until this node has listened for presence this long (default 10 min) */
  minObservedMs?: number
  now?: () => number
}

/**
 * Keeps every verified history record this node holds (all kept epochs, plus what arrives) and answers
 * reputation per provider. The summary is recomputed only when new records arrived since the last
 * question; uptime is computed at question time from the index's presence intervals.
 */
export class ReputationBook {
  private readonly records = new Map<string, HistoryRecord>()
  private summaries = new Map<string, HistorySummary>()
  private dirty = false
  private unwatch: (() => void) | undefined
  private readonly now: () => number

  constructor(private readonly options: ReputationBookOptions) {
    this.now = options.now ?? Date.now
  }

  async start(): Promise<void> {
    this.unwatch = this.options.offers.watch((record) => this.add(record))
    for (const epoch of this.options.offers.epochs()) {
      for (const record of await this.options.offers.records(epoch)) this.add(record)
    }
    this.options.index.setReputation((provider) => this.get(provider).score)
  }

  stop(): void {
    this.unwatch?.()
    this.unwatch = undefined
  }

  /** Number of distinct history records held. */
  get size(): number {
    return this.records.size
  }

  add(record: HistoryRecord): void {
    if (this.records.has(record.sig)) return
    this.records.set(record.sig, record)
    this.dirty = true
  }

  get(provider: string): ProviderReputation {
    if (this.dirty) {
      this.summaries = summarizeHistory(this.records.values())
      this.dirty = false
    }
    const now = this.now()
    const observedSince = this.options.index.observingSince
    // a node that just started has heard too little to judge anyone's uptime
    const uptime =
      now - observedSince < (this.options.minObservedMs ?? 10 * 60_000)
        ? undefined
        : presenceUptime(this.options.index.presenceIntervals(provider), {
            observedSince,
            windowStart: now - (this.options.windowMs ?? 7 * 24 * 3_600_000),
            now,
          })
    return providerReputation(this.summaries.get(provider) ?? emptySummary(provider), uptime)
  }

  /** The records held for one provider (its own statements and renters' outage reports about it). */
  recordsAbout(provider: string): HistoryRecord[] {
    return [...this.records.values()]
      .filter((r) => r.body.provider === provider)
      .sort((a, b) => a.createdAt - b.createdAt || (a.sig < b.sig ? -1 : 1))
  }
}
