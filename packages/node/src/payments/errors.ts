import { RpibError } from '../errors.js'

/** Every payment error a user, a peer or a chain backend can cause has one of these stable codes. */
export type PaymentErrorCode =
  | 'ERR_ADDRESS_INVALID'
  | 'ERR_ADDRESS_NETWORK'
  | 'ERR_MNEMONIC_INVALID'
  | 'ERR_XPUB_INVALID'
  | 'ERR_WALLET_EXISTS'
  | 'ERR_WALLET_MISSING'
  | 'ERR_WALLET_CORRUPT'
  | 'ERR_WALLET_PASSPHRASE'
  | 'ERR_WALLET_WATCH_ONLY'
  | 'ERR_INSUFFICIENT_FUNDS'
  | 'ERR_AMOUNT_INVALID'
  | 'ERR_PSBT_INVALID'
  | 'ERR_PSBT_INCOMPLETE'
  | 'ERR_BACKEND_UNREACHABLE'
  | 'ERR_BACKEND_RESPONSE'
  | 'ERR_TX_REJECTED'
  | 'ERR_INVOICE_UNKNOWN'
  | 'ERR_INVOICE_INVALID'
  | 'ERR_DEVCHAIN'

export class PaymentError extends RpibError {
  declare readonly code: PaymentErrorCode
  constructor(code: PaymentErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
  }
}
