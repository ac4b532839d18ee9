/**
 * Provider reputation, computed from the public market history (verified `history` records) and the
 * presence this node observed. Pure: the same records in any order give the same result.
 *
 * Only what a party says about itself counts: lease outcomes and refunds must be signed by the lease's
 * provider, outage reports by the lease's renter — and only for a lease the provider itself reported to
 * that renter, so a stranger cannot invent outages against a provider.
 */
import type { HistoryBody, HistoryKind, HistoryRecord } from '@rpib/protocol'

export interface ProviderReputation {
  provider: string
  /** leases the provider reported as started */
  leases: number
  /** leases that ran to their end (lease-end reason 'expired') */
  completedLeases: number
  /** leases that ended because the provider failed (provision-failed, provider-offline) */
  failedLeases: number
  refunds: number
  refundedSats: number
  /** leases with a refund the provider reported as failed and has not made good since */
  failedRefunds: number
  failedRefundSats: number
  /** renter-reported outages (distinct reports) and their total length within the lease */
  outages: number
  outageSeconds: number
  /** share of the observed window this node saw the provider's presence, 0..1; undefined if unobserved */
  uptime: number | undefined
  /** see `reputationScore` */
  score: number
}

export interface PresenceInterval {
  from: number
  to: number
}

/** Providers' own statements must be signed by them; outage reports by the renter. */
function speaksForItself(record: HistoryRecord): boolean {
  const body = record.body
  return body.kind === 'outage' ? record.signer === body.renter : record.signer === body.provider
}

function entryKey(body: HistoryBody): string {
  return `${body.kind}/${body.leaseId}/${body.seq ?? 0}`
}

interface LeaseFacts {
  renter: string | undefined
  startsAt: number | undefined
  endsAt: number | undefined
  end: HistoryBody | undefined
  refundedSats: number
  refunds: number
  failed: HistoryBody[]
  outages: HistoryBody[]
}

export type HistorySummary = Omit<ProviderReputation, 'uptime' | 'score'>

/**
 * Folds verified history records into one summary per provider. Duplicates (same signer, kind, lease
 * and occurrence) count once; when a signer equivocates, the record with the smallest signature wins, so
 * the result does not depend on the order records arrived in.
 */
export function summarizeHistory(records: Iterable<HistoryRecord>): Map<string, HistorySummary> {
  const chosen = new Map<string, HistoryRecord>()
  for (const record of records) {
    if (record.type !== 'history' || !speaksForItself(record)) continue
    const key = `${record.signer}|${entryKey(record.body)}`
    const current = chosen.get(key)
    if (current === undefined || record.sig < current.sig) chosen.set(key, record)
  }

  const leases = new Map<string, LeaseFacts>()
  const facts = (provider: string, leaseId: string): LeaseFacts => {
    const key = `${provider}|${leaseId}`
    let f = leases.get(key)
    if (f === undefined) {
      f = {
        renter: undefined,
        startsAt: undefined,
        endsAt: undefined,
        end: undefined,
        refundedSats: 0,
        refunds: 0,
        failed: [],
        outages: [],
      }
      leases.set(key, f)
    }
    return f
  }
  for (const { body } of chosen.values()) {
    const f = facts(body.provider, body.leaseId)
    const kind: HistoryKind = body.kind
    switch (kind) {
      case 'lease':
        f.renter = body.renter
        f.startsAt = body.startsAt
        f.endsAt = body.endsAt
        break
      case 'lease-end':
        f.end = body
        break
      case 'refund':
        f.refunds++
        f.refundedSats += body.amountSats ?? 0
        break
      case 'refund-failed':
        f.failed.push(body)
        break
      case 'outage':
        f.outages.push(body)
        break
      case 'offer':
      case 'lease-extension':
        break
    }
  }

  const out = new Map<string, HistorySummary>()
  for (const [key, f] of leases) {
    const provider = key.slice(0, key.indexOf('|'))
    let s = out.get(provider)
    if (s === undefined) {
      s = emptySummary(provider)
      out.set(provider, s)
    }
    if (f.renter !== undefined) s.leases++
    if (f.end?.reason === 'expired') s.completedLeases++
    if (f.end?.reason === 'provision-failed' || f.end?.reason === 'provider-offline') s.failedLeases++
    s.refunds += f.refunds
    s.refundedSats += f.refundedSats
    if (f.failed.length > 0) {
      const due = f.end?.amountSats ?? Math.max(...f.failed.map((b) => b.amountSats ?? 0))
      const missing = due - f.refundedSats
      if (missing > 0) {
        s.failedRefunds++
        s.failedRefundSats += missing
      }
    }
    // an outage counts only if the provider itself reported this lease to this renter
    if (f.renter !== undefined && f.startsAt !== undefined && f.endsAt !== undefined) {
      const leaseEnd = f.end?.endsAt ?? f.endsAt
      for (const o of f.outages) {
        if (o.renter !== f.renter) continue
        const from = Math.max(o.startsAt ?? 0, f.startsAt)
        const to = Math.min(o.endsAt ?? 0, leaseEnd)
        if (to <= from) continue
        s.outages++
        s.outageSeconds += Math.round((to - from) / 1000)
      }
    }
  }
  return out
}

/**
 * Share of [max(windowStart, observedSince), now] covered by presence intervals (merged first, so
 * overlapping intervals count once). Undefined when the window is empty.
 */
export function presenceUptime(
  intervals: readonly PresenceInterval[],
  window: { observedSince: number; windowStart: number; now: number },
): number | undefined {
  const start = Math.max(window.observedSince, window.windowStart)
  const span = window.now - start
  if (span <= 0) return undefined
  const clipped = intervals
    .map((i) => ({ from: Math.max(i.from, start), to: Math.min(i.to, window.now) }))
    .filter((i) => i.to > i.from)
    .sort((a, b) => a.from - b.from)
  let covered = 0
  let cursor = start
  for (const i of clipped) {
    const from = Math.max(i.from, cursor)
    if (i.to > from) {
      covered += i.to - from
      cursor = i.to
    }
  }
  return Math.min(1, covered / span)
}

/**
 * score = completedLeases × uptime − failedLeases − outages − 3 × failedRefunds, rounded to 2 decimals
 * (uptime counts as 1 when this node has not observed the provider). Completed leases earn trust;
 * provider failures cost a lease's worth each, and an unpaid refund costs three.
 */
export function reputationScore(summary: HistorySummary, uptime: number | undefined): number {
  const raw =
    summary.completedLeases * (uptime ?? 1) -
    summary.failedLeases -
    summary.outages -
    3 * summary.failedRefunds
  return Math.round(raw * 100) / 100
}

export function emptySummary(provider: string): HistorySummary {
  return {
    provider,
    leases: 0,
    completedLeases: 0,
    failedLeases: 0,
    refunds: 0,
    refundedSats: 0,
    failedRefunds: 0,
    failedRefundSats: 0,
    outages: 0,
    outageSeconds: 0,
  }
}

export function providerReputation(summary: HistorySummary, uptime: number | undefined): ProviderReputation {
  return { ...summary, uptime, score: reputationScore(summary, uptime) }
}
