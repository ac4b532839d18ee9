/**
 * The lease lifecycle as a pure reducer: (state, event) → new state. It never mutates its input and
 * THROWS IllegalTransitionError (code ERR_ILLEGAL_TRANSITION, with `from` and `event`) for an event that
 * is not allowed in the current state, and ProtocolError ERR_RANGE for malformed event values.
 *
 * Happy path: requested → offered → awaiting-payment → paid → provisioning → active → ended(expired).
 * Failure branches: offered/awaiting-payment → ended(offer-expired | underpaid) when the invoice expires;
 * paid/provisioning → ended(provision-failed); paid/provisioning/active → ended(provider-offline);
 * any state before ended → ended(cancelled). Extensions and outage credits happen inside `active`.
 *
 * An `outage` (the provider was down mid-lease and came back before the expiry) refunds the down time at
 * once: its share of the price moves from priceSats to outageRefundSats and the seconds leave
 * durationSeconds, so what is left is priced exactly as before and later refunds never undo it.
 *
 * Money invariant, at every step: earnedSats + refundDueSats = paidSats once ended, and refundDueSats
 * includes outageRefundSats.
 */
import { MAX_SATS } from './constants.js'
import { IllegalTransitionError, ProtocolError } from './errors.js'
import type { LeaseEndReason } from './records.js'
import { refundSats } from './pricing.js'

export const LEASE_STATUSES = [
  'requested',
  'offered',
  'awaiting-payment',
  'paid',
  'provisioning',
  'active',
  'ended',
] as const
export type LeaseStatus = (typeof LEASE_STATUSES)[number]

/** Why a lease ended: the LeaseEnd reasons, plus the two ways a negotiation dies before payment. */
export type LeaseOutcome = LeaseEndReason | 'offer-expired' | 'underpaid'

export interface PendingExtension {
  addSeconds: number
  priceSats: number
  /** Received so far for this extension; applied once it reaches priceSats. */
  paidSats: number
  invoiceExpiresAt: number
}

export interface LeaseState {
  status: LeaseStatus
  /** Time of the last event (unix ms); events must not go back in time. */
  updatedAt: number
  /** Seconds bought, including applied extensions. */
  durationSeconds: number
  /** Price of durationSeconds (0 until offered). */
  priceSats: number
  /** Everything received, including overpayments; excess over priceSats is refunded at the end. */
  paidSats: number
  offerExpiresAt?: number
  startedAt?: number
  /** When the lease ends if nothing else happens (set once active). */
  expiresAt?: number
  pendingExtension?: PendingExtension
  /** Seconds of the lease lost to provider outages (already taken out of durationSeconds). */
  downSeconds?: number
  /** Refund due for those seconds, owed at once (already taken out of priceSats). */
  outageRefundSats?: number
  endReason?: LeaseOutcome
  endedAt?: number
  servedSeconds?: number
  refundDueSats?: number
  /** The provider's share: paidSats − refundDueSats. */
  earnedSats?: number
}

export type LeaseEvent =
  | { type: 'offer'; at: number; priceSats: number; durationSeconds: number; invoiceExpiresAt: number }
  /** The renter accepted the offer; the provider now watches the invoice. */
  | { type: 'accept'; at: number }
  /** Sats received on the lease invoice (cumulative: several payments add up). */
  | { type: 'payment'; at: number; amountSats: number }
  | { type: 'invoice-expired'; at: number }
  | { type: 'provision-start'; at: number }
  | { type: 'provision-failed'; at: number }
  | { type: 'activate'; at: number }
  | { type: 'extension-offered'; at: number; addSeconds: number; priceSats: number; invoiceExpiresAt: number }
  | { type: 'extension-payment'; at: number; amountSats: number }
  | { type: 'extension-expired'; at: number }
  | { type: 'expire'; at: number }
  | { type: 'cancel'; at: number }
  /** The provider was down for `downSeconds` of an active lease and is back: that time is refunded now. */
  | { type: 'outage'; at: number; downSeconds: number }
  /** The provider stopped serving at `at` (its last presence); the rest is refunded. */
  | { type: 'provider-offline'; at: number }

