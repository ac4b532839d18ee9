/**
 * The node's contributions to the public market history (the offers log):
 * - as a provider, every rental's outcome — offer paid, lease started, extensions, lease end, refunds made
 *   and refunds that failed — as signed `history` entries, private fields sealed to the renter;
 * - as a renter, outages of the providers it holds leases with (no presence beat for longer than the
 *   offline timeout), kept in `<home>/history/outages.json` and reported, renter-signed, once they end.
 * Appends are idempotent across restarts: the keys of entries already in the log are kept in
 * `<home>/history/appended.json` (a crash between the append and the save can repeat an entry; readers
 * count an entry once per signer, kind, lease and occurrence).
 */
import { join } from 'node:path'
import { z } from 'zod'
import { encodeRecord, recordId, type HistoryBody, type LeaseExtension } from '@rpib/protocol'
import { defineRoute } from '../api/contract.js'
import type { ApiRouter } from '../api/router.js'
import { ApiError } from '../api/problem.js'
import { ensurePrivateDir, readIfExists, writePrivateFile } from '../config/paths.js'
import { RpibError } from '../errors.js'
import type { MarketNode } from '../market/market-node.js'
import { signHistory, type PrivateHistoryFields } from '../market/offers-log.js'
import { OutageTracker, OutagesFileSchema, type Outage, type WatchedLease } from '../market/outages.js'
import type { ProviderRental } from '../rentals/rental-store.js'
import type { ServiceContext } from './service.js'

/** One entry a rental calls for, with the key that makes appending it idempotent. */
export interface PlannedEntry {
  key: string
  body: Omit<HistoryBody, 'sealed'>
  private?: PrivateHistoryFields
}

/** A provider rental as the journal reads it (the lease manager also keeps the extensions it offered). */
export type JournalRental = ProviderRental & {
  extensions?: { extension: LeaseExtension; status: string }[]
}

/**
 * The history entries a provider's rental calls for in its current state (pure). Unpaid offers are not
 * history: an offer enters the log once money arrived for it.
 */
export function plannedEntries(rental: JournalRental, provider: string): PlannedEntry[] {
  const id = rental.offerId
  const base = {
    leaseId: id,
    listingKey: rental.request.body.listingKey,
    provider,
    renter: rental.request.signer,
  }
  const out: PlannedEntry[] = []
  if (rental.state.paidSats > 0 || rental.lease !== undefined) {
    out.push({
      key: `offer/${id}`,
      body: { ...base, kind: 'offer', recordId: id, amountSats: rental.offer.body.priceSats },
      private: { invoiceAddress: rental.offer.body.invoice.address },
    })
  }
  if (rental.lease !== undefined) {
    out.push({
      key: `lease/${id}`,
      body: {
        ...base,
        kind: 'lease',
        recordId: recordId(rental.lease),
        startsAt: rental.lease.body.startsAt,
        endsAt: rental.lease.body.expiresAt,
      },
      private: { ssh: rental.lease.body.ssh },
    })
  }
  ;(rental.extensions ?? [])
    .filter((e) => e.status === 'applied')
    .forEach((e, seq) => {
      out.push({
        key: `lease-extension/${id}/${seq}`,
        body: {
          ...base,
          kind: 'lease-extension',
          recordId: recordId(e.extension),
          amountSats: e.extension.body.priceSats,
          seq,
        },
        private: { invoiceAddress: e.extension.body.invoice.address },
      })
    })
  if (rental.end !== undefined) {
    out.push({
      key: `lease-end/${id}`,
      body: {
        ...base,
        kind: 'lease-end',
        recordId: recordId(rental.end),
        reason: rental.end.body.reason,
        endsAt: rental.end.body.endedAt,
        amountSats: rental.end.body.refundDueSats,
      },
    })
  }
  const refundAddress = rental.request.body.refundAddress
  rental.refunds.forEach((r, seq) => {
    out.push({
      key: `refund/${id}/${seq}`,
      body: { ...base, kind: 'refund', amountSats: r.amountSats, seq },
      private: { txid: r.txid, ...(refundAddress !== undefined ? { refundAddress } : {}) },
    })
  })
  if (rental.refundError !== undefined && rental.state.status === 'ended') {
    const refunded = rental.refunds.reduce((sum, r) => sum + r.amountSats, 0)
    const owed = (rental.state.refundDueSats ?? 0) - refunded
    if (owed > 0) {
      // one failure entry per refund attempt that found this much still owed
      const seq = rental.refunds.length
      out.push({
        key: `refund-failed/${id}/${seq}`,
        body: { ...base, kind: 'refund-failed', amountSats: owed, seq },
        private: { detail: rental.refundError.slice(0, 300) },
      })
    }
  }
  return out
}

const AppendedFileSchema = z.strictObject({ version: z.literal(1), keys: z.array(z.string()) })

const OutageViewSchema = z.object({
  leaseId: z.string(),
  provider: z.string(),
  listingKey: z.string(),
  startsAt: z.number().int(),
  endsAt: z.number().int().nullable(),
  published: z.boolean(),
})

export const outagesRoute = defineRoute({
  id: 'listOutages',
  method: 'GET',
  path: '/api/market/outages',
  tag: 'market',
  auth: 'token',
  summary: 'Outages this node saw as a renter: providers of its leases that stopped sending presence',
  response: z.object({ outages: z.array(OutageViewSchema) }),
})

export interface HistoryServiceDeps {
  market(): MarketNode | undefined
  /** the provider's rentals (absent without the provider role, or before it started) */
  providerRentals?(): readonly JournalRental[] | undefined
  /** the leases this node holds as a renter */
  renterLeases(): readonly WatchedLease[]
  /** how often outages are checked and failed appends retried (default 2 s) */
  tickMs?: number
  now?: () => number
}

