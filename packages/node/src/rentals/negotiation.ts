/**
 * Rental negotiation over `/rpib/rent/1.0.0`: a renter sends a signed RentRequest, the provider answers
 * with a signed Offer carrying a fresh invoice (or a typed refusal). Payment, provisioning and the lease
 * lifecycle build on the offers this produces.
 */
import type { Libp2p, PeerId, PrivateKey, Stream, Connection } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { setTimeout as delay } from 'node:timers/promises'
import {
  PROTOCOLS,
  RentRpcRequestSchema,
  RentRpcResponseSchema,
  ReplayGuard,
  TIMEOUTS,
  checkLeaseForOffer,
  checkOfferForRequest,
  checkRequestForListing,
  parseListingKey,
  priceSats,
  recordId,
  signRecord,
  verifyRecord,
  type BitcoinNetwork,
  type Lease,
  type LeaseEnd,
  type LeaseExtension,
  type LeaseStatus,
  type Listing,
  type Offer,
  type RentRequest,
  type RentRequestBody,
  type RentRpcRequest,
  type RentRpcResponse,
} from '@rpib/protocol'
import { DUST_SATS } from '../payments/amounts.js'
import { RpibError } from '../errors.js'
import { logger as makeLogger, type Logger } from '../log.js'
import { errorText, rpcFrames } from './wire.js'

/** What the provider needs from its invoice service (payments' `InvoiceService.create`). */
export interface OfferInvoices {
  create(req: {
    amountSats: number
    expiresInMs: number
    label?: string
    reference?: string
    refundAddress?: string
  }): Promise<{ id: string; address: string; amountSats: number; expiresAt: number }>
}

/** Where a rental stands, as the provider tells its renter. */
export interface RentalStatus {
  renter: string
  status: LeaseStatus
  paidSats: number
  lease?: Lease
  end?: LeaseEnd
}

/** An offer this provider made, with the request it answers and the invoice that pays it. */
export interface ProviderOffer {
  offerId: string
  request: RentRequest
  offer: Offer
  invoiceId: string
}

export interface RentalNegotiatorOptions {
  privateKey: PrivateKey
  peerId: PeerId
  /** This provider's own current signed listing for a device id (undefined when unknown). */
  listing(deviceId: string): Listing | undefined
  /** Leases running or being provisioned on a device (offers beyond its free slots are refused). */
  busySlots(deviceId: string): number
  invoices: OfferInvoices
  /** The Bitcoin network invoices are on; must match the listing's. */
  bitcoinNetwork: BitcoinNetwork
  /** 3600 on real networks; a test network's fast clock may make an "hour" shorter. */
  secondsPerHour?: number
  offerTtlMs?: number
  /** Called for every offer made (the lease logic persists it and watches its invoice). */
  onOffer?(offer: ProviderOffer): Promise<void> | void
  /** Where a rental stands (the lease manager's view); undefined for an unknown offer. */
  status?(offerId: string): RentalStatus | undefined
  /**
   * Offers `addSeconds` more for an active lease at `priceSats` (the listing's price for that time): the
   * lease manager makes the invoice and answers with the signed LeaseExtension. Throws RpibError.
   */
  extend?(offerId: string, addSeconds: number, priceSats: number): Promise<LeaseExtension>
  /** Ends the rental now and answers with its signed LeaseEnd. Throws RpibError. */
  cancel?(offerId: string): Promise<LeaseEnd>
  /** Publishes a port of the lease container; ERR_NOT_SUPPORTED when absent. */
  expose?(offerId: string, port: number, renter: string): Promise<{ urls: string[] }>
  now?: () => number
  logger?: Logger
}

export interface RentalNegotiator {
  /** Serves `/rpib/rent/1.0.0` on this libp2p node. */
  start(libp2p: Pick<Libp2p, 'handle' | 'unhandle'>): Promise<void>
  stop(): Promise<void>
  /** The protocol logic without the stream: answers a request from `remotePeer`; throws RpibError. */
  answer(remotePeer: string, request: unknown): Promise<ProviderOffer>
}

const refuse = (code: string, message: string): never => {
  throw new RpibError(code, message)
}

