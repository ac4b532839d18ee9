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
  type LeaseEndReason,
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
  invoices: Pick<InvoiceService, 'on' | 'off' | 'get' | 'refund'>
  runtime: Pick<ContainerRuntime, 'createLease' | 'removeLease' | 'reconcile'>
  /** The provider's current signed listing of a device (limits and images come from it). */
  listing(deviceId: string): Listing | undefined
  /** How renters reach this provider's SSH server, and its host key. */
  sshAccess(): { endpoints: string[]; hostKeyFingerprint: string }
  /** How often expiries are checked (default 1 s). */
  sweepIntervalMs?: number
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
}

const OCCUPYING = new Set(['paid', 'provisioning', 'active'])

export function createLeaseManager(opts: LeaseManagerOptions): LeaseManager {
  const log = opts.logger ?? makeLogger('rpib:leases')
  const now = opts.now ?? Date.now
  const rentals = new Map<string, ProviderRental>()
  const byInvoice = new Map<string, string>()
  let chain: Promise<void> = Promise.resolve()
  let sweep: NodeJS.Timeout | undefined
  let running = false

  /** All changes run one after another, so invoice events, sweeps and restarts never interleave. */
  function serial(work: () => Promise<void>): Promise<void> {
    const next = chain.then(work).catch((err: unknown) => log.error('lease step failed: %s', errorText(err)))
    chain = next
    return next
  }

  async function persist(rental: ProviderRental): Promise<void> {
    await opts.store.save([...rentals.values()])
    opts.onChange?.(rental)
  }

  function apply(rental: ProviderRental, event: LeaseEvent): void {
    rental.state = leaseReducer(rental.state, event)
  }

  async function refund(rental: ProviderRental, amountSats: number): Promise<void> {
    if (amountSats <= 0) return
    try {
      const { txid } = await opts.invoices.refund(rental.invoiceId, amountSats)
      rental.refunds.push({ txid, amountSats, at: now() })
      delete rental.refundError
      log('refunded %d sats for %s in %s', amountSats, rental.offerId, txid)
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

  /** Pays whatever of the refund due has not been paid yet. */
  async function refundOwed(rental: ProviderRental): Promise<void> {
    const paid = rental.refunds.reduce((sum, r) => sum + r.amountSats, 0)
    const owed = (rental.state.refundDueSats ?? 0) - paid
    if (owed <= 0) return
    await refund(rental, owed)
    await persist(rental)
  }

  async function provision(rental: ProviderRental): Promise<void> {
    const at = now()
    if (rental.state.status === 'paid') apply(rental, { type: 'provision-start', at })
    await persist(rental)
    const deviceId = parseListingKey(rental.request.body.listingKey)?.deviceId ?? ''
    const listing = opts.listing(deviceId)
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
    const s = rental.state.status
    const at = Math.max(now(), rental.state.updatedAt)
    if (invoice.status === 'confirmed' || invoice.status === 'overpaid') {
      if (s !== 'awaiting-payment') return
      apply(rental, { type: 'payment', at, amountSats: invoice.receivedSats - rental.state.paidSats })
      if (rental.state.status === 'paid') await provision(rental)
      else await persist(rental)
    } else if (invoice.status === 'expired' || invoice.status === 'underpaid') {
      if (s !== 'awaiting-payment') return
      if (invoice.receivedSats > rental.state.paidSats)
        apply(rental, { type: 'payment', at, amountSats: invoice.receivedSats - rental.state.paidSats })
      await endRental(rental, { type: 'invoice-expired', at: Math.max(at, invoice.expiresAt) })
    } else if (invoice.status === 'paid-late') {
      // The offer had already lapsed: a late payment bought nothing and goes back in full.
      const refunded = rental.refunds.reduce((sum, r) => sum + r.amountSats, 0)
      await refund(rental, invoice.receivedSats + invoice.lateSats - refunded)
      await persist(rental)
    }
  }

  async function expireDue(): Promise<void> {
    const t = now()
    for (const rental of rentals.values()) {
      if (rental.state.status !== 'active' || (rental.state.expiresAt ?? Infinity) > t) continue
      await opts.runtime.removeLease(leaseUser(rental.offerId), 'expired')
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
      }
      opts.invoices.on('status', statusListener)
      await serial(async () => {
        const active = [...rentals.values()].filter((r) => r.state.status === 'active')
        await opts.runtime.reconcile(
          now(),
          active.map((r) => ({ leaseId: leaseUser(r.offerId), expiresAt: r.state.expiresAt ?? 0 })),
        )
        // paid before a crash but never provisioned: createLease is idempotent, so this cannot double up
        for (const r of rentals.values())
          if (r.state.status === 'paid' || r.state.status === 'provisioning') await provision(r)
        // refunds a crash (or an empty wallet) left unpaid
        for (const r of rentals.values()) if (r.state.status === 'ended') await refundOwed(r)
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
      sweep = setInterval(() => void serial(expireDue), opts.sweepIntervalMs ?? 1000)
    },
    async stop() {
      running = false
      if (sweep !== undefined) clearInterval(sweep)
      sweep = undefined
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