function int(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ProtocolError('ERR_RANGE', `${name} must be an integer in ${min}..${max}, got ${String(value)}`)
  }
}

/** The state right after a renter sent a RentRequest. */
export function createLeaseState(at: number, durationSeconds: number): LeaseState {
  int('at', at, 0, Number.MAX_SAFE_INTEGER)
  int('durationSeconds', durationSeconds, 1, Number.MAX_SAFE_INTEGER)
  return { status: 'requested', updatedAt: at, durationSeconds, priceSats: 0, paidSats: 0 }
}

function end(state: LeaseState, reason: LeaseOutcome, at: number, servedSeconds: number): LeaseState {
  const paid = state.paidSats + (state.pendingExtension?.paidSats ?? 0)
  const outageRefund = state.outageRefundSats ?? 0
  // The part of the payment that bought time is refunded pro-rata; anything above the price entirely.
  const pricePaid = Math.min(paid - outageRefund, state.priceSats)
  const refundOfPrice =
    servedSeconds === 0 ? pricePaid : refundSats(pricePaid, state.durationSeconds, servedSeconds)
  const refundDueSats = outageRefund + refundOfPrice + (paid - outageRefund - pricePaid)
  const { pendingExtension: _dropped, ...rest } = state
  return {
    ...rest,
    status: 'ended',
    updatedAt: at,
    paidSats: paid,
    endReason: reason,
    endedAt: at,
    servedSeconds,
    refundDueSats,
    earnedSats: paid - refundDueSats,
  }
}

function servedUntil(state: LeaseState, at: number): number {
  const startedAt = state.startedAt ?? at
  const elapsed = Math.floor((at - startedAt) / 1000) - (state.downSeconds ?? 0)
  return Math.min(state.durationSeconds, Math.max(0, elapsed))
}

