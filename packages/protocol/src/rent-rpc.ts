/**
 * Messages of the `/rpib/rent/1.0.0` stream protocol. A renter opens a stream to the provider, writes
 * one request frame, reads one response frame, and the stream closes. Frames are length-prefixed
 * (unsigned varint) UTF-8 JSON of at most RENT_RPC_MAX_BYTES. Signed records inside a frame are carried as
 * plain objects and checked with `verifyRecord`; the connection's remote peer id (authenticated by Noise)
 * must equal a request's signer, so a peer cannot speak for another. Every op after `rent` names an offer,
 * and only the renter that offer was made for may use it.
 */
import { z } from 'zod'
import { LIMITS } from './constants.js'
import { LEASE_STATUSES } from './lease.js'
import { IdSchema, SatsSchema, textSchema } from './records.js'

export const RENT_RPC_MAX_BYTES = 64 * 1024

export const RentRpcRequestSchema = z.discriminatedUnion('op', [
  /** Ask for an offer: `request` is a signed RentRequest. */
  z.strictObject({ op: z.literal('rent'), request: z.unknown() }),
  /** Where is the rental of this offer? Only the renter it was made for may ask. */
  z.strictObject({ op: z.literal('status'), offerId: IdSchema }),
  /** Buy more time for an active lease: answered with a signed LeaseExtension carrying its own invoice. */
  z.strictObject({
    op: z.literal('extend'),
    offerId: IdSchema,
    addSeconds: z.int().min(1).max(LIMITS.maxLeaseSeconds),
  }),
  /** End the rental now: answered with the signed LeaseEnd (unserved time is refunded pro-rata). */
  z.strictObject({ op: z.literal('cancel'), offerId: IdSchema }),
  /** Publish a port of the lease container: answered with the public URLs. */
  z.strictObject({ op: z.literal('expose'), offerId: IdSchema, port: z.int().min(1).max(65535) }),
])
export type RentRpcRequest = z.infer<typeof RentRpcRequestSchema>

export const RentRpcErrorSchema = z.strictObject({
  /** Stable machine-readable code, e.g. ERR_RENT_MISMATCH. */
  code: z.string().regex(/^ERR_[A-Z0-9_]{1,60}$/, 'error code must look like ERR_SOMETHING'),
  /** One line for the user: what went wrong and what to do. */
  message: textSchema(500),
})
export type RentRpcError = z.infer<typeof RentRpcErrorSchema>

export const RentRpcResponseSchema = z.union([
  z.strictObject({ ok: z.literal(false), error: RentRpcErrorSchema }),
  /** `offer` is a signed Offer. */
  z.strictObject({ ok: z.literal(true), offer: z.unknown() }),
  /** `lease` (a signed Lease) once active; `end` (a signed LeaseEnd) once a served lease has ended. */
  z.strictObject({
    ok: z.literal(true),
    status: z.enum(LEASE_STATUSES),
    paidSats: SatsSchema,
    lease: z.unknown().optional(),
    end: z.unknown().optional(),
  }),
  /** Answer to `extend`: a signed LeaseExtension. */
  z.strictObject({ ok: z.literal(true), extension: z.unknown() }),
  /** Answer to `cancel`: the signed LeaseEnd. */
  z.strictObject({ ok: z.literal(true), cancelled: z.unknown() }),
  /** Answer to `expose`: where the port is reachable. */
  z.strictObject({
    ok: z.literal(true),
    urls: z.array(textSchema(300)).min(1).max(LIMITS.maxSshEndpoints),
  }),
])
export type RentRpcResponse = z.infer<typeof RentRpcResponseSchema>