/** Provider side of the negotiation. */
export function createRentalNegotiator(opts: RentalNegotiatorOptions): RentalNegotiator {
  const log = opts.logger ?? makeLogger('rpib:rentals')
  const now = opts.now ?? Date.now
  const secondsPerHour = opts.secondsPerHour ?? 3600
  const offerTtlMs = opts.offerTtlMs ?? TIMEOUTS.offerTtlMs
  const replays = new ReplayGuard()
  const self = opts.peerId.toString()
  const open = new Set<Stream>()
  let libp2p: Pick<Libp2p, 'handle' | 'unhandle'> | undefined

  async function answer(remotePeer: string, raw: unknown): Promise<ProviderOffer> {
    const at = now()
    const verified = await verifyRecord('rent-request', raw, { now: at })
    if (!verified.ok) return refuse('ERR_RENT_INVALID', `rent request refused: ${verified.error.message}`)
    const request = verified.record
    if (request.signer !== remotePeer) {
      return refuse('ERR_RENT_SIGNER', 'rent request is signed by another peer than the one sending it')
    }
    const replay = replays.check(request, at)
    if (replay !== undefined) return refuse('ERR_RENT_REPLAY', 'this rent request was already answered')
    const key = parseListingKey(request.body.listingKey)
    const listing = key?.providerPeerId === self ? opts.listing(key.deviceId) : undefined
    if (key === undefined || listing === undefined) {
      return refuse('ERR_RENT_UNKNOWN_LISTING', `this provider has no listing ${request.body.listingKey}`)
    }
    const mismatch = checkRequestForListing(request, listing, secondsPerHour)
    if (mismatch !== undefined) return refuse('ERR_RENT_MISMATCH', mismatch.message)
    if (listing.body.bitcoinNetwork !== opts.bitcoinNetwork) {
      return refuse(
        'ERR_RENT_NETWORK',
        'this provider is not taking payments on the listing network right now',
      )
    }
    if (opts.busySlots(key.deviceId) >= listing.body.slots) {
      return refuse(
        'ERR_RENT_NO_SLOTS',
        'every slot of this device is taken; try again later or another device',
      )
    }

    const price = priceSats(listing.body.satsPerHour, request.body.durationSeconds, secondsPerHour)
    if (price < DUST_SATS) {
      // nobody could pay it: a Bitcoin output this small is dust
      return refuse(
        'ERR_RENT_PRICE_TOO_LOW',
        `${price} sats is below the ${DUST_SATS}-sat dust limit; rent more hours`,
      )
    }
    const requestId = recordId(request)
    const invoice = await opts.invoices.create({
      amountSats: price,
      expiresInMs: offerTtlMs,
      label: `rpib lease of ${listing.body.name}`.slice(0, 64),
      reference: requestId,
      ...(request.body.refundAddress !== undefined ? { refundAddress: request.body.refundAddress } : {}),
    })
    const offer = await signRecord(
      'offer',
      {
        requestId,
        listingKey: request.body.listingKey,
        renter: request.signer,
        durationSeconds: request.body.durationSeconds,
        priceSats: price,
        invoice: {
          network: opts.bitcoinNetwork,
          address: invoice.address,
          amountSats: invoice.amountSats,
          expiresAt: invoice.expiresAt,
        },
      },
      opts.privateKey,
      // the offer lives exactly as long as its invoice
      { now: at, ttlMs: Math.max(1, invoice.expiresAt - at) },
    )
    const made: ProviderOffer = { offerId: recordId(offer), request, offer, invoiceId: invoice.id }
    await opts.onOffer?.(made)
    log('offer %s: %d sats for %ds to %s', made.offerId, price, request.body.durationSeconds, remotePeer)
    return made
  }

  /** The ops on an existing offer; only the renter it was made for may use them. */
  async function answerAboutOffer(
    remotePeer: string,
    message: Exclude<RentRpcRequest, { op: 'rent' }>,
  ): Promise<RentRpcResponse> {
    const found = opts.status?.(message.offerId)
    // an offer is nobody else's business: strangers get the same answer as for an unknown offer
    if (found === undefined || found.renter !== remotePeer) {
      return refuse('ERR_RENT_UNKNOWN_OFFER', `no rental of offer ${message.offerId} for this peer`)
    }
    switch (message.op) {
      case 'status': {
        const { renter: _renter, ...status } = found
        return { ok: true, ...status }
      }
      case 'extend': {
        if (opts.extend === undefined)
          return refuse('ERR_NOT_SUPPORTED', 'this provider does not extend leases')
        const listing = found.lease === undefined ? undefined : listingOf(found.lease.body.listingKey)
        if (listing === undefined) {
          return refuse('ERR_EXTEND_NOT_ACTIVE', 'only an active lease of a listed device can be extended')
        }
        const price = priceSats(listing.body.satsPerHour, message.addSeconds, secondsPerHour)
        if (price < DUST_SATS) {
          return refuse(
            'ERR_RENT_PRICE_TOO_LOW',
            `${price} sats is below the ${DUST_SATS}-sat dust limit; extend by more hours`,
          )
        }
        return { ok: true, extension: await opts.extend(message.offerId, message.addSeconds, price) }
      }
      case 'cancel':
        if (opts.cancel === undefined)
          return refuse('ERR_NOT_SUPPORTED', 'this provider does not cancel leases')
        return { ok: true, cancelled: await opts.cancel(message.offerId) }
      case 'expose':
        if (opts.expose === undefined) {
          return refuse('ERR_NOT_SUPPORTED', 'this provider does not expose ports; use ssh -L instead')
        }
        return { ok: true, ...(await opts.expose(message.offerId, message.port, remotePeer)) }
    }
  }

  function listingOf(key: string): Listing | undefined {
    const parsed = parseListingKey(key)
    return parsed?.providerPeerId === self ? opts.listing(parsed.deviceId) : undefined
  }

  async function onStream(stream: Stream, connection: Connection): Promise<void> {
    open.add(stream)
    const frames = rpcFrames(stream)
    let response: RentRpcResponse
    try {
      const message = await frames.read(RentRpcRequestSchema)
      const remotePeer = connection.remotePeer.toString()
      response =
        message.op === 'rent'
          ? { ok: true, offer: (await answer(remotePeer, message.request)).offer }
          : await answerAboutOffer(remotePeer, message)
    } catch (err) {
      const code = err instanceof RpibError ? err.code : 'ERR_PROVIDER_INTERNAL'
      const message =
        err instanceof RpibError ? err.message : 'the provider failed to answer; try again later'
      if (!(err instanceof RpibError)) log.error('rent request failed: %s', errorText(err))
      response = { ok: false, error: { code, message } }
    }
    try {
      await frames.write(response)
      await stream.close()
    } catch (err) {
      log('could not answer %s: %s', connection.remotePeer.toString(), errorText(err))
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      open.delete(stream)
    }
  }

  return {
    answer,
    async start(node) {
      libp2p = node
      await node.handle(PROTOCOLS.rent, onStream, { runOnLimitedConnection: true, maxInboundStreams: 32 })
    },
    async stop() {
      await libp2p?.unhandle(PROTOCOLS.rent)
      libp2p = undefined
      for (const s of open) s.abort(new Error('provider stopping'))
      open.clear()
    },
  }
}

