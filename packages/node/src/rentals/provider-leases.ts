/**
 * Provider side of a rental after the offer: watches the offer's invoice, provisions the lease container
 * once it is paid, hands the renter a signed Lease, ends it at expiry (or when provisioning fails) with a
 * signed LeaseEnd, and refunds whatever is due. Every step goes through the protocol's lease reducer and is
 * persisted before the next, so a restart resumes where it stopped and never serves a lease twice.
 */
import type { PeerId, PrivateKey } from '@libp2p/interface'
import {
  createLeaseState,
  leaseReducer,
  parseListingKey,
  signRecord,
  TIMEOUTS,
  type LeaseEnd,
  type LeaseEndReason,
  type LeaseExtension,
  type LeaseEvent,
  type Listing,
} from '@rpib/protocol'
import type { ContainerRuntime } from '../containers/types.js'
import { RpibError } from '../errors.js'
import { logger as makeLogger, type Logger } from '../log.js'
import type { InvoiceEvents, InvoiceService } from '../payments/invoice-service.js'
import type { InvoiceRecord } from '../payments/invoice-store.js'
import type { LeaseAccess } from '../ssh/access.js'
import type { ProviderOffer, RentalStatus } from './negotiation.js'
import type { ProviderRental, RentalStore } from './rental-store.js'
import { errorText } from './wire.js'

/**
 * The SSH user name of a lease, which is also its container's lease id: POSIX user names are at most 32
 * characters and protocol lease ids are 64 hex, so it is `l` + the first 31 hex digits (124 bits).
 */
export function leaseUser(leaseId: string): string {
  return `l${leaseId.slice(0, 31)}`
}

export interface LeaseManagerOptions {
  privateKey: PrivateKey
  peerId: PeerId
  store: RentalStore
  invoices: Pick<InvoiceService, 'on' | 'off' | 'get' | 'refund' | 'create'>
  runtime: Pick<ContainerRuntime, 'createLease' | 'removeLease' | 'reconcile'>
  /** The provider's current signed listing of a device (limits and images come from it). */
  listing(deviceId: string): Listing | undefined
  /** How renters reach this provider's SSH server, and its host key. */
  sshAccess(): { endpoints: string[]; hostKeyFingerprint: string; hostPublicKey?: string }
  /** How often expiries are checked (default 1 s). */
  sweepIntervalMs?: number
  /** How often the provider marks itself alive in the store (default 5 s). */
  aliveIntervalMs?: number
  /**
   * A gap longer than this between the last alive mark and a start is an outage: active leases get the
   * down time refunded (default 30 s; shorter restarts are not worth a transaction).
   */
  outageThresholdMs?: number
  /** How long a paid rental waits for its device's listing (e.g. right after a restart) before it fails. */
  listingWaitMs?: number
  onChange?(rental: ProviderRental): void
  now?: () => number
  logger?: Logger
}

export interface LeaseManager {
  start(): Promise<void>
  stop(): Promise<void>
  /** Starts watching an offer the negotiator made. */
  track(offer: ProviderOffer): Promise<void>
  /** Leases of a device that are paid, being provisioned or active. */
  busySlots(deviceId: string): number
  /** For the SSH server: the active lease behind an SSH user name. */
  lookup(user: string): LeaseAccess | undefined
  get(offerId: string): ProviderRental | undefined
  list(): ProviderRental[]
  /** What the negotiator tells a renter who asks where its rental stands. */
  rentalStatus(offerId: string): RentalStatus | undefined
  /**
   * Offers an active lease `addSeconds` more at `priceSats` with its own invoice (watched like the
   * lease's; once paid the lease runs longer). Asking again for the same time while it is unpaid gives the
   * same extension. Throws RpibError.
   */
  extend(offerId: string, addSeconds: number, priceSats: number): Promise<LeaseExtension>
  /** Ends an active lease now: container removed, signed LeaseEnd(cancelled), unserved time refunded. */
  cancel(offerId: string): Promise<LeaseEnd>
}

/** An extension offered to the renter, with the invoice that pays it. */
export interface ExtensionRecord {
  invoiceId: string
  extension: LeaseExtension
  status: 'offered' | 'applied' | 'expired'
}

/** A provider's rental with the extensions offered for it (kept in the same store). */
type Rental = ProviderRental & { extensions?: ExtensionRecord[] }

