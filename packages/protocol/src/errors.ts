/** Stable, machine-readable codes of every error this package reports. */
export type ProtocolErrorCode =
  /** Bytes are not a canonical dag-cbor record. */
  | 'ERR_DECODE'
  /** The encoded record exceeds the size limit of its type. */
  | 'ERR_TOO_LARGE'
  /** A field is missing, unknown, of the wrong type or out of bounds. */
  | 'ERR_SCHEMA'
  /** The record is of another type than the one expected. */
  | 'ERR_TYPE'
  /** `signer` is not a valid Ed25519 libp2p peer id. */
  | 'ERR_SIGNER'
  /** The signature does not verify against the signer's key. */
  | 'ERR_SIGNATURE'
  /** now > expiresAt (+ clock skew). */
  | 'ERR_EXPIRED'
  /** now < createdAt (- clock skew). */
  | 'ERR_NOT_YET_VALID'
  /** The same record (signer + nonce) was already accepted. */
  | 'ERR_REPLAY'
  /** Two records that must agree do not (an offer for another request, a lease for another offer, …). */
  | 'ERR_MISMATCH'
  /** A pricing or timing argument is out of range. */
  | 'ERR_RANGE'
  /** A lease event that is not allowed in the current state. */
  | 'ERR_ILLEGAL_TRANSITION'

export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode
  constructor(code: ProtocolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** Thrown by `leaseReducer` when an event is not allowed in the current state. */
export class IllegalTransitionError extends ProtocolError {
  readonly from: string
  readonly event: string
  constructor(from: string, event: string, reason?: string) {
    super(
      'ERR_ILLEGAL_TRANSITION',
      `lease event "${event}" is not allowed in state "${from}"${reason === undefined ? '' : `: ${reason}`}`,
    )
    this.from = from
    this.event = event
  }
}
