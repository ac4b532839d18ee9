/**
 * Pricing in integer satoshis. Rounding (always in whole sats, never floats):
 * - price = ceil(satsPerHour × durationSeconds / secondsPerHour): a started sat is charged, so a price is
 *   never 0. `secondsPerHour` is 3600 except on test networks, where a sandbox may run on a faster clock
 *   (an "hour" of a few seconds) so that expiry and extension can be tried quickly.
 * - refund = floor(paidSats × unservedSeconds / durationSeconds): pro-rata to the second, rounded down,
 *   so the provider keeps the fraction of a sat for time it served. served + refunded = paid exactly,
 *   because the provider's share is defined as paid − refund.
 * Intermediate products use BigInt, so no input within the limits can overflow.
 */
import { MAX_SATS } from './constants.js'
import { ProtocolError } from './errors.js'

function requireInt(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ProtocolError('ERR_RANGE', `${name} must be an integer in ${min}..${max}, got ${String(value)}`)
  }
}

/** Price of `durationSeconds` at `satsPerHour`, rounded up to a whole sat. Throws ERR_RANGE. */
export function priceSats(satsPerHour: number, durationSeconds: number, secondsPerHour = 3600): number {
  requireInt('satsPerHour', satsPerHour, 0, MAX_SATS)
  requireInt('durationSeconds', durationSeconds, 0, Number.MAX_SAFE_INTEGER)
  requireInt('secondsPerHour', secondsPerHour, 1, 3600)
  const product = BigInt(satsPerHour) * BigInt(durationSeconds)
  const hour = BigInt(secondsPerHour)
  const price = (product + hour - 1n) / hour
  if (price > BigInt(MAX_SATS))
    throw new ProtocolError('ERR_RANGE', 'price exceeds the 21 million BTC supply')
  return Number(price)
}

/**
 * Refund for a lease of `durationSeconds`, paid `paidSats`, that served `servedSeconds`: the unserved
 * share, rounded down. Throws ERR_RANGE unless 0 ≤ servedSeconds ≤ durationSeconds and durationSeconds ≥ 1.
 */
export function refundSats(paidSats: number, durationSeconds: number, servedSeconds: number): number {
  requireInt('paidSats', paidSats, 0, MAX_SATS)
  requireInt('durationSeconds', durationSeconds, 1, Number.MAX_SAFE_INTEGER)
  requireInt('servedSeconds', servedSeconds, 0, durationSeconds)
  return Number((BigInt(paidSats) * BigInt(durationSeconds - servedSeconds)) / BigInt(durationSeconds))
}

/** What the provider earned for the served part: paidSats − refundSats(...). */
export function earnedSats(paidSats: number, durationSeconds: number, servedSeconds: number): number {
  return paidSats - refundSats(paidSats, durationSeconds, servedSeconds)
}
