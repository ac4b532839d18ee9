/**
 * Checks between records that must agree with each other. `verifyRecord` proves who signed a record; these
 * prove that it answers the right thing (an Offer for this RentRequest, a Lease for this Offer). Call them
 * only on verified records. Each returns undefined when consistent, or a ProtocolError (ERR_MISMATCH).
 */
import type { Lease, Listing, Offer, RentRequest } from './envelope.js'
import { ProtocolError } from './errors.js'
import { priceSats } from './pricing.js'
import { listingKey, parseListingKey } from './records.js'
import { recordId } from './signing.js'

const mismatch = (message: string) => new ProtocolError('ERR_MISMATCH', message)

/**
 * Provider side: may this request be served from this listing? `secondsPerHour` is 3600 except on a test
 * network's fast clock (see pricing.ts).
 */
export function checkRequestForListing(
  request: RentRequest,
  listing: Listing,
  secondsPerHour = 3600,
): ProtocolError | undefined {
  const r = request.body
  const l = listing.body
  if (r.listingKey !== listingKey(listing.signer, l.deviceId))
    return mismatch('request is for another listing')
  if (l.status !== 'listed') return mismatch('listing is not available for rent')
  if (r.listingVersion !== l.version) {
    return mismatch(
      `request is for listing version ${r.listingVersion}, current is ${l.version}: refresh and retry`,
    )
  }
  if (r.durationSeconds < l.minHours * secondsPerHour || r.durationSeconds > l.maxHours * secondsPerHour) {
    return mismatch(`duration must be between ${l.minHours} and ${l.maxHours} hours`)
  }
  if (!l.images.includes(r.image)) return mismatch(`image ${r.image} is not offered by this listing`)
  return undefined
}

/**
 * Renter side: does this offer answer my request, from the listing's provider, at no more than the listed
 * price? Pass the listing the request was made from to check price, network and provider.
 */
export function checkOfferForRequest(
  offer: Offer,
  request: RentRequest,
  listing?: Listing,
  secondsPerHour = 3600,
): ProtocolError | undefined {
  const o = offer.body
  if (o.requestId !== recordId(request)) return mismatch('offer answers another request')
  if (o.renter !== request.signer) return mismatch('offer is addressed to another renter')
  if (o.listingKey !== request.body.listingKey) return mismatch('offer is for another listing')
  if (o.durationSeconds !== request.body.durationSeconds) return mismatch('offer is for another duration')
  const provider = parseListingKey(o.listingKey)?.providerPeerId
  if (offer.signer !== provider) return mismatch('offer is not signed by the listing provider')
  if (o.invoice.expiresAt > offer.expiresAt) return mismatch('invoice outlives the offer')
  if (listing !== undefined) {
    const requestProblem = checkRequestForListing(request, listing, secondsPerHour)
    if (requestProblem !== undefined) return requestProblem
    const listed = priceSats(listing.body.satsPerHour, o.durationSeconds, secondsPerHour)
    if (o.priceSats > listed)
      return mismatch(`offer asks ${o.priceSats} sats, the listing price is ${listed}`)
    if (o.invoice.network !== listing.body.bitcoinNetwork)
      return mismatch('invoice is on another Bitcoin network')
  }
  return undefined
}

/** Renter side: is this lease the one the paid offer promised? */
export function checkLeaseForOffer(lease: Lease, offer: Offer): ProtocolError | undefined {
  const l = lease.body
  if (lease.signer !== offer.signer) return mismatch('lease is signed by another provider')
  if (l.offerId !== recordId(offer)) return mismatch('lease is for another offer')
  if (l.renter !== offer.body.renter) return mismatch('lease is for another renter')
  if (l.listingKey !== offer.body.listingKey) return mismatch('lease is for another listing')
  if (l.expiresAt - l.startsAt < offer.body.durationSeconds * 1000) {
    return mismatch('lease is shorter than the duration paid for')
  }
  return undefined
}
