/**
 * The renter's routes of the local API as data (zod schemas): the daemon serves them
 * (daemon/renter-service.ts) and the CLI calls them, so this module stays light — the CLI must not load
 * libp2p to send one request.
 */
import { ListingKeySchema, SshPublicKeySchema } from '@rpib/protocol/records'
import { z } from 'zod'
import { defineRoute } from '../api/contract.js'

export const RentalViewSchema = z.object({
  offerId: z.string(),
  listingKey: z.string(),
  status: z.string(),
  priceSats: z.number().int(),
  invoice: z.object({
    address: z.string(),
    amountSats: z.number().int(),
    expiresAt: z.number().int(),
    uri: z.string(),
  }),
  paymentTxid: z.string().optional(),
  ssh: z
    .object({
      user: z.string(),
      endpoints: z.array(z.string()),
      hostKeyFingerprint: z.string(),
      /** the host key itself, to pin in known_hosts (`rpib ssh` checks it has the fingerprint) */
      hostPublicKey: z.string().optional(),
      expiresAt: z.number().int(),
    })
    .optional(),
  endReason: z.string().optional(),
  error: z.string().optional(),
  /** When the lease ends (moves with each applied extension). */
  expiresAt: z.number().int().optional(),
  extensions: z.array(
    z.object({
      addSeconds: z.number().int(),
      priceSats: z.number().int(),
      status: z.string(),
      invoice: z.object({ address: z.string(), amountSats: z.number().int(), expiresAt: z.number().int() }),
      paymentTxid: z.string().optional(),
      error: z.string().optional(),
    }),
  ),
  autoExtend: z.object({
    enabled: z.boolean(),
    maxSats: z.number().int().optional(),
    spentSats: z.number().int(),
    lastError: z.string().optional(),
  }),
  /** The provider's signed account of the end: served time and the refund due. */
  end: z
    .object({
      reason: z.string(),
      endedAt: z.number().int(),
      servedSeconds: z.number().int(),
      refundDueSats: z.number().int(),
    })
    .optional(),
})

export const createRentalRoute = defineRoute({
  id: 'createRental',
  method: 'POST',
  path: '/api/rentals',
  tag: 'rentals',
  auth: 'token',
  summary:
    'Rent a listed device: ask its provider for an offer, pay it (built-in wallet) and follow the lease',
  body: z.strictObject({
    listingKey: ListingKeySchema,
    hours: z
      .number()
      .int()
      .min(1)
      .max(24 * 365),
    image: z.string().min(1).max(200).optional(),
    sshPublicKeys: z.array(SshPublicKeySchema).min(1).max(8),
    /** `wallet` pays from the built-in wallet; `external` returns the invoice for another wallet */
    pay: z.enum(['wallet', 'external']).default('wallet'),
  }),
  response: RentalViewSchema,
  successStatus: 201,
})

export const listRentalsRoute = defineRoute({
  id: 'listRentals',
  method: 'GET',
  path: '/api/rentals',
  tag: 'rentals',
  auth: 'token',
  summary: 'Rentals this node made, newest first',
  response: z.object({ rentals: z.array(RentalViewSchema) }),
})

export const getRentalRoute = defineRoute({
  id: 'getRental',
  method: 'GET',
  path: '/api/rentals/:offerId',
  tag: 'rentals',
  auth: 'token',
  summary: 'One rental: its invoice, and once active the SSH endpoints and pinned host key',
  params: z.strictObject({ offerId: z.string().regex(/^[0-9a-f]{64}$/) }),
  response: RentalViewSchema,
})

const OfferIdParams = z.strictObject({ offerId: z.string().regex(/^[0-9a-f]{64}$/) })

export const extendRentalRoute = defineRoute({
  id: 'extendRental',
  method: 'POST',
  path: '/api/rentals/:offerId/extend',
  tag: 'rentals',
  auth: 'token',
  summary: 'Buy more hours for an active lease: the provider invoices them, the built-in wallet pays',
  params: OfferIdParams,
  body: z.strictObject({
    hours: z
      .number()
      .int()
      .min(1)
      .max(24 * 365),
    pay: z.enum(['wallet', 'external']).default('wallet'),
  }),
  response: RentalViewSchema,
})

export const cancelRentalRoute = defineRoute({
  id: 'cancelRental',
  method: 'POST',
  path: '/api/rentals/:offerId/cancel',
  tag: 'rentals',
  auth: 'token',
  summary: 'End an active lease now; the provider refunds the unserved time to the refund address',
  params: OfferIdParams,
  response: RentalViewSchema,
})

export const autoExtendRentalRoute = defineRoute({
  id: 'autoExtendRental',
  method: 'PUT',
  path: '/api/rentals/:offerId/auto-extend',
  tag: 'rentals',
  auth: 'token',
  summary: 'Turn automatic renewal on or off (pays the next period from the wallet, within maxSats)',
  params: OfferIdParams,
  body: z.strictObject({
    enabled: z.boolean(),
    maxSats: z.number().int().min(1).max(2_100_000_000_000_000).optional(),
  }),
  response: RentalViewSchema,
})

export const ExposeResultSchema = z.object({
  offerId: z.string(),
  port: z.number().int(),
  urls: z.array(z.string()).describe('where the site answers, one URL per relay'),
})

export const exposeRentalRoute = defineRoute({
  id: 'exposeRental',
  method: 'POST',
  path: '/api/rentals/:offerId/expose',
  tag: 'rentals',
  auth: 'token',
  summary: 'Publish a port of an active lease as a website on the provider’s relays (HTTP ingress)',
  params: OfferIdParams,
  body: z.strictObject({ port: z.number().int().min(1).max(65535) }),
  response: ExposeResultSchema,
})

export type RentalView = z.infer<typeof RentalViewSchema>