/** Runs inside the market service (it needs the market node and lives exactly as long). */
export interface HistoryJournal {
  start(): Promise<void>
  stop(): Promise<void>
  /** journals what changed now (also runs on lease/rental events and every `tickMs`) */
  sync(): Promise<void>
  outages(): Outage[]
  registerRoutes(router: ApiRouter): void
}

export function createHistoryJournal(ctx: ServiceContext, deps: HistoryServiceDeps): HistoryJournal {
  const dir = join(ctx.home, 'history')
  const appendedFile = join(dir, 'appended.json')
  const outagesFile = join(dir, 'outages.json')
  const now = deps.now ?? Date.now
  const self = ctx.identity.peerId.toString()
  const appended = new Set<string>()
  let tracker: OutageTracker | undefined
  let timer: NodeJS.Timeout | undefined
  let unsubscribe: (() => void) | undefined
  let chain: Promise<void> = Promise.resolve()
  let stopped = true

  /** All journal work runs one step at a time, so no entry is appended twice by concurrent triggers. */
  const serial = (work: () => Promise<void>): Promise<void> => {
    const next = chain.then(work).catch((err: unknown) => {
      ctx.log.error('history.append_failed', { err })
    })
    chain = next
    return next
  }

  async function append(
    key: string,
    body: Omit<HistoryBody, 'sealed'>,
    fields: PrivateHistoryFields | undefined,
  ): Promise<boolean> {
    const market = deps.market()
    if (market === undefined || stopped) return false
    const record = await signHistory(body, fields, ctx.identity.privateKey, self, { now: now() })
    await market.offers.append(encodeRecord(record))
    appended.add(key)
    await writePrivateFile(appendedFile, JSON.stringify({ version: 1, keys: [...appended] }))
    ctx.events.publish('history.appended', { key, kind: body.kind, leaseId: body.leaseId })
    return true
  }

  async function journalProvider(): Promise<void> {
    for (const rental of deps.providerRentals?.() ?? []) {
      for (const entry of plannedEntries(rental, self)) {
        if (appended.has(entry.key)) continue
        try {
          if (!(await append(entry.key, entry.body, entry.private))) return
        } catch (err) {
          // a refused or unreachable log: retried on the next tick, never dropped
          ctx.log.warn('history.entry_not_appended', { key: entry.key, reason: (err as Error).message })
          if (!(err instanceof RpibError)) throw err
        }
      }
    }
  }

  async function watchOutages(): Promise<void> {
    const market = deps.market()
    if (market === undefined || tracker === undefined) return
    let changed = tracker.tick(now(), deps.renterLeases(), (p) => market.index.lastSeen(p))
    for (const o of tracker.unpublished()) {
      const key = `outage/${o.leaseId}/${o.seq}`
      try {
        if (!appended.has(key)) {
          const ok = await append(
            key,
            {
              kind: 'outage',
              leaseId: o.leaseId,
              listingKey: o.listingKey,
              provider: o.provider,
              renter: self,
              startsAt: o.startsAt,
              endsAt: o.endsAt ?? o.startsAt,
              seq: o.seq,
            },
            undefined,
          )
          if (!ok) break
        }
        tracker.markPublished(o.leaseId, o.seq)
        changed = true
      } catch (err) {
        ctx.log.warn('history.outage_not_appended', { key, reason: (err as Error).message })
        if (!(err instanceof RpibError)) throw err
      }
    }
    if (changed) {
      await writePrivateFile(outagesFile, JSON.stringify({ version: 1, outages: tracker.list() }))
    }
  }

  const sync = (): Promise<void> =>
    serial(async () => {
      if (stopped) return
      await journalProvider()
      await watchOutages()
    })

  async function loadJson<T>(path: string, schema: z.ZodType<T>): Promise<T | undefined> {
    const bytes = await readIfExists(path)
    if (bytes === undefined) return undefined
    const parsed = schema.safeParse(JSON.parse(bytes.toString('utf8')))
    if (!parsed.success) {
      throw new RpibError('ERR_HISTORY_STATE', `${path} is unreadable; move it away and restart the daemon`)
    }
    return parsed.data
  }

  return {
    outages: () => tracker?.list() ?? [],
    sync,
    async start() {
      await ensurePrivateDir(dir)
      for (const key of (await loadJson(appendedFile, AppendedFileSchema))?.keys ?? []) appended.add(key)
      const market = deps.market()
      tracker = new OutageTracker(
        {
          offlineAfterMs: market?.config.offlineAfterMs ?? 90_000,
          watchingSince: market?.index.observingSince ?? now(),
        },
        (await loadJson(outagesFile, OutagesFileSchema))?.outages ?? [],
      )
      stopped = false
      unsubscribe = ctx.events.subscribe((event) => {
        if (event.type === 'lease.updated' || event.type === 'rental.updated') void sync()
      })
      timer = setInterval(() => void sync(), deps.tickMs ?? 2000)
      timer.unref()
    },
    async stop() {
      stopped = true
      clearInterval(timer)
      timer = undefined
      unsubscribe?.()
      unsubscribe = undefined
      await chain
    },
    registerRoutes(router) {
      router.route(outagesRoute, () => {
        if (tracker === undefined)
          throw new ApiError(503, 'ERR_HISTORY_NOT_RUNNING', 'the history service is not running yet')
        return {
          outages: tracker.list().map((o) => ({
            leaseId: o.leaseId,
            provider: o.provider,
            listingKey: o.listingKey,
            startsAt: o.startsAt,
            endsAt: o.endsAt ?? null,
            published: o.published,
          })),
        }
      })
    },
  }
}
