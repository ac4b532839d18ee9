/**
 * Canonical, deterministic encoding: DAG-CBOR (RFC 8949 core deterministic profile as used by IPLD:
 * shortest integer forms, map keys sorted length-first then bytewise, no indefinite lengths, no floats
 * for integers). The same value always encodes to the same bytes, so signatures and record ids are stable.
 */
import * as dagCbor from '@ipld/dag-cbor'
import { LIMITS } from './constants.js'
import { ProtocolError } from './errors.js'

export type DecodeResult = { ok: true; value: unknown } | { ok: false; error: ProtocolError }

/** Drops `undefined` object properties (DAG-CBOR has no undefined; an absent optional field is absent). */
function withoutUndefined(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutUndefined)
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = withoutUndefined(v)
    return out
  }
  return value
}

/** Canonical bytes of a plain JSON-like value (objects, arrays, strings, safe integers, booleans, null). */
export function canonicalEncode(value: unknown): Uint8Array {
  return dagCbor.encode(withoutUndefined(value))
}

/** Canonical bytes of a record (signed or not). */
export function encodeRecord(record: object): Uint8Array {
  return canonicalEncode(record)
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * Decodes canonical DAG-CBOR bytes into an untrusted value (validate it with `verifyRecord`).
 * Never throws: oversized, malformed or non-canonical input gives `{ ok: false }` with ERR_TOO_LARGE or
 * ERR_DECODE. Non-canonical encodings are refused so that one record has exactly one byte form.
 */
export function decodeRecord(bytes: Uint8Array, maxBytes: number = LIMITS.maxRecordBytes): DecodeResult {
  if (!(bytes instanceof Uint8Array)) {
    return { ok: false, error: new ProtocolError('ERR_DECODE', 'record bytes must be a Uint8Array') }
  }
  if (bytes.length > maxBytes) {
    return {
      ok: false,
      error: new ProtocolError('ERR_TOO_LARGE', `record is ${bytes.length} bytes, the limit is ${maxBytes}`),
    }
  }
  let value: unknown
  try {
    value = dagCbor.decode(bytes)
  } catch (cause) {
    return {
      ok: false,
      error: new ProtocolError('ERR_DECODE', `record is not valid DAG-CBOR: ${message(cause)}`),
    }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, error: new ProtocolError('ERR_DECODE', 'record must be a CBOR map') }
  }
  try {
    if (!bytesEqual(dagCbor.encode(value), bytes)) {
      return { ok: false, error: new ProtocolError('ERR_DECODE', 'record is not canonically encoded') }
    }
  } catch (cause) {
    return {
      ok: false,
      error: new ProtocolError('ERR_DECODE', `record cannot be re-encoded: ${message(cause)}`),
    }
  }
  return { ok: true, value }
}

function message(cause: unknown): string {
  const text = cause instanceof Error ? cause.message : String(cause)
  return text.length > 200 ? `${text.slice(0, 200)}…` : text
}
