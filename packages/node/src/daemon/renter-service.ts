import { join } from 'node:path'
import { readFile } from 'node:fs/promises'
import { recordId, type Lease, type LeaseEnd, type Offer, type RentRequest } from '@rpib/protocol'
import { ApiError } from '../api/problem.js'
import { ensurePrivateDir, writePrivateFile } from '../config/paths.js'
import { RpibError } from '../errors.js'
import type { MarketNode } from '../market/market-node.js'
import { bip21Uri } from '../payments/bip21.js'
import type { Wallet } from '../payments/wallet.js'
import {
  cancelRental,
  fetchRentalStatus,
  requestExtension,
  requestOffer,
  waitForLease,
} from '../rentals/negotiation.js'
import { registerLeaseGateway } from './lease-gateway.js'
import { registerRenterExpose } from './renter-expose.js'
import {
  autoExtendRentalRoute,
  cancelRentalRoute,
  createRentalRoute,
  extendRentalRoute,
  getRentalRoute,
  listRentalsRoute,
  type RentalView,
} from './renter-routes.js'
import type { DaemonService, ServiceContext } from './service.js'

export {
  autoExtendRentalRoute,
  cancelRentalRoute,
  createRentalRoute,
  extendRentalRoute,
  getRentalRoute,
  listRentalsRoute,
} from './renter-routes.js'

/** An extension the renter asked for: its invoice, and how it was paid. */
interface RenterExtension {
  addSeconds: number
  priceSats: number
  invoice: { address: string; amountSats: number; expiresAt: number }
  at: number
  /** `offered`: not paid (yet); `paid`: sent, waiting for the provider; `applied`: the lease runs longer. */
  status: 'offered' | 'paid' | 'applied'
  paymentTxid?: string
  /** The lease's expiry before this extension (it is applied once the provider's lease ends later). */
  fromExpiresAt: number
  error?: string
}

/** Automatic renewal: pays the next period from the wallet shortly before expiry, within maxSats. */
interface AutoExtend {
  enabled: boolean
  maxSats?: number
  /** Spent on automatic extensions so far (counts against maxSats). */
  spentSats: number
  lastError?: string
  /** The expiry an automatic extension was last tried for (tried once per expiry). */
  triedFor?: number
}

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
  extensions?: RenterExtension[]
  autoExtend?: AutoExtend
}

/** When to renew automatically: 20% of the period or 60 s before expiry, whichever is less. */
export function autoExtendLeadMs(periodSeconds: number): number {
  return Math.min(60_000, Math.floor(periodSeconds * 200))
}

/** A lease this node holds as a renter (the history service watches its provider's presence). */
export interface HeldLease {
  leaseId: string
  provider: string
  listingKey: string
  startsAt: number
  expiresAt: number
}

export interface RenterServiceDeps {
  market(): MarketNode | undefined
  wallet(): Wallet | undefined
}

/**
 * The renter's side in the daemon: rents a listing through the market's libp2p node, pays from the
 * built-in wallet (or hands out the invoice), follows the rental until the provider's signed Lease arrives
 * and then until it ends, extends, cancels and renews it automatically, and keeps everything in
 * `<home>/renter/rentals.json`. Changes are `rental.updated` events; failed renewals `rental.auto-extend`.
 */
