/**
 * The failure paths that need an offer to lapse: a daemon's offers live a fixed 30 min, so these run the
 * provider's own pieces in-process (negotiator + lease manager + invoice service, real devchain and Docker)
 * with an offer lifetime of a few seconds. Refunds are checked on the devchain.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { signRecord, type Listing } from '@rpib/protocol'
import { createDockerRuntime, type DockerRuntime } from '../../src/containers/index.js'
import { createInvoiceService, type InvoiceService } from '../../src/payments/invoice-service.js'
import { createInvoiceFileStore } from '../../src/payments/invoice-store.js'
import type { Wallet } from '../../src/payments/wallet.js'
import { createRentalNegotiator, type RentalNegotiator } from '../../src/rentals/negotiation.js'
import { createLeaseManager, leaseUser, type LeaseManager } from '../../src/rentals/provider-leases.js'
import { createRentalFileStore, type ProviderRental } from '../../src/rentals/rental-store.js'
import { BUSYBOX_IMAGE, dockerSkipReason, uniqueName } from '../containers/harness.js'
import { testListingBody, TEST_SSH_KEY } from '../rentals/fixtures.js'
import { paymentsEnv, waitFor, type PaymentsEnv } from '../payments/helpers/env.js'

const HOUR = 3 // fast lease clock: an "hour" lasts 3 s
const OFFER_TTL_MS = 1500
const LISTING_WAIT_MS = 2000
const skip = await dockerSkipReason([BUSYBOX_IMAGE])

describe(
  'lapsed offer, overpayment, missing listing: refunds on the devchain (lease manager, devchain, Docker)',
  { skip },
  () => {
    let env: PaymentsEnv
    let home: string
    let providerKey: Ed25519PrivateKey
    let renterKey: Ed25519PrivateKey
    let renterWallet: Wallet
    let invoices: InvoiceService
    let runtime: DockerRuntime
    let listing: Listing
    let negotiator: RentalNegotiator
    let manager: LeaseManager
    /** Whether the provider lists its device right now (it does not for a moment after a restart). */
    let listed = true

    before(async () => {
      env = await paymentsEnv()
      home = await mkdtemp(join(tmpdir(), 'rpib-late-'))
      providerKey = await generateKeyPair('Ed25519')
      renterKey = await generateKeyPair('Ed25519')
      const p = await env.newWallet('provider')
      renterWallet = (await env.newWallet('renter')).wallet
      await env.devchain.faucet((await renterWallet.nextReceiveAddress()).address, 1_000_000)
      await env.devchain.faucet((await p.wallet.nextReceiveAddress()).address, 100_000)
      await env.devchain.mine(1)
      invoices = createInvoiceService({
        store: createInvoiceFileStore(p.home),
        backend: env.backend,
        wallet: p.wallet,
        pollIntervalMs: 100,
      })
      await invoices.start()
      runtime = createDockerRuntime({ networkName: uniqueName('rpib-late') })
      await runtime.ensureNetwork()
      listing = await signRecord('listing', testListingBody({ images: [BUSYBOX_IMAGE] }), providerKey)
      manager = createLeaseManager({
        privateKey: providerKey,
        peerId: peerIdFromPrivateKey(providerKey),
        store: createRentalFileStore(home),
        invoices,
        runtime,
        listing: () => (listed ? listing : undefined),
        listingWaitMs: LISTING_WAIT_MS,
        sshAccess: () => ({
          endpoints: ['/ip4/127.0.0.1/tcp/4001'],
          hostKeyFingerprint: listing.body.sshHostKey,
        }),
        sweepIntervalMs: 100,
      })
      await manager.start()
      negotiator = createRentalNegotiator({
        privateKey: providerKey,
        peerId: peerIdFromPrivateKey(providerKey),
        listing: () => listing,
        busySlots: (d) => manager.busySlots(d),
        invoices,
        bitcoinNetwork: 'regtest',
        secondsPerHour: HOUR,
        offerTtlMs: OFFER_TTL_MS,
        onOffer: (o) => manager.track(o),
      })
    })

    after(async () => {
      await manager?.stop()
      await invoices?.stop()
      for (const l of (await runtime?.listLeases()) ?? []) await runtime.removeLease(l.leaseId)
      await runtime?.removeNetwork()
      await env?.close()
      await rm(home, { recursive: true, force: true })
    })

    const rental = (id: string) => manager.get(id) as ProviderRental
    const until = (id: string, what: string, ok: (r: ProviderRental) => boolean, ms = 20_000) =>
      waitFor(() => (ok(rental(id)) ? rental(id) : undefined), what, ms)

    async function rent(hours: number) {
      const refundAddress = (await renterWallet.nextReceiveAddress()).address
      const request = await signRecord(
        'rent-request',
        {
          listingKey: `${listing.signer}/box`,
          listingVersion: 1,
          durationSeconds: hours * HOUR,
          image: BUSYBOX_IMAGE,
          sshPublicKeys: [TEST_SSH_KEY],
          refundAddress,
        },
        renterKey,
      )
      const made = await negotiator.answer(peerIdFromPrivateKey(renterKey).toString(), request)
      return { made, refundAddress }
    }

    async function received(address: string): Promise<number> {
      return (await env.backend.addressUtxos(address)).reduce((sum, u) => sum + u.valueSats, 0)
    }

    it('a payment that arrives after the offer expired buys nothing and goes back in full', async () => {
      const { made, refundAddress } = await rent(1)
      const lapsed = await until(
        made.offerId,
        'the offer to lapse',
        (r) => r.state.status === 'ended',
        15_000,
      )
      assert.equal(lapsed.state.endReason, 'offer-expired')
      const price = made.offer.body.priceSats
      await renterWallet.send({ to: made.offer.body.invoice.address, amountSats: price })
      await env.devchain.mine(1)
      const refunded = await until(made.offerId, 'the late payment refund', (r) => r.refunds.length > 0)
      assert.deepEqual(
        refunded.refunds.map((r) => [r.amountSats, r.reason]),
        [[price, 'paid-late']],
      )
      assert.equal(refunded.state.status, 'ended', 'no lease for a late payment')
      assert.equal(refunded.lease, undefined)
      assert.equal(await runtime.getLease(leaseUser(made.offerId)), undefined, 'no container')
      await env.devchain.mine(1)
      assert.equal(await received(refundAddress), price)
    })

    it('an overpaid lease runs normally and the excess is refunded at its end', async () => {
      const { made, refundAddress } = await rent(1)
      const price = made.offer.body.priceSats
      const excess = 2345
      await renterWallet.send({ to: made.offer.body.invoice.address, amountSats: price + excess })
      await env.devchain.mine(1)
      const active = await until(made.offerId, 'the lease', (r) => r.state.status === 'active')
      assert.equal(active.state.paidSats, price + excess)
      assert.deepEqual(active.refunds, [], 'nothing refunded while the lease runs')
      const ended = await until(made.offerId, 'the end and refund', (r) => r.refunds.length > 0)
      assert.equal(ended.state.endReason, 'expired')
      assert.equal(ended.state.earnedSats, price)
      assert.deepEqual(
        ended.refunds.map((r) => [r.amountSats, r.reason]),
        [[excess, 'lease-end']],
      )
      await env.devchain.mine(1)
      assert.equal(await received(refundAddress), excess)
    })

    it('a paid rental waits for its device listing: served once it is back, refunded in full if it stays gone', async () => {
      const pay = async (made: Awaited<ReturnType<typeof rent>>['made']) => {
        await renterWallet.send({
          to: made.offer.body.invoice.address,
          amountSats: made.offer.body.priceSats,
        })
        await env.devchain.mine(1)
      }
      listed = false
      try {
        const back = await rent(1)
        await pay(back.made)
        const waiting = await until(back.made.offerId, 'the payment', (r) => r.state.paidSats > 0)
        assert.equal(waiting.state.status, 'paid', 'waits for the listing instead of failing')
        listed = true
        const active = await until(
          back.made.offerId,
          'the lease once listed',
          (r) => r.state.status === 'active',
        )
        assert.ok(active.lease)

        listed = false
        const gone = await rent(1)
        await pay(gone.made)
        const failed = await until(gone.made.offerId, 'the failure and refund', (r) => r.refunds.length > 0)
        assert.equal(failed.state.endReason, 'provision-failed')
        assert.deepEqual(
          failed.refunds.map((r) => [r.amountSats, r.reason]),
          [[gone.made.offer.body.priceSats, 'lease-end']],
        )
        await env.devchain.mine(1)
        assert.equal(await received(gone.refundAddress), gone.made.offer.body.priceSats)
      } finally {
        listed = true
      }
    })
  },
)
