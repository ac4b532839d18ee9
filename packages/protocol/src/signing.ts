/**
 * Signing and verification of records with the node's Ed25519 libp2p key.
 * signed bytes = utf8(domainTag(type)) || canonicalEncode(record without `sig`)
 * The domain tag keeps a signature over one record type from being valid as another; the signer's peer id,
 * createdAt, expiresAt and nonce are inside the signed bytes.
 */
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { sha256 } from '@noble/hashes/sha2.js'
import { fromString, toString } from 'uint8arrays'
import {
  domainTag,
  MAX_RECORD_BYTES,
  MAX_TTL_MS,
  DEFAULT_TTL_MS,
  PROTOCOL_VERSION,
  TIMEOUTS,
} from './constants.js'
import type { RecordType } from './constants.js'
import { canonicalEncode, decodeRecord, encodeRecord } from './encoding.js'
import { BODY_SCHEMAS, EnvelopeSchema, NonceSchema } from './envelope.js'
import type { AnySignedRecord, BodyOf, SignedRecord, UnsignedRecord } from './envelope.js'
import { ProtocolError } from './errors.js'
import type { z } from 'zod'

export type VerifyResult<T extends RecordType = RecordType> =
  { ok: true; record: SignedRecord<T> } | { ok: false; error: ProtocolError }

export interface SignOptions {
  /** createdAt (unix ms); default Date.now(). */
  now?: number
  /** expiresAt - createdAt; default DEFAULT_TTL_MS[type], at most MAX_TTL_MS[type]. */
  ttlMs?: number
  /** 32 lower-case hex chars; default 16 random bytes. */
  nonce?: string
}

export interface VerifyOptions {
  /** Unix ms to check the validity window against; default Date.now(). */
  now?: number
  /** Tolerated clock difference; default TIMEOUTS.clockSkewMs. */
  clockSkewMs?: number
  /** Accept records past expiresAt (reading history); createdAt in the future is still refused. */
  ignoreExpiry?: boolean
}

const encoder = new TextEncoder()
const TAG_BYTES = new Map<RecordType, Uint8Array>()
function tagBytes(type: RecordType): Uint8Array {
  let bytes = TAG_BYTES.get(type)
  if (bytes === undefined) {
    bytes = encoder.encode(domainTag(type))
    TAG_BYTES.set(type, bytes)
  }
  return bytes
}

/** The exact bytes a record's signature covers. */
export function signedBytes(record: UnsignedRecord | SignedRecord): Uint8Array {
  const { type, v, signer, createdAt, expiresAt, nonce, body } = record
  const tag = tagBytes(type)
  const payload = canonicalEncode({ type, v, signer, createdAt, expiresAt, nonce, body })
  const out = new Uint8Array(tag.length + payload.length)
  out.set(tag, 0)
  out.set(payload, tag.length)
  return out
}

/** Content id of a signed record: lower-case hex SHA-256 of its canonical encoding (signature included). */
export function recordId(record: SignedRecord): string {
  return toString(sha256(encodeRecord(record)), 'base16')
}

function randomNonce(): string {
  const bytes = new Uint8Array(16)
  globalThis.crypto.getRandomValues(bytes)
  return toString(bytes, 'base16')
}

function schemaError(what: string, error: z.ZodError): ProtocolError {
  const first = error.issues[0]
  const where = first === undefined || first.path.length === 0 ? '' : ` at ${first.path.join('.')}`
  return new ProtocolError('ERR_SCHEMA', `invalid ${what}${where}: ${first?.message ?? 'schema mismatch'}`)
}

/**
 * Validates `body` and signs it as a record of `type` with an Ed25519 key.
 * Throws ProtocolError (ERR_SCHEMA, ERR_SIGNER, ERR_RANGE, ERR_TOO_LARGE) on a bad body, key or option.
 */
export async function signRecord<T extends RecordType>(
  type: T,
  body: BodyOf<T>,
  key: PrivateKey,
  opts: SignOptions = {},
): Promise<SignedRecord<T>> {
  if (key.type !== 'Ed25519')
    throw new ProtocolError('ERR_SIGNER', `records must be signed with an Ed25519 key, got ${key.type}`)
  const parsed = BODY_SCHEMAS[type].safeParse(body)
  if (!parsed.success) throw schemaError(`${type} body`, parsed.error)
  const createdAt = opts.now ?? Date.now()
  const ttlMs = opts.ttlMs ?? DEFAULT_TTL_MS[type]
  if (!Number.isSafeInteger(createdAt) || createdAt < 0)
    throw new ProtocolError('ERR_RANGE', 'now must be unix ms')
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1 || ttlMs > MAX_TTL_MS[type]) {
    throw new ProtocolError('ERR_RANGE', `ttlMs for ${type} must be an integer in 1..${MAX_TTL_MS[type]}`)
  }
  const nonce = opts.nonce ?? randomNonce()
  if (!NonceSchema.safeParse(nonce).success)
    throw new ProtocolError('ERR_RANGE', 'nonce must be 32 lower-case hex chars')
  const unsigned: UnsignedRecord<T> = {
    type,
    v: PROTOCOL_VERSION,
    signer: peerIdFromPrivateKey(key).toString(),
    createdAt,
    expiresAt: createdAt + ttlMs,
    nonce,
    body: parsed.data as BodyOf<T>,
  }
  const sig = await key.sign(signedBytes(unsigned))
  const record: SignedRecord<T> = { ...unsigned, sig: toString(sig, 'base64url') }
  const size = encodeRecord(record).length
  if (size > MAX_RECORD_BYTES[type]) {
    throw new ProtocolError(
      'ERR_TOO_LARGE',
      `${type} record is ${size} bytes, the limit is ${MAX_RECORD_BYTES[type]}`,
    )
  }
  return record
}

