import { PaymentError } from './errors.js'

export const SATS_PER_BTC = 100_000_000
/** 21 million BTC: no amount can be larger, and it fits a JS safe integer. */
export const MAX_SATS = 21_000_000 * SATS_PER_BTC
/** Outputs below this are non-standard (dust) for P2WPKH at the default relay fee. */
export const DUST_SATS = 294

/** Checks that a value is a whole, non-negative number of satoshis within the money supply. */
export function assertSats(value: number, what = 'amount'): number {
  if (!Number.isSafeInteger(value) || value < 0 || value > MAX_SATS) {
    throw new PaymentError('ERR_AMOUNT_INVALID', `${what} must be a whole number of satoshis (got ${value})`)
  }
  return value
}

/** Formats satoshis as a BTC decimal string without floating point ("0.0001", "1.5"). */
export function satsToBtcString(sats: number): string {
  assertSats(sats)
  const whole = Math.floor(sats / SATS_PER_BTC)
  const frac = String(sats % SATS_PER_BTC)
    .padStart(8, '0')
    .replace(/0+$/, '')
  return frac === '' ? String(whole) : `${whole}.${frac}`
}

/** Parses a BTC decimal string ("0.001") into satoshis exactly; rejects more than 8 decimals. */
export function btcStringToSats(btc: string): number {
  const m = /^(\d{1,8})(?:\.(\d{1,8}))?$/.exec(btc.trim())
  if (m == null)
    throw new PaymentError('ERR_AMOUNT_INVALID', `"${btc}" is not a BTC amount with at most 8 decimals`)
  const sats = Number(m[1]) * SATS_PER_BTC + Number((m[2] ?? '').padEnd(8, '0'))
  return assertSats(sats)
}

/**
 * Converts a JSON number of BTC (as Bitcoin Core returns amounts) to satoshis. Core prints at most
 * 8 decimals, so rounding the product removes the binary floating-point error exactly.
 */
export function btcNumberToSats(btc: number): number {
  return assertSats(Math.round(btc * SATS_PER_BTC))
}
