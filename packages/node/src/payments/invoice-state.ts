/**
 * Pure invoice arithmetic: given the payments seen for an invoice's address, its amount, expiry and
 * the confirmation policy, compute its state. No I/O, so it is property-tested exhaustively.
 */

export type InvoiceStatus =
  'awaiting' | 'seen' | 'confirmed' | 'expired' | 'underpaid' | 'overpaid' | 'paid-late'

export interface ConfirmationPolicy {
  /** confirmations a payment needs to count as settled */
  confirmationsRequired: number
  /** invoices up to this amount are settled as soon as the full amount is in the mempool (0-conf) */
  zeroConfMaxSats: number
}

export const DEFAULT_POLICY: ConfirmationPolicy = { confirmationsRequired: 1, zeroConfMaxSats: 0 }

/** One output paying the invoice address. */
export interface InvoicePayment {
  txid: string
  vout: number
  valueSats: number
  /** 0 while in the mempool */
  confirmations: number
  /** when the payment was first seen (ms); a block time when it was first seen already mined */
  seenAt: number
}

export interface InvoiceEvaluation {
  status: InvoiceStatus
  /** paid in time, whatever the confirmations */
  receivedSats: number
  /** paid in time and settled per the policy */
  settledSats: number
  /** paid after the invoice expired */
  lateSats: number
  /** amount - receivedSats when positive */
  shortfallSats: number
  /** receivedSats - amount when positive */
  excessSats: number
  /** true when the lease may start: fully paid in time and settled per the policy */
  paid: boolean
}

export interface InvoiceTerms {
  amountSats: number
  /** ms since epoch */
  expiresAt: number
}

export function evaluateInvoice(
  terms: InvoiceTerms,
  payments: readonly InvoicePayment[],
  policy: ConfirmationPolicy,
  now: number,
): InvoiceEvaluation {
  let receivedSats = 0
  let lateSats = 0
  let settledSats = 0
  const zeroConf = terms.amountSats <= policy.zeroConfMaxSats
  for (const p of payments) {
    if (p.seenAt > terms.expiresAt) {
      lateSats += p.valueSats
      continue
    }
    receivedSats += p.valueSats
    if (p.confirmations >= policy.confirmationsRequired || zeroConf) settledSats += p.valueSats
  }
  const shortfallSats = Math.max(0, terms.amountSats - receivedSats)
  const excessSats = Math.max(0, receivedSats - terms.amountSats)
  const expired = now > terms.expiresAt
  const paid = shortfallSats === 0 && settledSats >= terms.amountSats
  let status: InvoiceStatus
  if (receivedSats === 0) status = lateSats > 0 ? 'paid-late' : expired ? 'expired' : 'awaiting'
  else if (shortfallSats > 0) status = expired ? 'underpaid' : 'seen'
  else if (!paid) status = 'seen'
  else status = excessSats > 0 ? 'overpaid' : 'confirmed'
  return { status, receivedSats, settledSats, lateSats, shortfallSats, excessSats, paid }
}
