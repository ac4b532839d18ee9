import { join } from 'node:path'
import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import {
  ListingKeySchema,
  SshPublicKeySchema,
  recordId,
  type Lease,
  type LeaseEnd,
  type Offer,
  type RentRequest,
} from '@rpib/protocol'
import { defineRoute } from '../api/contract.js'
import { ApiError } from '../api/problem.js'
import { ensurePrivateDir, writePrivateFile } from '../config/paths.js'
import { RpibError } from '../errors.js'
import type { MarketNode } from '../market/market-node.js'
import { bip21Uri } from '../payments/bip21.js'
import type { Wallet } from '../payments/wallet.js'
import { fetchRentalStatus, requestOffer, waitForLease } from '../rentals/negotiation.js'
import type { DaemonService, ServiceContext } from './service.js'

/** A rental as the renter's node keeps it. */
interface RenterRental {
  offerId: string
  request: RentRequest
  offer: Offer
  status: string
  paymentTxid?: string
  lease?: Lease
  end?: LeaseEnd
  error?: string
}

const RentalViewSchema = z.object({
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
      expiresAt: z.number().int(),
    })
    .optional(),
  endReason: z.string().optional(),
  error: z.string().optional(),
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

export interface RenterServiceDeps {
  market(): MarketNode | undefined
  wallet(): Wallet | undefined
}

/**
 * The renter's side in the daemon: rents a listing through the market's libp2p node, pays from the
 * built-in wallet (or hands out the invoice), follows the rental until the provider's signed Lease arrives
 * or it ends, and keeps everything in `<home>/renter/rentals.json`. Changes are `rental.updated` events.
 */
export function createRenterService(ctx: ServiceContext, deps: RenterServiceDeps): DaemonService {
  const rentals = new Map<string, RenterRental>()
  const lifetime = new AbortController()
  const followers = new Set<Promise<void>>()
  const file = join(ctx.home, 'renter', 'rentals.json')
  const secondsPerHour = ctx.config.provider.secondsPerHour

  async function save(r: RenterRental): Promise<void> {
    await writePrivateFile(file, JSON.stringify({ version: 1, rentals: [...rentals.values()] }))
    ctx.events.publish('rental.updated', { offerId: r.offerId, status: r.status })
  }

  function view(r: RenterRental): z.infer<typeof RentalViewSchema> {
    const inv = r.offer.body.invoice
    return {
      offerId: r.offerId,
      listingKey: r.offer.body.listingKey,
      status: r.status,
      priceSats: r.offer.body.priceSats,
      invoice: {
        address: inv.address,
        amountSats: inv.amountSats,
        expiresAt: inv.expiresAt,
        uri: bip21Uri(inv.address, inv.amountSats),
      },
      ...(r.paymentTxid != null ? { paymentTxid: r.paymentTxid } : {}),
      ...(r.lease != null ? { ssh: { ...r.lease.body.ssh, expiresAt: r.lease.body.expiresAt } } : {}),
      ...(r.end != null ? { endReason: r.end.body.reason } : {}),
      ...(r.error != null ? { error: r.error } : {}),
    }
  }

  /** Follows one rental in the background until its lease is active, then until it ends. */
  function follow(r: RenterRental): void {
    const market = deps.market()
    if (market == null) return
    const run = (async () => {
      try {
        if (r.lease == null) {
          r.lease = await waitForLease({
            libp2p: market.libp2p,
            offer: r.offer,
            signal: lifetime.signal,
            pollMs: 500,
          })
          r.status = 'active'
          await save(r)
        }
        while (r.end == null && !lifetime.signal.aborted) {
          const wait = Math.max(500, Math.min(60_000, r.lease.body.expiresAt - Date.now()))
          await new Promise((resolve) => setTimeout(resolve, wait).unref())
          const status = await fetchRentalStatus({
            libp2p: market.libp2p,
            offer: r.offer,
            signal: lifetime.signal,
          }).catch(() => undefined)
          if (status?.end != null) {
            r.end = status.end
            r.status = 'ended'
            await save(r)
          }
        }
      } catch (err) {
        if (lifetime.signal.aborted) return
        r.error = err instanceof Error ? err.message : String(err)
        r.status = err instanceof RpibError && err.code === 'ERR_LEASE_ENDED' ? 'ended' : r.status
        await save(r)
      }
    })()
    followers.add(run)
    void run.finally(() => followers.delete(run))
  }

  return {
    name: 'renter',
    async start() {
      await ensurePrivateDir(join(ctx.home, 'renter'))
      const text = await readFile(file, 'utf8').catch(() => undefined)
      if (text != null) {
        for (const r of (JSON.parse(text) as { rentals: RenterRental[] }).rentals) rentals.set(r.offerId, r)
      }
      for (const r of rentals.values()) if (r.end == null && r.status !== 'ended') follow(r)
    },
    async stop() {
      lifetime.abort()
      await Promise.allSettled([...followers])
    },
    registerRoutes(router) {
      router.route(createRentalRoute, async ({ body }) => {
        const market = deps.market()
        if (market == null) throw new ApiError(503, 'ERR_MARKET_NOT_RUNNING', 'the market is not running yet')
        const entry = market.show(body.listingKey)
        if (entry == null)
          throw new ApiError(
            404,
            'ERR_UNKNOWN_LISTING',
            `no listing ${body.listingKey} on this market; run \`rpib market list\``,
          )
        const wallet = deps.wallet()
        if (body.pay === 'wallet' && wallet == null) {
          throw new ApiError(
            409,
            'ERR_NO_WALLET',
            'paying from the built-in wallet needs one: `rpib wallet create`, or pass pay=external',
          )
        }
        const refundAddress = wallet != null ? (await wallet.nextReceiveAddress()).address : undefined
        let made
        try {
          made = await requestOffer({
            libp2p: market.libp2p,
            privateKey: ctx.identity.privateKey,
            listing: entry.listing,
            durationSeconds: body.hours * secondsPerHour,
            image: body.image ?? entry.listing.body.images[0]!,
            sshPublicKeys: body.sshPublicKeys,
            secondsPerHour,
            ...(refundAddress != null ? { refundAddress } : {}),
          })
        } catch (err) {
          if (err instanceof RpibError) throw new ApiError(502, err.code, err.message)
          throw err
        }
        const r: RenterRental = {
          offerId: recordId(made.offer),
          request: made.request,
          offer: made.offer,
          status: 'awaiting-payment',
        }
        rentals.set(r.offerId, r)
        await save(r)
        if (body.pay === 'wallet' && wallet != null) {
          try {
            const sent = await wallet.send({
              to: made.offer.body.invoice.address,
              amountSats: made.offer.body.priceSats,
            })
            r.paymentTxid = sent.txid
            r.status = 'paid'
          } catch (err) {
            r.error = `payment failed: ${err instanceof Error ? err.message : String(err)}`
          }
          await save(r)
        }
        follow(r)
        return view(r)
      })
      router.route(listRentalsRoute, () => ({
        rentals: [...rentals.values()].sort((a, b) => b.offer.createdAt - a.offer.createdAt).map(view),
      }))
      router.route(getRentalRoute, ({ params }) => {
        const r = rentals.get(params.offerId)
        if (r == null) throw new ApiError(404, 'ERR_UNKNOWN_RENTAL', `no rental ${params.offerId}`)
        return view(r)
      })
    },
  }
}
