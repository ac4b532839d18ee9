import type { PrivateKey } from '@libp2p/interface'
import {
  LIMITS,
  encodeRecord,
  listingKey,
  signRecord,
  verifyRecord,
  type Listing,
  type ListingBody,
  type PresenceBeat,
  type PresenceBeatBody,
} from '@rpib/protocol'

/**
 * The market's only door to the protocol package: every listing and presence beat that enters or
 * leaves this node passes through these functions, so a protocol rename touches one file.
 */

export type { Listing, ListingBody, PresenceBeat, PresenceBeatBody }

export type Checked<T> = { ok: true; record: T } | { ok: false; code: string; message: string }

export interface VerifyOptions {
  now?: number
  /** the OrbitDB access controller keeps expired history so old chains still join; the index hides them */
  ignoreExpiry?: boolean
}

export async function verifyListing(
  input: Uint8Array,
  options: VerifyOptions = {},
): Promise<Checked<Listing>> {
  if (input.byteLength > LIMITS.maxListingBytes) {
    return {
      ok: false,
      code: 'ERR_TOO_LARGE',
      message: `listing of ${input.byteLength} bytes exceeds the limit`,
    }
  }
  const result = await verifyRecord('listing', input, options)
  if (!result.ok) return { ok: false, code: result.error.code, message: result.error.message }
  return { ok: true, record: result.record }
}

export async function verifyPresence(
  input: Uint8Array,
  options: VerifyOptions = {},
): Promise<Checked<PresenceBeat>> {
  if (input.byteLength > LIMITS.maxPresenceBytes) {
    return {
      ok: false,
      code: 'ERR_TOO_LARGE',
      message: `beat of ${input.byteLength} bytes exceeds the limit`,
    }
  }
  const result = await verifyRecord('presence', input, options)
  if (!result.ok) return { ok: false, code: result.error.code, message: result.error.message }
  return { ok: true, record: result.record }
}

export async function signListing(
  body: ListingBody,
  privateKey: PrivateKey,
  options: { now?: number; ttlMs?: number } = {},
): Promise<{ record: Listing; bytes: Uint8Array }> {
  const record = await signRecord('listing', body, privateKey, options)
  return { record, bytes: encodeRecord(record) }
}

export async function signPresence(
  body: PresenceBeatBody,
  privateKey: PrivateKey,
  options: { now?: number } = {},
): Promise<{ record: PresenceBeat; bytes: Uint8Array }> {
  const record = await signRecord('presence', body, privateKey, options)
  return { record, bytes: encodeRecord(record) }
}

export function keyOfListing(listing: Listing): string {
  return listingKey(listing.signer, listing.body.deviceId)
}