export interface RequestOfferOptions {
  libp2p: Pick<Libp2p, 'dialProtocol'>
  privateKey: PrivateKey
  /** The verified listing the renter chose. */
  listing: Listing
  durationSeconds: number
  image: string
  sshPublicKeys: string[]
  refundAddress?: string
  secondsPerHour?: number
  signal?: AbortSignal
  now?: () => number
}

/**
 * Renter side: asks the listing's provider for an offer and checks it answers this request, at no more
 * than the listed price, on the listing's Bitcoin network. Throws RpibError with the provider's code when
 * it refuses, ERR_OFFER_INVALID when its answer does not check out.
 */
export async function requestOffer(o: RequestOfferOptions): Promise<{ request: RentRequest; offer: Offer }> {
  const now = o.now ?? Date.now
  const body: RentRequestBody = {
    listingKey: `${o.listing.signer}/${o.listing.body.deviceId}`,
    listingVersion: o.listing.body.version,
    durationSeconds: o.durationSeconds,
    image: o.image,
    sshPublicKeys: o.sshPublicKeys,
    ...(o.refundAddress !== undefined ? { refundAddress: o.refundAddress } : {}),
  }
  const request = await signRecord('rent-request', body, o.privateKey, { now: now() })
  const response = await call(o.libp2p, o.listing.signer, { op: 'rent', request }, o.signal)
  if (!('offer' in response))
    throw new RpibError('ERR_OFFER_INVALID', 'the provider answered without an offer')
  const verified = await verifyRecord('offer', response.offer, { now: now() })
  if (!verified.ok)
    throw new RpibError('ERR_OFFER_INVALID', `the provider's offer is invalid: ${verified.error.message}`)
  const mismatch = checkOfferForRequest(verified.record, request, o.listing, o.secondsPerHour)
  if (mismatch !== undefined)
    throw new RpibError('ERR_OFFER_INVALID', `the provider's offer does not match: ${mismatch.message}`)
  return { request, offer: verified.record }
}