/** Applies one event. Throws IllegalTransitionError / ProtocolError(ERR_RANGE); never mutates `state`. */
export function leaseReducer(state: LeaseState, event: LeaseEvent): LeaseState {
  const illegal = (reason?: string): never => {
    throw new IllegalTransitionError(state.status, event.type, reason)
  }
  int('event.at', event.at, 0, Number.MAX_SAFE_INTEGER)
  if (state.status === 'ended') illegal('the lease has ended')
  if (event.at < state.updatedAt) illegal('event is older than the lease state')
  const at = event.at
  const s = state.status

  switch (event.type) {
    case 'offer':
      if (s !== 'requested') return illegal()
      int('priceSats', event.priceSats, 1, MAX_SATS)
      int('durationSeconds', event.durationSeconds, 1, Number.MAX_SAFE_INTEGER)
      int('invoiceExpiresAt', event.invoiceExpiresAt, at + 1, Number.MAX_SAFE_INTEGER)
      return {
        ...state,
        status: 'offered',
        updatedAt: at,
        priceSats: event.priceSats,
        durationSeconds: event.durationSeconds,
        offerExpiresAt: event.invoiceExpiresAt,
      }
    case 'accept':
      if (s !== 'offered') return illegal()
      return { ...state, status: 'awaiting-payment', updatedAt: at }
    case 'payment': {
      int('amountSats', event.amountSats, 1, MAX_SATS)
      const paidSats = state.paidSats + event.amountSats
      if (paidSats > MAX_SATS) throw new ProtocolError('ERR_RANGE', 'paid amount exceeds the bitcoin supply')
      if (s === 'offered' || s === 'awaiting-payment') {
        const status = paidSats >= state.priceSats ? 'paid' : 'awaiting-payment'
        return { ...state, status, updatedAt: at, paidSats }
      }
      // A late or duplicate payment: kept and refunded at the end as overpayment.
      if (s === 'paid' || s === 'provisioning' || s === 'active') return { ...state, updatedAt: at, paidSats }
      return illegal('no invoice to pay yet')
    }
    case 'invoice-expired':
      if (s !== 'offered' && s !== 'awaiting-payment') return illegal()
      if (state.offerExpiresAt !== undefined && at < state.offerExpiresAt)
        illegal('the invoice has not expired')
      return end(state, state.paidSats === 0 ? 'offer-expired' : 'underpaid', at, 0)
    case 'provision-start':
      if (s !== 'paid') return illegal()
      return { ...state, status: 'provisioning', updatedAt: at }
    case 'provision-failed':
      if (s !== 'paid' && s !== 'provisioning') return illegal()
      return end(state, 'provision-failed', at, 0)
    case 'activate':
      if (s !== 'provisioning') return illegal()
      return {
        ...state,
        status: 'active',
        updatedAt: at,
        startedAt: at,
        expiresAt: at + state.durationSeconds * 1000,
      }
    case 'extension-offered':
      if (s !== 'active') return illegal()
      if (state.pendingExtension !== undefined) illegal('an extension is already pending')
      if (at >= (state.expiresAt ?? 0)) illegal('the lease has run out')
      int('addSeconds', event.addSeconds, 1, Number.MAX_SAFE_INTEGER)
      int('priceSats', event.priceSats, 1, MAX_SATS)
      int('invoiceExpiresAt', event.invoiceExpiresAt, at + 1, Number.MAX_SAFE_INTEGER)
      return {
        ...state,
        updatedAt: at,
        pendingExtension: {
          addSeconds: event.addSeconds,
          priceSats: event.priceSats,
          paidSats: 0,
          invoiceExpiresAt: event.invoiceExpiresAt,
        },
      }
    case 'extension-payment': {
      const pending = state.pendingExtension
      if (s !== 'active' || pending === undefined) return illegal('no extension is pending')
      int('amountSats', event.amountSats, 1, MAX_SATS)
      const paid = pending.paidSats + event.amountSats
      if (state.paidSats + paid > MAX_SATS)
        throw new ProtocolError('ERR_RANGE', 'paid amount exceeds the bitcoin supply')
      if (paid < pending.priceSats)
        return { ...state, updatedAt: at, pendingExtension: { ...pending, paidSats: paid } }
      const { pendingExtension: _applied, ...rest } = state
      return {
        ...rest,
        updatedAt: at,
        durationSeconds: state.durationSeconds + pending.addSeconds,
        priceSats: state.priceSats + pending.priceSats,
        paidSats: state.paidSats + paid,
        expiresAt: (state.expiresAt ?? at) + pending.addSeconds * 1000,
      }
    }
    case 'extension-expired': {
      const pending = state.pendingExtension
      if (s !== 'active' || pending === undefined) return illegal('no extension is pending')
      if (at < pending.invoiceExpiresAt) illegal('the extension invoice has not expired')
      // A partial extension payment bought nothing: it stays in paidSats as excess and is refunded at the end.
      const { pendingExtension: _expired, ...rest } = state
      return { ...rest, updatedAt: at, paidSats: state.paidSats + pending.paidSats }
    }
    case 'outage': {
      if (s !== 'active') return illegal()
      if (at >= (state.expiresAt ?? 0)) illegal('the lease has run out: end it with provider-offline')
      int('downSeconds', event.downSeconds, 1, Number.MAX_SAFE_INTEGER)
      // at least one second stays bought, so the rest of the lease keeps a price to refund from
      const down = Math.min(event.downSeconds, state.durationSeconds - 1)
      if (down === 0) return { ...state, updatedAt: at }
      const refund = refundSats(state.priceSats, state.durationSeconds, state.durationSeconds - down)
      return {
        ...state,
        updatedAt: at,
        durationSeconds: state.durationSeconds - down,
        priceSats: state.priceSats - refund,
        downSeconds: (state.downSeconds ?? 0) + down,
        outageRefundSats: (state.outageRefundSats ?? 0) + refund,
      }
    }
    case 'expire':
      if (s !== 'active') return illegal()
      if (at < (state.expiresAt ?? Number.MAX_SAFE_INTEGER)) illegal('the lease has time left')
      return end(state, 'expired', at, state.durationSeconds)
    case 'cancel':
      return end(state, 'cancelled', at, s === 'active' ? servedUntil(state, at) : 0)
    case 'provider-offline':
      if (s !== 'paid' && s !== 'provisioning' && s !== 'active') return illegal()
      return end(state, 'provider-offline', at, s === 'active' ? servedUntil(state, at) : 0)
    default:
      return illegal('unknown event')
  }
}
