import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Ed25519PrivateKey, Libp2p } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { PROTOCOLS, recordId, signRecord, verifyRecord, type Listing, type ListingBody } from '@rpib/protocol'
import { createInvoiceService, type InvoiceService } from '../../src/payments/invoice-service.js'
import { createInvoiceFileStore } from '../../src/payments/invoice-store.js'
import {
  createRentalNegotiator,
  requestOffer,
  type ProviderOffer,
  type RentalNegotiator,
} from '../../src/rentals/negotiation.js'
import { testListingBody, TEST_SSH_KEY } from './fixtures.js'
import { paymentsEnv, type PaymentsEnv } from '../payments/helpers/env.js'

const SECONDS_PER_HOUR = 10 // the sandbox's fast clock: an "hour" lasts 10 s

const listingBody = (overrides: Partial<ListingBody> = {}) =>
  testListingBody({
    deviceId: 'pi-1',
    version: 3,
    satsPerHour: 1000,
    maxHours: 24,
    slots: 1,
    images: ['rpib/base:bookworm'],
    ...overrides,
  })

describe('rental negotiation over /rpib/rent/1.0.0 (real libp2p, real invoices on the devchain)', () => {
  let env: PaymentsEnv
  let invoices: InvoiceService
  let provider: Libp2p
  let renter: Libp2p
  let providerKey: Ed25519PrivateKey
  let renterKey: Ed25519PrivateKey
  let negotiator: RentalNegotiator
  let listing: Listing
  let busy = 0
  const offers: ProviderOffer[] = []

  before(async () => {
    env = await paymentsEnv()
    const { wallet, home } = await env.newWallet('provider')
    invoices = createInvoiceService({ store: createInvoiceFileStore(home), backend: env.backend, wallet })
    providerKey = await generateKeyPair('Ed25519')
    renterKey = await generateKeyPair('Ed25519')
    provider = await createLibp2p({
      privateKey: providerKey,
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
    })
    renter = await createLibp2p({
      privateKey: renterKey,
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
    })
    listing = await signRecord('listing', listingBody(), providerKey)
    negotiator = createRentalNegotiator({
      privateKey: providerKey,
      peerId: provider.peerId,
      listing: (deviceId) => (deviceId === listing.body.deviceId ? listing : undefined),
      busySlots: () => busy,
      invoices,
      bitcoinNetwork: 'regtest',
      secondsPerHour: SECONDS_PER_HOUR,
      onOffer: (o) => {
        offers.push(o)
      },
    })
    await negotiator.start(provider)
    await renter.peerStore.merge(provider.peerId, { multiaddrs: provider.getMultiaddrs() })
  })

  after(async () => {
    await negotiator?.stop()
    await renter?.stop()
    await provider?.stop()
    await invoices?.stop()
    await env?.close()
  })

  const ask = (overrides: { durationSeconds?: number; image?: string; listing?: Listing } = {}) =>
    requestOffer({
      libp2p: renter,
      privateKey: renterKey,
      listing: overrides.listing ?? listing,
      durationSeconds: overrides.durationSeconds ?? 2 * SECONDS_PER_HOUR,
      image: overrides.image ?? 'rpib/base:bookworm',
      sshPublicKeys: [TEST_SSH_KEY],
      secondsPerHour: SECONDS_PER_HOUR,
    })

  it('answers a rent request with a signed offer whose invoice the provider watches', async () => {
    const { request, offer } = await ask()
    assert.equal(offer.signer, provider.peerId.toString())
    assert.equal(offer.body.requestId, recordId(request))
    assert.equal(offer.body.renter, renter.peerId.toString())
    assert.equal(offer.body.priceSats, 2000, '2 "hours" at 1000 sats/hour')
    assert.equal(offer.body.invoice.amountSats, 2000)
    assert.match(offer.body.invoice.address, /^bcrt1/)
    const made = offers.at(-1)
    assert.equal(made?.offerId, recordId(offer))
    const invoice = invoices.get(made.invoiceId)
    assert.equal(invoice.address, offer.body.invoice.address)
    assert.equal(invoice.amountSats, 2000)
    assert.equal((await verifyRecord('offer', offer)).ok, true)
  })

  it('gives every offer a fresh invoice address', async () => {
    const a = await ask()
    const b = await ask()
    assert.notEqual(a.offer.body.invoice.address, b.offer.body.invoice.address)
  })

  it('refuses a duration outside the listing, an image it does not offer, and a stale listing version', async () => {
    await assert.rejects(
      ask({ durationSeconds: 25 * SECONDS_PER_HOUR }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_RENT_MISMATCH')
        assert.match(err.message, /between 1 and 24 hours/)
        return true
      },
    )
    await assert.rejects(ask({ image: 'rpib/other:latest' }), { code: 'ERR_RENT_MISMATCH' })
    const stale = await signRecord('listing', listingBody({ version: 2 }), providerKey)
    await assert.rejects(ask({ listing: stale }), /refresh and retry/)
  })

  it('refuses an offer below the dust limit, which no wallet could pay', async () => {
    const normal = listing
    listing = await signRecord('listing', listingBody({ version: 4, satsPerHour: 100 }), providerKey)
    try {
      await assert.rejects(ask({ listing }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_RENT_PRICE_TOO_LOW')
        assert.match(err.message, /200 sats is below the 294-sat dust limit; rent more hours/)
        return true
      })
      // three hours cost 300 sats: payable, so offered
      const ok = await ask({ listing, durationSeconds: 3 * SECONDS_PER_HOUR })
      assert.equal(ok.offer.body.priceSats, 300)
    } finally {
      listing = normal
    }
  })

  it('refuses an unknown listing and a full device', async () => {
    const other = await signRecord('listing', listingBody({ deviceId: 'nope' }), providerKey)
    await assert.rejects(ask({ listing: other }), { code: 'ERR_RENT_UNKNOWN_LISTING' })
    busy = 1
    try {
      await assert.rejects(ask(), { code: 'ERR_RENT_NO_SLOTS' })
    } finally {
      busy = 0
    }
  })

  it('refuses a request signed by another peer than the sender, and a replayed request', async () => {
    const forger = await generateKeyPair('Ed25519')
    const body = {
      listingKey: `${listing.signer}/pi-1`,
      listingVersion: 3,
      durationSeconds: SECONDS_PER_HOUR,
      image: 'rpib/base:bookworm',
      sshPublicKeys: [TEST_SSH_KEY],
    }
    const forged = await signRecord('rent-request', body, forger)
    await assert.rejects(negotiator.answer(renter.peerId.toString(), forged), { code: 'ERR_RENT_SIGNER' })
    const honest = await signRecord('rent-request', body, renterKey)
    await negotiator.answer(renter.peerId.toString(), honest)
    await assert.rejects(negotiator.answer(renter.peerId.toString(), honest), { code: 'ERR_RENT_REPLAY' })
  })

  it('refuses a tampered request', async () => {
    const signed = await signRecord(
      'rent-request',
      {
        listingKey: `${listing.signer}/pi-1`,
        listingVersion: 3,
        durationSeconds: SECONDS_PER_HOUR,
        image: 'rpib/base:bookworm',
        sshPublicKeys: [TEST_SSH_KEY],
      },
      renterKey,
    )
    const tampered = { ...signed, body: { ...signed.body, durationSeconds: 24 * SECONDS_PER_HOUR } }
    await assert.rejects(
      negotiator.answer(renter.peerId.toString(), tampered),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_RENT_INVALID')
        assert.match(err.message, /signature/)
        return true
      },
    )
  })

  it('answers garbage on the stream with a typed error and keeps serving', async () => {
    const before = offers.length
    for (const payload of [new Uint8Array([0xff, 0xfe, 0x00]), new TextEncoder().encode('{"op":"rent"')]) {
      const stream = await renter.dialProtocol(provider.peerId, PROTOCOLS.rent)
      const lp = lpStream(stream)
      await lp.write(payload)
      const answer = JSON.parse(new TextDecoder().decode((await lp.read()).subarray())) as {
        ok: boolean
        error: { code: string }
      }
      assert.equal(answer.ok, false)
      assert.equal(answer.error.code, 'ERR_RPC_MALFORMED')
      await stream.close()
    }
    assert.equal(offers.length, before)
    const { offer } = await ask()
    assert.equal(offer.body.priceSats, 2000)
  })
})
