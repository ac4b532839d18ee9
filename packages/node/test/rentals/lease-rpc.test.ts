/**
 * The lease ops of `/rpib/rent/1.0.0` over real libp2p (Noise-authenticated peers on loopback) with real
 * invoices: only the renter of an offer may extend, cancel or expose it, and the renter checks what the
 * provider signs (an extension dearer than the paid rate, or an end for another lease, is refused). The
 * provider's lease manager is exercised with real containers in lease-extend.test.ts; here the negotiator's
 * callbacks stand in for it so each answer can be made right or wrong on purpose.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Ed25519PrivateKey, Libp2p } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import {
  priceSats,
  recordId,
  signRecord,
  type Lease,
  type LeaseEnd,
  type LeaseExtension,
  type Listing,
  type Offer,
} from '@rpib/protocol'
import { createInvoiceService, type InvoiceService } from '../../src/payments/invoice-service.js'
import { createInvoiceFileStore } from '../../src/payments/invoice-store.js'
import {
  cancelRental,
  createRentalNegotiator,
  maxExtensionSats,
  requestExpose,
  requestExtension,
  requestOffer,
  type RentalNegotiator,
} from '../../src/rentals/negotiation.js'
import { testListingBody, TEST_SSH_KEY } from './fixtures.js'
import { paymentsEnv, type PaymentsEnv } from '../payments/helpers/env.js'

const HOUR = 10
const RATE = 999 // sats per hour: prices round up, so the rate bound is exercised

describe('lease ops over /rpib/rent/1.0.0: extend, cancel, expose (real libp2p)', () => {
  let env: PaymentsEnv
  let invoices: InvoiceService
  let provider: Libp2p
  let renter: Libp2p
  let stranger: Libp2p
  let providerKey: Ed25519PrivateKey
  let negotiator: RentalNegotiator
  let listing: Listing
  let offer: Offer
  let lease: Lease
  /** What the provider's callbacks answer; each test sets what it needs. */
  let extensionPrice: (fair: number) => number = (fair) => fair
  let endFor: (offerId: string) => string = (id) => id
  const asked: { op: string; offerId: string; addSeconds?: number; priceSats?: number }[] = []

  const node = async (privateKey?: Ed25519PrivateKey) =>
    createLibp2p({
      ...(privateKey ? { privateKey } : {}),
      addresses: { listen: privateKey ? ['/ip4/127.0.0.1/tcp/0'] : [] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
    })

  before(async () => {
    env = await paymentsEnv()
    const { wallet, home } = await env.newWallet('provider')
    invoices = createInvoiceService({ store: createInvoiceFileStore(home), backend: env.backend, wallet })
    providerKey = await generateKeyPair('Ed25519')
    const renterKey = await generateKeyPair('Ed25519')
    provider = await node(providerKey)
    renter = await createLibp2p({
      privateKey: renterKey,
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
    })
    stranger = await node()
    listing = await signRecord(
      'listing',
      testListingBody({ deviceId: 'pi-1', satsPerHour: RATE, maxHours: 24, images: ['rpib/base:bookworm'] }),
      providerKey,
    )
    negotiator = createRentalNegotiator({
      privateKey: providerKey,
      peerId: provider.peerId,
      listing: (deviceId) => (deviceId === listing.body.deviceId ? listing : undefined),
      busySlots: () => 0,
      invoices,
      bitcoinNetwork: 'regtest',
      secondsPerHour: HOUR,
      status: (offerId) =>
        offerId === recordId(offer)
          ? { renter: offer.body.renter, status: 'active', paidSats: offer.body.priceSats, lease }
          : undefined,
      extend: async (offerId, addSeconds, price) => {
        asked.push({ op: 'extend', offerId, addSeconds, priceSats: price })
        const charged = extensionPrice(price)
        const ext: LeaseExtension = await signRecord(
          'lease-extension',
          {
            leaseId: offerId,
            addSeconds,
            priceSats: charged,
            invoice: { ...offer.body.invoice, amountSats: charged },
          },
          providerKey,
        )
        return ext
      },
      cancel: async (offerId) => {
        asked.push({ op: 'cancel', offerId })
        const end: LeaseEnd = await signRecord(
          'lease-end',
          {
            leaseId: endFor(offerId),
            reason: 'cancelled',
            endedAt: Date.now(),
            servedSeconds: 3,
            refundDueSats: 10,
          },
          providerKey,
        )
        return end
      },
    })
    await negotiator.start(provider)
    for (const n of [renter, stranger])
      await n.peerStore.merge(provider.peerId, { multiaddrs: provider.getMultiaddrs() })
    offer = (
      await requestOffer({
        libp2p: renter,
        privateKey: renterKey,
        listing,
        durationSeconds: 3 * HOUR,
        image: 'rpib/base:bookworm',
        sshPublicKeys: [TEST_SSH_KEY],
        secondsPerHour: HOUR,
      })
    ).offer
    const now = Date.now()
    lease = await signRecord(
      'lease',
      {
        leaseId: recordId(offer),
        offerId: recordId(offer),
        renter: offer.body.renter,
        listingKey: offer.body.listingKey,
        startsAt: now,
        expiresAt: now + 3 * HOUR * 1000,
        ssh: {
          user: 'labc',
          endpoints: ['/ip4/127.0.0.1/tcp/1'],
          hostKeyFingerprint: listing.body.sshHostKey,
        },
      },
      providerKey,
    )
  })

  after(async () => {
    await negotiator?.stop()
    for (const n of [renter, stranger, provider]) await n?.stop()
    await invoices?.stop()
    await env?.close()
  })

  it('extend: the provider prices the time with the listing and the renter accepts a fair extension', async () => {
    const ext = await requestExtension({ libp2p: renter, offer, addSeconds: 2 * HOUR })
    assert.equal(ext.body.priceSats, priceSats(RATE, 2 * HOUR, HOUR))
    assert.deepEqual(asked.at(-1), {
      op: 'extend',
      offerId: recordId(offer),
      addSeconds: 2 * HOUR,
      priceSats: priceSats(RATE, 2 * HOUR, HOUR),
    })
    assert.ok(ext.body.priceSats <= maxExtensionSats(offer, 2 * HOUR))
  })

  it('extend: a price above the paid rate is refused by the renter', async () => {
    extensionPrice = () => maxExtensionSats(offer, HOUR) + 1
    try {
      await assert.rejects(requestExtension({ libp2p: renter, offer, addSeconds: HOUR }), {
        code: 'ERR_EXTENSION_INVALID',
        message: /above the \d+ agreed/,
      })
    } finally {
      extensionPrice = (fair) => fair
    }
  })

  it('cancel: the renter gets the verified end; an end for another lease is refused', async () => {
    const end = await cancelRental({ libp2p: renter, offer })
    assert.equal(end.body.leaseId, recordId(offer))
    assert.equal(end.body.reason, 'cancelled')
    endFor = () => 'f'.repeat(64)
    try {
      await assert.rejects(cancelRental({ libp2p: renter, offer }), { code: 'ERR_LEASE_INVALID' })
    } finally {
      endFor = (id) => id
    }
  })

  it('a peer that is not the renter cannot extend, cancel or expose the lease', async () => {
    const before = asked.length
    await assert.rejects(requestExtension({ libp2p: stranger, offer, addSeconds: HOUR }), {
      code: 'ERR_RENT_UNKNOWN_OFFER',
    })
    await assert.rejects(cancelRental({ libp2p: stranger, offer }), { code: 'ERR_RENT_UNKNOWN_OFFER' })
    await assert.rejects(requestExpose({ libp2p: stranger, offer, port: 80 }), {
      code: 'ERR_RENT_UNKNOWN_OFFER',
    })
    assert.equal(asked.length, before, 'the lease manager was never asked')
  })

  it('expose is answered ERR_NOT_SUPPORTED while the provider has no expose handler', async () => {
    await assert.rejects(requestExpose({ libp2p: renter, offer, port: 8080 }), {
      code: 'ERR_NOT_SUPPORTED',
      message: /ssh -L/,
    })
  })
})
