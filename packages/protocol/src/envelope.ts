/** The signed envelope every record travels in, and the body schema of each record type. */
import { z } from 'zod'
import { PROTOCOL_VERSION, RECORD_TYPES } from './constants.js'
import type { RecordType } from './constants.js'
import {
  HistoryBodySchema,
  LeaseBodySchema,
  LeaseEndBodySchema,
  LeaseExtensionBodySchema,
  ListingBodySchema,
  OfferBodySchema,
  PresenceBeatBodySchema,
  RefundBodySchema,
  RentRequestBodySchema,
  TimestampSchema,
} from './records.js'

/** Body schema of each record type. */
export const BODY_SCHEMAS = {
  listing: ListingBodySchema,
  presence: PresenceBeatBodySchema,
  'rent-request': RentRequestBodySchema,
  offer: OfferBodySchema,
  lease: LeaseBodySchema,
  'lease-extension': LeaseExtensionBodySchema,
  'lease-end': LeaseEndBodySchema,
  refund: RefundBodySchema,
  history: HistoryBodySchema,
} as const satisfies Record<RecordType, z.ZodType>

export type BodyOf<T extends RecordType> = z.infer<(typeof BODY_SCHEMAS)[T]>

/** 16 random bytes, lower-case hex. */
export const NonceSchema = z.string().regex(/^[0-9a-f]{32}$/, 'nonce must be 32 lower-case hex characters')
/** Ed25519 signature (64 bytes), base64url without padding. */
export const SignatureSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{86}$/, 'sig must be a base64url Ed25519 signature')

export interface SignedRecord<T extends RecordType = RecordType> {
  type: T
  v: typeof PROTOCOL_VERSION
  /** libp2p peer id (Ed25519) of the signer; covered by the signature. */
  signer: string
  /** Unix ms. */
  createdAt: number
  /** Unix ms; after it (plus clock skew) the record is rejected, which bounds replays. */
  expiresAt: number
  nonce: string
  body: BodyOf<T>
  sig: string
}

/** A signed record of any type, discriminated by `type`. */
export type AnySignedRecord = { [K in RecordType]: SignedRecord<K> }[RecordType]
export type UnsignedRecord<T extends RecordType = RecordType> = Omit<SignedRecord<T>, 'sig'>

export type Listing = SignedRecord<'listing'>
export type PresenceBeat = SignedRecord<'presence'>
export type RentRequest = SignedRecord<'rent-request'>
export type Offer = SignedRecord<'offer'>
export type Lease = SignedRecord<'lease'>
export type LeaseExtension = SignedRecord<'lease-extension'>
export type LeaseEnd = SignedRecord<'lease-end'>
export type Refund = SignedRecord<'refund'>
export type HistoryRecord = SignedRecord<'history'>

/** Envelope fields, body left unparsed: checked first, so the body schema is chosen by a trusted type. */
export const EnvelopeSchema = z.strictObject({
  type: z.enum(RECORD_TYPES),
  v: z.literal(PROTOCOL_VERSION),
  signer: z.string().min(1).max(128),
  createdAt: TimestampSchema,
  expiresAt: TimestampSchema,
  nonce: NonceSchema,
  body: z.unknown(),
  sig: SignatureSchema,
})

/** Full schema (envelope + body) of one record type: for places that only need a shape check. */
export function signedRecordSchema<T extends RecordType>(type: T) {
  return EnvelopeSchema.extend({ type: z.literal(type), body: BODY_SCHEMAS[type] })
}