export function createRenterService(
  ctx: ServiceContext,
  deps: RenterServiceDeps,
): DaemonService & { heldLeases(): HeldLease[] } {
  const rentals = new Map<string, RenterRental>()
  const lifetime = new AbortController()
  const followers = new Set<Promise<void>>()
  /** Wakes a sleeping follower early (after an extension, a cancel or an auto-extend change). */
  const wakers = new Map<string, () => void>()
  const file = join(ctx.home, 'renter', 'rentals.json')
  const secondsPerHour = ctx.config.provider.secondsPerHour
  let payments: Promise<unknown> = Promise.resolve()
  /** Extension invoices being paid right now (a manual extend and a renewal may race for the same one). */
  const paying = new Set<string>()

  async function save(r: RenterRental): Promise<void> {
    await writePrivateFile(file, JSON.stringify({ version: 1, rentals: [...rentals.values()] }))
    ctx.events.publish('rental.updated', { offerId: r.offerId, status: r.status })
  }

  /** Wallet payments one at a time, so parallel rentals never pick the same coins. */
  function pay(wallet: Wallet, to: string, amountSats: number): Promise<{ txid: string }> {
    const sent = payments.then(() => wallet.send({ to, amountSats }))
    payments = sent.catch(() => undefined)
    return sent
  }

  function view(r: RenterRental): RentalView {
    const inv = r.offer.body.invoice
    const auto = r.autoExtend ?? { enabled: false, spentSats: 0 }
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
      ...(r.lease != null ? { expiresAt: r.end?.body.endedAt ?? r.lease.body.expiresAt } : {}),
      extensions: (r.extensions ?? []).map((e) => ({
        addSeconds: e.addSeconds,
        priceSats: e.priceSats,
        status: e.status,
        invoice: e.invoice,
        ...(e.paymentTxid != null ? { paymentTxid: e.paymentTxid } : {}),
        ...(e.error != null ? { error: e.error } : {}),
      })),
      autoExtend: {
        enabled: auto.enabled,
        spentSats: auto.spentSats,
        ...(auto.maxSats != null ? { maxSats: auto.maxSats } : {}),
        ...(auto.lastError != null ? { lastError: auto.lastError } : {}),
      },
      ...(r.end != null
        ? {
            end: {
              reason: r.end.body.reason,
              endedAt: r.end.body.endedAt,
              servedSeconds: r.end.body.servedSeconds,
              refundDueSats: r.end.body.refundDueSats,
            },
          }
        : {}),
    }
  }

  /** Takes in what the provider says: a re-signed lease (after an extension) or the end. */
  function absorb(r: RenterRental, status: { lease?: Lease; end?: LeaseEnd }): boolean {
    let changed = false
    if (status.lease != null && r.lease != null && status.lease.body.expiresAt > r.lease.body.expiresAt) {
      r.lease = status.lease
      for (const e of r.extensions ?? []) {
        if (e.status !== 'applied' && e.paymentTxid != null && status.lease.body.expiresAt > e.fromExpiresAt)
          e.status = 'applied'
      }
      changed = true
    }
    if (status.end != null && r.end == null) {
      r.end = status.end
      r.status = 'ended'
      changed = true
    }
    return changed
  }

  function sleep(r: RenterRental, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        wakers.delete(r.offerId)
        lifetime.signal.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, Math.max(0, ms))
      wakers.set(r.offerId, done)
      lifetime.signal.addEventListener('abort', done, { once: true })
    })
  }

  /** Asks for `addSeconds` more and pays it from the wallet; the lease moves once the provider sees it. */
  async function extendAndPay(
    r: RenterRental,
    market: MarketNode,
    addSeconds: number,
    wallet: Wallet | undefined,
  ): Promise<RenterExtension> {
    const from = r.lease?.body.expiresAt ?? 0
    const ext = await requestExtension({
      libp2p: market.libp2p,
      offer: r.offer,
      addSeconds,
      signal: lifetime.signal,
    })
    const inv = ext.body.invoice
    let entry = r.extensions?.find((e) => e.invoice.address === inv.address)
    if (entry == null) {
      entry = {
        addSeconds,
        priceSats: ext.body.priceSats,
        invoice: { address: inv.address, amountSats: inv.amountSats, expiresAt: inv.expiresAt },
        at: Date.now(),
        status: 'offered',
        fromExpiresAt: from,
      }
      r.extensions = [...(r.extensions ?? []), entry]
    }
    if (wallet != null && entry.paymentTxid == null && !paying.has(inv.address)) {
      paying.add(inv.address)
      try {
        entry.paymentTxid = (await pay(wallet, inv.address, inv.amountSats)).txid
        entry.status = 'paid'
        delete entry.error
      } catch (err) {
        entry.error = `payment failed: ${err instanceof Error ? err.message : String(err)}`
      } finally {
        paying.delete(inv.address)
      }
    }
    await save(r)
    return entry
  }

  /** Polls the provider (bounded) until a paid extension shows in its lease. */
  async function awaitApplied(r: RenterRental, market: MarketNode, entry: RenterExtension): Promise<void> {
    const deadline = Date.now() + 15_000
    while (entry.status === 'paid' && r.end == null && Date.now() < deadline && !lifetime.signal.aborted) {
      const status = await fetchRentalStatus({
        libp2p: market.libp2p,
        offer: r.offer,
        signal: lifetime.signal,
      })
      if (absorb(r, status)) await save(r)
      if (entry.status === 'paid') await new Promise((resolve) => setTimeout(resolve, 250).unref())
    }
  }

  /** The automatic renewal due for the current expiry: pays one more period within the cap, or says why not. */
  async function autoRenew(r: RenterRental, market: MarketNode): Promise<void> {
    const auto = r.autoExtend
    const expiresAt = r.lease?.body.expiresAt
    if (auto == null || expiresAt == null) return
    auto.triedFor = expiresAt
    const period = r.offer.body.durationSeconds
    const fail = async (message: string): Promise<void> => {
      auto.lastError = message
      await save(r)
      ctx.events.publish('rental.auto-extend', { offerId: r.offerId, ok: false, error: message })
      ctx.log.warn('rental.auto_extend_failed', { offerId: r.offerId, error: message })
    }
    const wallet = deps.wallet()
    if (wallet == null) return fail('cannot renew: this node has no wallet (rpib wallet create)')
    const price = r.offer.body.priceSats
    if (auto.maxSats != null && auto.spentSats + price > auto.maxSats) {
      return fail(
        `cap reached: the next period costs ${price} sats and ${auto.spentSats} of the ${auto.maxSats} sats cap are spent; raise it with rpib lease auto-extend <id> on --max-sats N`,
      )
    }
    try {
      const entry = await extendAndPay(r, market, period, wallet)
      if (entry.paymentTxid == null) return fail(`cannot renew: ${entry.error ?? 'the payment was not sent'}`)
      auto.spentSats += entry.priceSats
      delete auto.lastError
      await save(r)
      ctx.events.publish('rental.auto-extend', { offerId: r.offerId, ok: true, priceSats: entry.priceSats })
      await awaitApplied(r, market, entry)
    } catch (err) {
      if (lifetime.signal.aborted) return
      await fail(`cannot renew: ${err instanceof Error ? err.message : String(err)}`)
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
            pollMs: 200, // only while waiting for activation, a few seconds
          })
          r.status = 'active'
          await save(r)
        }
        const lead = autoExtendLeadMs(r.offer.body.durationSeconds)
        while (r.end == null && !lifetime.signal.aborted) {
          const expiresAt: number = r.lease.body.expiresAt
          const auto = r.autoExtend
          const renewAt = auto?.enabled === true && auto.triedFor !== expiresAt ? expiresAt - lead : undefined
          if (renewAt != null && Date.now() >= renewAt && Date.now() < expiresAt) {
            await autoRenew(r, market)
            continue
          }
          const wakeAt = Math.min(
            expiresAt + 250,
            renewAt != null && renewAt > Date.now() ? renewAt : Infinity,
          )
          await sleep(r, Math.min(30_000, wakeAt - Date.now()))
          if (lifetime.signal.aborted) break
          const status = await fetchRentalStatus({
            libp2p: market.libp2p,
            offer: r.offer,
            signal: lifetime.signal,
          }).catch(() => undefined)
          if (status != null && absorb(r, status)) await save(r)
          // past expiry and no end yet (the provider sweeps, or is silent): ask again in a bit
          if (r.end == null && Date.now() > r.lease.body.expiresAt) await sleep(r, 1000)
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

  function rentalOf(offerId: string): RenterRental {
    const r = rentals.get(offerId)
    if (r == null) throw new ApiError(404, 'ERR_UNKNOWN_RENTAL', `no rental ${offerId}; see rpib leases`)
    return r
  }

  function activeRental(offerId: string): { r: RenterRental; market: MarketNode } {
    const r = rentalOf(offerId)
    if (r.end != null || r.status === 'ended') {
      throw new ApiError(
        409,
        'ERR_LEASE_ENDED',
        `the lease ended (${r.end?.body.reason ?? 'no lease'}); rent again`,
      )
    }
    if (r.lease == null) {
      throw new ApiError(
        409,
        'ERR_LEASE_NOT_ACTIVE',
        `the lease is not active yet (${r.status}); wait for it`,
      )
    }
    const market = deps.market()
    if (market == null) throw new ApiError(503, 'ERR_MARKET_NOT_RUNNING', 'the market is not running yet')
    return { r, market }
  }

  /** A provider's refusal or a failed dial becomes a 502 with the provider's code. */
  async function fromProvider<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work()
    } catch (err) {
      if (err instanceof ApiError) throw err
      if (err instanceof RpibError) throw new ApiError(502, err.code, err.message)
      throw new ApiError(502, 'ERR_PROVIDER_UNREACHABLE', `the provider did not answer: ${String(err)}`)
    }
  }

  return {
    name: 'renter',
    heldLeases: () =>
      [...rentals.values()]
        .filter((r) => r.lease != null && r.end == null && r.status !== 'ended')
        .map((r) => ({
          leaseId: r.lease!.body.leaseId,
          provider: r.lease!.signer,
          listingKey: r.lease!.body.listingKey,
          startsAt: r.lease!.body.startsAt,
          expiresAt: r.lease!.body.expiresAt,
        })),
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
      registerLeaseGateway(router, {
        libp2p: () => deps.market()?.libp2p,
        lease: (offerId) => {
          const r = rentals.get(offerId)
          return (
            r && {
              ...(r.lease != null ? { lease: r.lease } : {}),
              ended: r.end != null || r.status === 'ended',
            }
          )
        },
      })
      registerRenterExpose(router, {
        libp2p: () => deps.market()?.libp2p,
        rental: (offerId) => {
          const r = rentals.get(offerId)
          return r && { provider: r.offer.signer, status: r.status }
        },
      })
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
            const sent = await pay(wallet, made.offer.body.invoice.address, made.offer.body.priceSats)
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
      router.route(getRentalRoute, ({ params }) => view(rentalOf(params.offerId)))
      router.route(extendRentalRoute, async ({ params, body }) => {
        const { r, market } = activeRental(params.offerId)
        const wallet = body.pay === 'wallet' ? deps.wallet() : undefined
        if (body.pay === 'wallet' && wallet == null) {
          throw new ApiError(
            409,
            'ERR_NO_WALLET',
            'paying from the built-in wallet needs one; or pass pay=external',
          )
        }
        const entry = await fromProvider(() => extendAndPay(r, market, body.hours * secondsPerHour, wallet))
        if (body.pay === 'wallet' && entry.paymentTxid == null) {
          throw new ApiError(402, 'ERR_PAYMENT_FAILED', entry.error ?? 'the extension was not paid')
        }
        if (entry.status === 'paid') await fromProvider(() => awaitApplied(r, market, entry))
        wakers.get(r.offerId)?.()
        return view(r)
      })
      router.route(cancelRentalRoute, async ({ params }) => {
        const { r, market } = activeRental(params.offerId)
        const end = await fromProvider(() =>
          cancelRental({ libp2p: market.libp2p, offer: r.offer, signal: lifetime.signal }),
        )
        absorb(r, { end })
        await save(r)
        wakers.get(r.offerId)?.()
        return view(r)
      })
      router.route(autoExtendRentalRoute, async ({ params, body }) => {
        const r = rentalOf(params.offerId)
        if (r.end != null || r.status === 'ended')
          throw new ApiError(409, 'ERR_LEASE_ENDED', `the lease ended (${r.end?.body.reason ?? 'no lease'})`)
        if (body.enabled && deps.wallet() == null)
          throw new ApiError(
            409,
            'ERR_NO_WALLET',
            'automatic renewal pays from the built-in wallet: create one first',
          )
        const spentSats = r.autoExtend?.spentSats ?? 0
        r.autoExtend = {
          enabled: body.enabled,
          spentSats,
          ...(body.maxSats != null ? { maxSats: body.maxSats } : {}),
        }
        await save(r)
        wakers.get(r.offerId)?.()
        return view(r)
      })
    },
  }
}