const OCCUPYING = new Set(['paid', 'provisioning', 'active'])

export function createLeaseManager(opts: LeaseManagerOptions): LeaseManager {
  const log = opts.logger ?? makeLogger('rpib:leases')
  const now = opts.now ?? Date.now
  const rentals = new Map<string, Rental>()
  const byInvoice = new Map<string, string>()
  let chain: Promise<void> = Promise.resolve()
  let sweep: NodeJS.Timeout | undefined
  let aliveTimer: NodeJS.Timeout | undefined
  const awaitingListing = new Set<string>()
  let aliveWrite: Promise<void> = Promise.resolve()
  let running = false

  /** All changes run one after another, so invoice events, sweeps and restarts never interleave. */
  function serial(work: () => Promise<void>): Promise<void> {
    const next = chain.then(work).catch((err: unknown) => log.error('lease step failed: %s', errorText(err)))
    chain = next
    return next
  }

  /** Like serial(), for a caller that wants the result or the error of its step. */
  function exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = chain.then(work)
    chain = result.then(
      () => undefined,
      () => undefined,
    )
    return result
  }

  async function persist(rental: ProviderRental): Promise<void> {
    await opts.store.save([...rentals.values()])
    opts.onChange?.(rental)
  }

  function apply(rental: ProviderRental, event: LeaseEvent): void {
    rental.state = leaseReducer(rental.state, event)
  }

  async function refund(rental: ProviderRental, amountSats: number, reason: string): Promise<void> {
    if (amountSats <= 0) return
    try {
      // each invoice refunds at most what it received: the lease's first, then paid extensions'
      let left = amountSats
      for (const invoiceId of paidInvoices(rental)) {
        const inv = opts.invoices.get(invoiceId)
        const refundable =
          inv.receivedSats + inv.lateSats - inv.refunds.reduce((sum, r) => sum + r.amountSats, 0)
        const part = Math.min(left, refundable)
        if (part <= 0) continue
        const { txid } = await opts.invoices.refund(invoiceId, part)
        rental.refunds.push({ txid, amountSats: part, at: now(), reason })
        left -= part
        log('refunded %d sats for %s in %s', part, rental.offerId, txid)
        if (left === 0) break
      }
      if (left > 0) throw new RpibError('ERR_REFUND_SOURCE', `${left} sats were never received`)
      delete rental.refundError
    } catch (err) {
      rental.refundError = `refund of ${amountSats} sats failed: ${errorText(err)}`
      log.error('%s: %s', rental.offerId, rental.refundError)
    }
  }

  /**
   * Ends a rental: the end state and its signed LeaseEnd become visible together and are persisted before
   * the refund is sent, so a crash in between leaves a refund that start() retries, never a lost one.
   */
  async function endRental(
    rental: ProviderRental,
    event: LeaseEvent,
    reason?: LeaseEndReason,
  ): Promise<void> {
    const next = leaseReducer(rental.state, event)
    if (reason !== undefined) {
      rental.end = await signRecord(
        'lease-end',
        {
          leaseId: rental.offerId,
          reason,
          endedAt: next.endedAt ?? event.at,
          servedSeconds: next.servedSeconds ?? 0,
          refundDueSats: next.refundDueSats ?? 0,
        },
        opts.privateKey,
        { now: now() },
      )
    }
    rental.state = next
    await persist(rental)
    await refundOwed(rental)
  }

  /** Pays whatever of the refund due (at the end, or for outages of an active lease) is not paid yet. */
  async function refundOwed(rental: ProviderRental): Promise<void> {
    const paid = rental.refunds.reduce((sum, r) => sum + r.amountSats, 0)
    const ended = rental.state.status === 'ended'
    const due = ended ? (rental.state.refundDueSats ?? 0) : (rental.state.outageRefundSats ?? 0)
    const owed = due - paid
    if (owed <= 0) return
    await refund(rental, owed, ended ? 'lease-end' : 'outage')
    await persist(rental)
  }

  function markAlive(): void {
    const at = now()
    aliveWrite = aliveWrite
      .then(() => opts.store.markAlive?.(at))
      .catch((err: unknown) => log.error('marking the provider alive failed: %s', errorText(err)))
  }

  /**
   * After a gap longer than the threshold since the last alive mark, active leases were not served in
   * between: a lease that is still running gets the down time refunded now and keeps its container and
   * files; one that expired meanwhile ends as provider-offline at the last mark, the rest refunded.
   */
  async function creditOutage(lastAlive: number | undefined, t: number): Promise<void> {
    if (lastAlive === undefined) return
    for (const rental of rentals.values()) {
      if (rental.state.status !== 'active') continue
      // every lease event also proves the provider was up then
      const downSince = Math.max(lastAlive, rental.state.updatedAt)
      if (t - downSince <= (opts.outageThresholdMs ?? 30_000)) continue
      if ((rental.state.expiresAt ?? 0) <= t) {
        await opts.runtime.removeLease(leaseUser(rental.offerId), 'expired')
        await endRental(rental, { type: 'provider-offline', at: downSince }, 'provider-offline')
        log('lease %s ran out while the provider was down', rental.offerId)
        continue
      }
      const downSeconds = Math.floor((t - downSince) / 1000)
      apply(rental, { type: 'outage', at: Math.max(t, rental.state.updatedAt), downSeconds })
      await persist(rental)
      log('lease %s: %d s of outage refunded', rental.offerId, downSeconds)
      await refundOwed(rental)
    }
  }

  async function provision(rental: ProviderRental): Promise<void> {
    const deviceId = parseListingKey(rental.request.body.listingKey)?.deviceId ?? ''
    const listing = opts.listing(deviceId)
    // After a restart the leases resume before the device's listing is published again: a paid rental
    // waits for it (retried by the sweep) rather than failing, unless the device stays gone.
    if (listing === undefined && now() - rental.state.updatedAt < (opts.listingWaitMs ?? 120_000)) {
      if (!awaitingListing.has(rental.offerId)) await persist(rental) // the payment, before waiting
      awaitingListing.add(rental.offerId)
      return
    }
    awaitingListing.delete(rental.offerId)
    const at = now()
    if (rental.state.status === 'paid') apply(rental, { type: 'provision-start', at })
    await persist(rental)
    try {
      if (listing === undefined)
        throw new RpibError('ERR_LISTING_GONE', `device ${deviceId} is no longer listed`)
      await opts.runtime.createLease({
        leaseId: leaseUser(rental.offerId),
        image: rental.request.body.image,
        expiresAt: at + rental.state.durationSeconds * 1000,
        resources: listing.body.limits,
      })
    } catch (err) {
      log.error('provisioning %s failed: %s', rental.offerId, errorText(err))
      await opts.runtime.removeLease(leaseUser(rental.offerId), 'removed').catch(() => undefined)
      await endRental(
        rental,
        { type: 'provision-failed', at: Math.max(now(), rental.state.updatedAt) },
        'provision-failed',
      )
      return
    }
    apply(rental, { type: 'activate', at })
    const access = opts.sshAccess()
    rental.lease = await signRecord(
      'lease',
      {
        leaseId: rental.offerId,
        offerId: rental.offerId,
        renter: rental.request.signer,
        listingKey: rental.request.body.listingKey,
        startsAt: at,
        expiresAt: rental.state.expiresAt ?? at,
        ssh: { user: leaseUser(rental.offerId), ...access },
      },
      opts.privateKey,
      { now: at },
    )
    await persist(rental)
    log('lease %s active until %s', rental.offerId, new Date(rental.state.expiresAt ?? at).toISOString())
  }

  async function onInvoice(invoice: InvoiceRecord): Promise<void> {
    const offerId = byInvoice.get(invoice.id)
    const rental = offerId === undefined ? undefined : rentals.get(offerId)
    if (rental === undefined) return
    const ext = rental.extensions?.find((e) => e.invoiceId === invoice.id)
    if (ext !== undefined) return onExtensionInvoice(rental, ext, invoice)
    const s = rental.state.status
    const at = Math.max(now(), rental.state.updatedAt)
    const reason = rental.state.endReason
    const lapsed = s === 'ended' && (reason === 'offer-expired' || reason === 'underpaid')
    if (invoice.status === 'paid-late' || lapsed) {
      // The offer had lapsed: a late payment bought nothing and goes back in full. This includes one the
      // invoice counts as on time (its block is dated before the expiry) that arrived after the rental ended.
      if (s === 'awaiting-payment')
        await endRental(rental, { type: 'invoice-expired', at: Math.max(at, invoice.expiresAt) })
      const refunded = rental.refunds.reduce((sum, r) => sum + r.amountSats, 0)
      const owed = invoice.receivedSats + invoice.lateSats - refunded
      if (owed > 0) {
        await refund(rental, owed, 'paid-late')
        await persist(rental)
      }
    } else if (invoice.status === 'confirmed' || invoice.status === 'overpaid') {
      if (s !== 'awaiting-payment') return
      apply(rental, { type: 'payment', at, amountSats: invoice.receivedSats - rental.state.paidSats })
      if (rental.state.status === 'paid') await provision(rental)
      else await persist(rental)
    } else if (invoice.status === 'expired' || invoice.status === 'underpaid') {
      if (s !== 'awaiting-payment') return
      if (invoice.receivedSats > rental.state.paidSats)
        apply(rental, { type: 'payment', at, amountSats: invoice.receivedSats - rental.state.paidSats })
      await endRental(rental, { type: 'invoice-expired', at: Math.max(at, invoice.expiresAt) })
    }
  }

  /** Invoices whose money a refund may come from: the lease's, then each paid extension's. */
  function paidInvoices(rental: Rental): string[] {
    const applied = (rental.extensions ?? []).filter((e) => e.status === 'applied').map((e) => e.invoiceId)
    return [rental.invoiceId, ...applied]
  }

  /** The Lease record re-signed with the lease's current expiry (after an extension). */
  async function resignLease(rental: Rental): Promise<void> {
    if (rental.lease === undefined || rental.state.expiresAt === undefined) return
    rental.lease = await signRecord(
      'lease',
      { ...rental.lease.body, expiresAt: rental.state.expiresAt },
      opts.privateKey,
      { now: now() },
    )
  }

  async function offerExtension(offerId: string, addSeconds: number, price: number): Promise<LeaseExtension> {
    const rental = rentals.get(offerId)
    if (rental === undefined) throw new RpibError('ERR_RENT_UNKNOWN_OFFER', `no rental of offer ${offerId}`)
    if (rental.state.status !== 'active') {
      throw new RpibError(
        'ERR_LEASE_NOT_ACTIVE',
        `the lease is ${rental.state.status}; only an active one extends`,
      )
    }
    const pending = rental.extensions?.find((e) => e.status === 'offered')
    if (pending !== undefined) {
      if (pending.extension.body.addSeconds === addSeconds) return pending.extension
      throw new RpibError(
        'ERR_EXTENSION_PENDING',
        'another extension is waiting for payment; pay it or let its invoice lapse first',
      )
    }
    const at = Math.max(now(), rental.state.updatedAt)
    const left = (rental.state.expiresAt ?? at) - at
    if (left <= 0) throw new RpibError('ERR_LEASE_NOT_ACTIVE', 'the lease has run out')
    // an extension must be paid while the lease still runs
    const invoice = await opts.invoices.create({
      amountSats: price,
      expiresInMs: Math.min(TIMEOUTS.offerTtlMs, left),
      label: 'rpib lease extension',
      reference: offerId,
      ...(rental.request.body.refundAddress !== undefined
        ? { refundAddress: rental.request.body.refundAddress }
        : {}),
    })
    const extension = await signRecord(
      'lease-extension',
      {
        leaseId: offerId,
        addSeconds,
        priceSats: price,
        invoice: {
          network: rental.offer.body.invoice.network,
          address: invoice.address,
          amountSats: invoice.amountSats,
          expiresAt: invoice.expiresAt,
        },
      },
      opts.privateKey,
      { now: at, ttlMs: Math.max(1, invoice.expiresAt - at) },
    )
    apply(rental, {
      type: 'extension-offered',
      at,
      addSeconds,
      priceSats: price,
      invoiceExpiresAt: Math.max(invoice.expiresAt, at + 1),
    })
    rental.extensions = [
      ...(rental.extensions ?? []),
      { invoiceId: invoice.id, extension, status: 'offered' },
    ]
    byInvoice.set(invoice.id, offerId)
    await persist(rental)
    log('extension of %s offered: %d s for %d sats', offerId, addSeconds, price)
    return extension
  }

  /** Sends back everything an extension invoice received that bought nothing. */
  async function refundUnused(rental: Rental, invoice: InvoiceRecord): Promise<void> {
    const refunded = invoice.refunds.reduce((sum, r) => sum + r.amountSats, 0)
    const amount = invoice.receivedSats + invoice.lateSats - refunded
    if (amount <= 0) return
    try {
      const { txid } = await opts.invoices.refund(invoice.id, amount)
      rental.refunds.push({ txid, amountSats: amount, at: now(), reason: 'extension-unused' })
      log('refunded %d sats of an unused extension of %s', amount, rental.offerId)
    } catch (err) {
      rental.refundError = `refund of ${amount} sats failed: ${errorText(err)}`
      log.error('%s: %s', rental.offerId, rental.refundError)
    }
    await persist(rental)
  }

  async function onExtensionInvoice(
    rental: Rental,
    ext: ExtensionRecord,
    invoice: InvoiceRecord,
  ): Promise<void> {
    const paid = invoice.status === 'confirmed' || invoice.status === 'overpaid'
    const lapsed = invoice.status === 'expired' || invoice.status === 'underpaid'
    const live = ext.status === 'offered' && rental.state.status === 'active' && rental.state.pendingExtension
    if (!live) {
      // the lease ended (or the extension lapsed) first: money on this invoice bought nothing
      if (ext.status !== 'applied' && (paid || lapsed || invoice.status === 'paid-late')) {
        if (ext.status === 'offered') ext.status = 'expired'
        await refundUnused(rental, invoice)
      }
      return
    }
    const at = Math.max(now(), rental.state.updatedAt)
    if (paid) {
      apply(rental, { type: 'extension-payment', at, amountSats: invoice.receivedSats })
      ext.status = 'applied'
      await resignLease(rental)
      await persist(rental)
      log('lease %s extended until %s', rental.offerId, new Date(rental.state.expiresAt ?? at).toISOString())
    } else if (lapsed) {
      const expiresAt = rental.state.pendingExtension?.invoiceExpiresAt ?? at
      apply(rental, { type: 'extension-expired', at: Math.max(at, expiresAt) })
      ext.status = 'expired'
      await persist(rental)
      await refundUnused(rental, invoice)
    }
  }

  async function cancelLease(offerId: string): Promise<LeaseEnd> {
    const rental = rentals.get(offerId)
    if (rental === undefined) throw new RpibError('ERR_RENT_UNKNOWN_OFFER', `no rental of offer ${offerId}`)
    if (rental.state.status === 'ended') {
      throw new RpibError('ERR_LEASE_ENDED', `the lease already ended (${rental.state.endReason ?? 'ended'})`)
    }
    if (rental.state.status !== 'active') {
      throw new RpibError(
        'ERR_LEASE_NOT_ACTIVE',
        `the lease is ${rental.state.status}; cancel it once active (an unpaid offer lapses by itself)`,
      )
    }
    await opts.runtime.removeLease(leaseUser(offerId), 'removed')
    for (const e of rental.extensions ?? []) if (e.status === 'offered') e.status = 'expired'
    await endRental(rental, { type: 'cancel', at: Math.max(now(), rental.state.updatedAt) }, 'cancelled')
    log('lease %s cancelled by its renter', offerId)
    if (rental.end === undefined) throw new RpibError('ERR_PROVIDER_INTERNAL', 'the lease end was not signed')
    return rental.end
  }

  /** Provisions the paid rentals that were waiting for their device's listing. */
  async function provisionAwaiting(): Promise<void> {
    for (const offerId of [...awaitingListing]) {
      const rental = rentals.get(offerId)
      const s = rental?.state.status
      if (rental !== undefined && (s === 'paid' || s === 'provisioning')) await provision(rental)
      else awaitingListing.delete(offerId)
    }
  }

  async function expireDue(): Promise<void> {
    const t = now()
    for (const rental of rentals.values()) {
      if (rental.state.status !== 'active' || (rental.state.expiresAt ?? Infinity) > t) continue
      await opts.runtime.removeLease(leaseUser(rental.offerId), 'expired')
      for (const e of rental.extensions ?? []) if (e.status === 'offered') e.status = 'expired'
      await endRental(rental, { type: 'expire', at: Math.max(t, rental.state.updatedAt) }, 'expired')
      log('lease %s expired', rental.offerId)
    }
  }

  const statusListener = (change: InvoiceEvents['status'][0]): void => {
    void serial(() => onInvoice(change.invoice))
  }

  return {
    async start() {
      if (running) return
      running = true
      for (const r of await opts.store.load()) {
        rentals.set(r.offerId, r)
        byInvoice.set(r.invoiceId, r.offerId)
        for (const e of (r as Rental).extensions ?? []) byInvoice.set(e.invoiceId, r.offerId)
      }
      opts.invoices.on('status', statusListener)
      const lastAlive = await opts.store.lastAlive?.()
      markAlive()
      await serial(async () => {
        await creditOutage(lastAlive, now())
        const active = [...rentals.values()].filter((r) => r.state.status === 'active')
        await opts.runtime.reconcile(
          now(),
          active.map((r) => ({ leaseId: leaseUser(r.offerId), expiresAt: r.state.expiresAt ?? 0 })),
        )
        // paid before a crash but never provisioned: createLease is idempotent, so this cannot double up
        for (const r of rentals.values())
          if (r.state.status === 'paid' || r.state.status === 'provisioning') await provision(r)
        // refunds a crash (or an empty wallet) left unpaid
        for (const r of rentals.values())
          if (r.state.status === 'ended' || r.state.status === 'active') await refundOwed(r)
        // an invoice may have moved on while we were down
        for (const r of rentals.values()) {
          if (r.state.status !== 'awaiting-payment') continue
          try {
            await onInvoice(opts.invoices.get(r.invoiceId))
          } catch (err) {
            log.error('invoice of %s: %s', r.offerId, errorText(err))
          }
        }
      })
      sweep = setInterval(
        () =>
          void serial(async () => {
            await provisionAwaiting()
            await expireDue()
          }),
        opts.sweepIntervalMs ?? 1000,
      )
      aliveTimer = setInterval(markAlive, opts.aliveIntervalMs ?? 5000)
    },
    async stop() {
      running = false
      if (sweep !== undefined) clearInterval(sweep)
      sweep = undefined
      if (aliveTimer !== undefined) {
        clearInterval(aliveTimer)
        markAlive() // serving stops now
      }
      aliveTimer = undefined
      await aliveWrite
      opts.invoices.off('status', statusListener)
      await chain
    },
    track(offer) {
      return serial(async () => {
        let state = createLeaseState(offer.offer.createdAt, offer.offer.body.durationSeconds)
        state = leaseReducer(state, {
          type: 'offer',
          at: offer.offer.createdAt,
          priceSats: offer.offer.body.priceSats,
          durationSeconds: offer.offer.body.durationSeconds,
          invoiceExpiresAt: offer.offer.body.invoice.expiresAt,
        })
        state = leaseReducer(state, { type: 'accept', at: offer.offer.createdAt })
        const rental: ProviderRental = { ...offer, state, refunds: [] }
        rentals.set(offer.offerId, rental)
        byInvoice.set(offer.invoiceId, offer.offerId)
        await persist(rental)
      })
    },
    busySlots(deviceId) {
      let n = 0
      for (const r of rentals.values()) {
        if (
          OCCUPYING.has(r.state.status) &&
          parseListingKey(r.request.body.listingKey)?.deviceId === deviceId
        )
          n++
      }
      return n
    },
    lookup(user) {
      for (const r of rentals.values()) {
        if (r.state.status !== 'active' || leaseUser(r.offerId) !== user) continue
        return {
          leaseId: user,
          expiresAt: r.state.expiresAt ?? 0,
          authorizedKeys: r.request.body.sshPublicKeys,
        }
      }
      return undefined
    },
    get: (offerId) => rentals.get(offerId),
    extend: (offerId, addSeconds, price) => exclusive(() => offerExtension(offerId, addSeconds, price)),
    cancel: (offerId) => exclusive(() => cancelLease(offerId)),
    list: () => [...rentals.values()],
    rentalStatus(offerId) {
      const r = rentals.get(offerId)
      if (r === undefined) return undefined
      return {
        renter: r.request.signer,
        status: r.state.status,
        paidSats: r.state.paidSats,
        ...(r.lease ? { lease: r.lease } : {}),
        ...(r.end ? { end: r.end } : {}),
      }
    },
  }
}