const fail = (code: ProtocolError['code'], message: string): { ok: false; error: ProtocolError } => ({
  ok: false,
  error: new ProtocolError(code, message),
})

/**
 * Checks that `input` is a well-formed, correctly signed, currently valid record of `type`.
 * `input` may be the decoded value (e.g. from JSON or `decodeRecord`) or the encoded bytes.
 * Never throws, whatever the input: every failure is `{ ok: false, error }` with a stable code.
 */
export async function verifyRecord<T extends RecordType>(
  type: T,
  input: unknown,
  opts: VerifyOptions = {},
): Promise<VerifyResult<T>> {
  try {
    return await verifyUnsafe(type, input, opts)
  } catch (cause) {
    // Defence in depth: a library below us threw on input we did not anticipate.
    const text = cause instanceof Error ? cause.message : String(cause)
    return fail('ERR_SCHEMA', `record could not be checked: ${text.slice(0, 200)}`)
  }
}

/** Like verifyRecord, for a record of any type (dispatches on its `type` field). Never throws. */
export async function verifyAnyRecord(input: unknown, opts: VerifyOptions = {}): Promise<VerifyResult> {
  try {
    let value = input
    if (value instanceof Uint8Array) {
      const decoded = decodeRecord(value)
      if (!decoded.ok) return decoded
      value = decoded.value
    }
    const envelope = EnvelopeSchema.safeParse(value)
    if (!envelope.success) return { ok: false, error: schemaError('record envelope', envelope.error) }
    return await verifyRecord(envelope.data.type, value, opts)
  } catch (cause) {
    const text = cause instanceof Error ? cause.message : String(cause)
    return fail('ERR_SCHEMA', `record could not be checked: ${text.slice(0, 200)}`)
  }
}

async function verifyUnsafe<T extends RecordType>(
  type: T,
  input: unknown,
  opts: VerifyOptions,
): Promise<VerifyResult<T>> {
  let value = input
  // Canonical bytes in: their length is the encoded size. Objects in: re-encode below to measure.
  let encodedSize: number | undefined
  if (value instanceof Uint8Array) {
    encodedSize = value.length
    const decoded = decodeRecord(value)
    if (!decoded.ok) return decoded
    value = decoded.value
  }
  const envelope = EnvelopeSchema.safeParse(value)
  if (!envelope.success) return { ok: false, error: schemaError('record envelope', envelope.error) }
  const env = envelope.data
  if (env.type !== type) return fail('ERR_TYPE', `expected a ${type} record, got ${env.type}`)
  const body = BODY_SCHEMAS[type].safeParse(env.body)
  if (!body.success) return { ok: false, error: schemaError(`${type} body`, body.error) }
  const record = { ...env, type, body: body.data } as SignedRecord<T>

  const size = encodedSize ?? encodeRecord(record).length
  if (size > MAX_RECORD_BYTES[type]) {
    return fail('ERR_TOO_LARGE', `${type} record is ${size} bytes, the limit is ${MAX_RECORD_BYTES[type]}`)
  }
  if (record.expiresAt <= record.createdAt) return fail('ERR_SCHEMA', 'expiresAt must be after createdAt')
  if (record.expiresAt - record.createdAt > MAX_TTL_MS[type]) {
    return fail('ERR_SCHEMA', `${type} records may live at most ${MAX_TTL_MS[type]} ms`)
  }

  const now = opts.now ?? Date.now()
  const skew = opts.clockSkewMs ?? TIMEOUTS.clockSkewMs
  if (record.createdAt > now + skew)
    return fail('ERR_NOT_YET_VALID', `${type} record was created in the future`)
  if (opts.ignoreExpiry !== true && now > record.expiresAt + skew) {
    return fail('ERR_EXPIRED', `${type} record expired at ${new Date(record.expiresAt).toISOString()}`)
  }

  let publicKey
  try {
    const peerId = peerIdFromString(record.signer)
    if (peerId.type !== 'Ed25519' || peerId.toString() !== record.signer) {
      return fail('ERR_SIGNER', 'signer must be an Ed25519 peer id in canonical base58 form')
    }
    publicKey = peerId.publicKey
  } catch {
    return fail('ERR_SIGNER', 'signer is not a valid peer id')
  }
  const sig = fromString(record.sig, 'base64url')
  if (sig.length !== 64 || toString(sig, 'base64url') !== record.sig) {
    return fail('ERR_SIGNATURE', 'sig is not a canonical base64url Ed25519 signature')
  }
  const valid = await publicKey.verify(signedBytes(record), sig)
  if (!valid) return fail('ERR_SIGNATURE', `${type} signature does not verify against its signer`)
  return { ok: true, record }
}

/** Narrows a verified record of unknown type. */
export function isRecordOfType<T extends RecordType>(
  record: AnySignedRecord,
  type: T,
): record is Extract<AnySignedRecord, { type: T }> {
  return record.type === type
}
