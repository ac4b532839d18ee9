import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import type { PrivateKey } from '@libp2p/interface'
import {
  checkLeaseForOffer,
  checkOfferForRequest,
  checkRequestForListing,
  recordId,
  signRecord,
} from '../src/index.js'
import type { Lease, Listing, Offer, RentRequest } from '../src/index.js'
import { NOW, peerIdOf, sampleBodies, testKey } from './fixtures.js'

let provider: PrivateKey
let renter: PrivateKey
let bodies: ReturnType<typeof sampleBodies>
let listing: Listing
let request: RentRequest
let offer: Offer
let lease: Lease

const opts = { now: NOW }

before(async () => {
  provider = await testKey(1)
  renter = await testKey(2)
  bodies = sampleBodies(await peerIdOf(provider), await peerIdOf(renter))
  listing = await signRecord('listing', bodies.listing, provider, opts)
  request = await signRecord('rent-request', bodies['rent-request'], renter, opts)
  offer = await signRecord('offer', { ...bodies.offer, requestId: recordId(request) }, provider, opts)
  lease = await signRecord('lease', { ...bodies.lease, offerId: recordId(offer) }, provider, opts)
})

describe('record consistency', () => {
  it('accepts the records of one honest negotiation', () => {
    assert.equal(checkRequestForListing(request, listing), undefined)
    assert.equal(checkOfferForRequest(offer, request, listing), undefined)
    assert.equal(checkLeaseForOffer(lease, offer), undefined)
  })

  it('refuses a request the listing cannot serve', async () => {
    const cases = [
      { durationSeconds: 60 },
      { durationSeconds: 721 * 3600 },
      { image: 'someone/else:latest' },
      { listingVersion: 2 },
    ]
    for (const change of cases) {
      const r = await signRecord('rent-request', { ...bodies['rent-request'], ...change }, renter, opts)
      assert.equal(checkRequestForListing(r, listing)?.code, 'ERR_MISMATCH', JSON.stringify(change))
    }
    const unlisted = await signRecord('listing', { ...bodies.listing, status: 'unlisted' }, provider, opts)
    assert.equal(checkRequestForListing(request, unlisted)?.code, 'ERR_MISMATCH')
    const otherProvidersListing = await signRecord('listing', bodies.listing, renter, opts)
    assert.equal(checkRequestForListing(request, otherProvidersListing)?.code, 'ERR_MISMATCH')
  })

  it('refuses an offer for another request, renter, provider, price or network', async () => {
    const other = await signRecord('rent-request', bodies['rent-request'], renter, opts)
    const forOther = await signRecord(
      'offer',
      { ...bodies.offer, requestId: recordId(other) },
      provider,
      opts,
    )
    assert.match(checkOfferForRequest(forOther, request)?.message ?? '', /another request/)

    const base = { ...bodies.offer, requestId: recordId(request) }
    const overpriced = await signRecord(
      'offer',
      { ...base, priceSats: 2401, invoice: { ...base.invoice, amountSats: 2401 } },
      provider,
      opts,
    )
    assert.equal(checkOfferForRequest(overpriced, request), undefined) // without the listing, price is unknown
    assert.match(checkOfferForRequest(overpriced, request, listing)?.message ?? '', /listing price is 2400/)

    const wrongRenter = await signRecord(
      'offer',
      { ...base, renter: await peerIdOf(provider) },
      provider,
      opts,
    )
    assert.equal(checkOfferForRequest(wrongRenter, request)?.code, 'ERR_MISMATCH')
    const impostor = await signRecord('offer', base, await testKey(9), opts)
    assert.match(checkOfferForRequest(impostor, request)?.message ?? '', /not signed by the listing provider/)

    const mainnetListing = await signRecord(
      'listing',
      { ...bodies.listing, bitcoinNetwork: 'mainnet' },
      provider,
      opts,
    )
    assert.match(
      checkOfferForRequest(offer, request, mainnetListing)?.message ?? '',
      /another Bitcoin network/,
    )
  })

  it('refuses a lease for another offer or shorter than paid for', async () => {
    const short = await signRecord(
      'lease',
      { ...bodies.lease, offerId: recordId(offer), expiresAt: bodies.lease.startsAt + 3_600_000 },
      provider,
      opts,
    )
    assert.match(checkLeaseForOffer(short, offer)?.message ?? '', /shorter/)
    const otherOffer = await signRecord('lease', bodies.lease, provider, opts)
    assert.match(checkLeaseForOffer(otherOffer, offer)?.message ?? '', /another offer/)
    const foreign = await signRecord('lease', { ...bodies.lease, offerId: recordId(offer) }, renter, opts)
    assert.match(checkLeaseForOffer(foreign, offer)?.message ?? '', /another provider/)
  })
})