/** One exchange with a provider: dial, write the request, read the answer; a refusal becomes an RpibError. */
async function call(
  libp2p: Pick<Libp2p, 'dialProtocol'>,
  provider: string,
  message: RentRpcRequest,
  signal?: AbortSignal,
): Promise<Extract<RentRpcResponse, { ok: true }>> {
  let stream
  try {
    stream = await libp2p.dialProtocol(peerIdFromString(provider), PROTOCOLS.rent, {
      runOnLimitedConnection: true,
      signal: AbortSignal.any([AbortSignal.timeout(TIMEOUTS.dialTimeoutMs), ...(signal ? [signal] : [])]),
    })
  } catch (err) {
    if (signal?.aborted === true) throw err
    throw new RpibError(
      'ERR_PROVIDER_UNREACHABLE',
      `could not reach provider ${provider.slice(-8)} (${err instanceof Error ? err.message : String(err)}); is it online? (rpib market show)`,
      { cause: err },
    )
  }
  let response: RentRpcResponse
  try {
    const frames = rpcFrames(stream)
    await frames.write(message, signal)
    response = await frames.read(RentRpcResponseSchema, signal)
    await stream.close()
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
  if (!response.ok) throw new RpibError(response.error.code, `provider refused: ${response.error.message}`)
  return response
}

/** The renter's view of a paid offer: the verified Lease once active, or why it ended. */
export interface RenterLeaseView {
  status: LeaseStatus
  paidSats: number
  lease?: Lease
  end?: LeaseEnd
}

/** Asks the provider where the rental of `offer` stands, and verifies any Lease/LeaseEnd it returns. */
export async function fetchRentalStatus(o: {
  libp2p: Pick<Libp2p, 'dialProtocol'>
  offer: Offer
  signal?: AbortSignal
  now?: () => number
}): Promise<RenterLeaseView> {
  const response = await call(
    o.libp2p,
    o.offer.signer,
    { op: 'status', offerId: recordId(o.offer) },
    o.signal,
  )
  if (!('status' in response))
    throw new RpibError('ERR_STATUS_INVALID', 'the provider answered without a status')
  const at = (o.now ?? Date.now)()
  const view: RenterLeaseView = { status: response.status, paidSats: response.paidSats }
  if (response.lease !== undefined) {
    const lease = await verifyRecord('lease', response.lease, { now: at, ignoreExpiry: true })
    if (!lease.ok)
      throw new RpibError('ERR_LEASE_INVALID', `the provider's lease is invalid: ${lease.error.message}`)
    const mismatch = checkLeaseForOffer(lease.record, o.offer)
    if (mismatch !== undefined)
      throw new RpibError('ERR_LEASE_INVALID', `the provider's lease does not match: ${mismatch.message}`)
    view.lease = lease.record
  }
  if (response.end !== undefined) {
    const end = await verifyRecord('lease-end', response.end, { now: at, ignoreExpiry: true })
    if (!end.ok || end.record.signer !== o.offer.signer || end.record.body.leaseId !== recordId(o.offer)) {
      throw new RpibError('ERR_LEASE_INVALID', "the provider's lease end does not check out")
    }
    view.end = end.record
  }
  return view
}

/**
 * Polls the provider until the lease is active (returns it) or the rental ended without one (throws
 * ERR_LEASE_ENDED with the reason). Bounded by `signal` and `timeoutMs` (default: the provision timeout).
 */
/** Failures of the exchange itself (no answer, a broken stream), as opposed to what the provider said. */
const TRANSPORT_ERRORS = new Set(['ERR_RPC_TIMEOUT', 'ERR_RPC_MALFORMED', 'ERR_PROVIDER_UNREACHABLE'])

export async function waitForLease(o: {
  libp2p: Pick<Libp2p, 'dialProtocol'>
  offer: Offer
  signal?: AbortSignal
  pollMs?: number
  timeoutMs?: number
  onStatus?(view: RenterLeaseView): void
}): Promise<Lease> {
  const signal = AbortSignal.any([
    AbortSignal.timeout(o.timeoutMs ?? TIMEOUTS.offerTtlMs + TIMEOUTS.provisionTimeoutMs),
    ...(o.signal ? [o.signal] : []),
  ])
  for (;;) {
    let view: RenterLeaseView | undefined
    try {
      view = await fetchRentalStatus({ libp2p: o.libp2p, offer: o.offer, signal })
    } catch (err) {
      // a provider that cannot be reached or drops the stream (restarting, briefly offline) is waited for;
      // a refusal or an answer that does not check out is not
      const transport = !(err instanceof RpibError) || TRANSPORT_ERRORS.has(err.code)
      if (signal.aborted || !transport) throw err
    }
    if (view !== undefined) o.onStatus?.(view)
    if (view?.lease !== undefined && view.status === 'active') return view.lease
    if (view?.status === 'ended') {
      throw new RpibError(
        'ERR_LEASE_ENDED',
        `the rental ended without an active lease (${view.end?.body.reason ?? 'offer lapsed'})`,
      )
    }
    try {
      await delay(o.pollMs ?? 1000, undefined, { signal })
    } catch (err) {
      throw new RpibError('ERR_LEASE_TIMEOUT', 'gave up waiting for the lease', { cause: err })
    }
  }
}

/**
 * The most an extension of `addSeconds` may cost: the paid offer's rate, rounded up. The listing price for
 * addSeconds is never above this, since the offer's own price was already rounded up.
 */
export function maxExtensionSats(offer: Offer, addSeconds: number): number {
  const { priceSats: paid, durationSeconds } = offer.body
  return Number((BigInt(paid) * BigInt(addSeconds) + BigInt(durationSeconds) - 1n) / BigInt(durationSeconds))
}

/**
 * Renter side of `extend`: asks the provider of `offer` for `addSeconds` more and checks the signed
 * LeaseExtension it answers with (its signer, lease, duration, network, and a price no higher than the
 * offer's rate). Throws RpibError with the provider's code, or ERR_EXTENSION_INVALID.
 */
export async function requestExtension(o: {
  libp2p: Pick<Libp2p, 'dialProtocol'>
  offer: Offer
  addSeconds: number
  signal?: AbortSignal
  now?: () => number
}): Promise<LeaseExtension> {
  const offerId = recordId(o.offer)
  const response = await call(
    o.libp2p,
    o.offer.signer,
    { op: 'extend', offerId, addSeconds: o.addSeconds },
    o.signal,
  )
  const invalid = (why: string): never => {
    throw new RpibError('ERR_EXTENSION_INVALID', `the provider's lease extension ${why}`)
  }
  if (!('extension' in response)) return invalid('is missing from its answer')
  const verified = await verifyRecord('lease-extension', response.extension, { now: (o.now ?? Date.now)() })
  if (!verified.ok) return invalid(`is invalid: ${verified.error.message}`)
  const ext = verified.record
  if (ext.signer !== o.offer.signer) return invalid('is signed by another peer')
  if (ext.body.leaseId !== offerId) return invalid('is for another lease')
  if (ext.body.addSeconds !== o.addSeconds) return invalid('is for another duration')
  if (ext.body.invoice.network !== o.offer.body.invoice.network) return invalid('is on another network')
  const max = maxExtensionSats(o.offer, o.addSeconds)
  if (ext.body.priceSats > max) return invalid(`costs ${ext.body.priceSats} sats, above the ${max} agreed`)
  return ext
}

/** Renter side of `cancel`: the provider ends the rental now; returns its verified LeaseEnd. */
export async function cancelRental(o: {
  libp2p: Pick<Libp2p, 'dialProtocol'>
  offer: Offer
  signal?: AbortSignal
  now?: () => number
}): Promise<LeaseEnd> {
  const offerId = recordId(o.offer)
  const response = await call(o.libp2p, o.offer.signer, { op: 'cancel', offerId }, o.signal)
  if (!('cancelled' in response)) throw new RpibError('ERR_LEASE_INVALID', 'the provider did not confirm')
  const end = await verifyRecord('lease-end', response.cancelled, {
    now: (o.now ?? Date.now)(),
    ignoreExpiry: true,
  })
  if (!end.ok || end.record.signer !== o.offer.signer || end.record.body.leaseId !== offerId) {
    throw new RpibError('ERR_LEASE_INVALID', "the provider's lease end does not check out")
  }
  return end.record
}

/** Renter side of `expose`: asks the provider to publish `port` of the lease; returns its public URLs. */
export async function requestExpose(o: {
  libp2p: Pick<Libp2p, 'dialProtocol'>
  offer: Offer
  port: number
  signal?: AbortSignal
}): Promise<{ urls: string[] }> {
  const offerId = recordId(o.offer)
  const response = await call(o.libp2p, o.offer.signer, { op: 'expose', offerId, port: o.port }, o.signal)
  if (!('urls' in response)) throw new RpibError('ERR_EXPOSE_INVALID', 'the provider answered without URLs')
  return { urls: response.urls }
}
