import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { checkLeaseForOffer, signRecord, verifyRecord, type Listing } from '@rpib/protocol'
import { createDockerRuntime, type DockerRuntime } from '../../src/containers/index.js'
import { createInvoiceService, type InvoiceService } from '../../src/payments/invoice-service.js'
import { createInvoiceFileStore } from '../../src/payments/invoice-store.js'
import type { Wallet } from '../../src/payments/wallet.js'
import { createRentalNegotiator, type RentalNegotiator } from '../../src/rentals/negotiation.js'
import { createLeaseManager, leaseUser, type LeaseManager } from '../../src/rentals/provider-leases.js'
import { createRentalFileStore, type ProviderRental } from '../../src/rentals/rental-store.js'
import { BUSYBOX_IMAGE, dockerSkipReason, uniqueName } from '../containers/harness.js'
import { testListingBody, TEST_SSH_KEY } from './fixtures.js'
import { paymentsEnv, waitFor, type PaymentsEnv } from '../payments/helpers/env.js'

const HOUR = 3 // fast test clock: an "hour" lasts 3 s
const skip = await dockerSkipReason([BUSYBOX_IMAGE])

describe(
  'provider leases: paid offer → container → signed lease → expiry → refund (devchain + Docker)',
  { skip },
  () => {
    let env: PaymentsEnv
    let home: string
    let providerKey: Ed25519PrivateKey
    let renterKey: Ed25519PrivateKey
    let providerWallet: Wallet
    let renterWallet: Wallet
    let invoices: InvoiceService
    let runtime: DockerRuntime
    let listing: Listing
    let negotiator: RentalNegotiator
    let manager: LeaseManager
    let refundAddress: string
    const renterPeer = () => peerIdFromPrivateKey(renterKey).toString()

    function managerFor(dir: string): LeaseManager {
      return createLeaseManager({
        privateKey: providerKey,
        peerId: peerIdFromPrivateKey(providerKey),
        store: createRentalFileStore(dir),
        invoices,
        runtime,
        listing: () => listing,
        sshAccess: () => ({
          endpoints: ['/ip4/127.0.0.1/tcp/4001'],
          hostKeyFingerprint: listing.body.sshHostKey,
        }),
        sweepIntervalMs: 100,
      })
    }

    before(async () => {
      env = await paymentsEnv()
      home = await mkdtemp(join(tmpdir(), 'rpib-leases-'))
      providerKey = await generateKeyPair('Ed25519')
      renterKey = await generateKeyPair('Ed25519')
      const p = await env.newWallet('provider')
      const r = await env.newWallet('renter')
      providerWallet = p.wallet
      renterWallet = r.wallet
      // the renter pays rentals; the provider pays refund fees from its own funds
      await env.devchain.faucet((await renterWallet.nextReceiveAddress()).address, 1_000_000)
      await env.devchain.faucet((await providerWallet.nextReceiveAddress()).address, 100_000)
      await env.devchain.mine(1)
      refundAddress = (await renterWallet.nextReceiveAddress()).address
      invoices = createInvoiceService({
        store: createInvoiceFileStore(p.home),
        backend: env.backend,
        wallet: providerWallet,
        pollIntervalMs: 100,
      })
      await invoices.start()
      runtime = createDockerRuntime({ networkName: uniqueName('rpib-rent') })
      await runtime.ensureNetwork()
      listing = await signRecord(
        'listing',
        testListingBody({ images: [BUSYBOX_IMAGE, 'rpib/missing:none'] }),
        providerKey,
      )
      manager = managerFor(home)
      await manager.start()
      negotiator = createRentalNegotiator({
        privateKey: providerKey,
        peerId: peerIdFromPrivateKey(providerKey),
        listing: () => listing,
        busySlots: (d) => manager.busySlots(d),
        invoices,
        bitcoinNetwork: 'regtest',
        secondsPerHour: HOUR,
        offerTtlMs: 4000,
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

    async function rent(image: string, hours = 1) {
      const request = await signRecord(
        'rent-request',
        {
          listingKey: `${listing.signer}/box`,
          listingVersion: 1,
          durationSeconds: hours * HOUR,
          image,
          sshPublicKeys: [TEST_SSH_KEY],
          refundAddress,
        },
        renterKey,
      )
      return negotiator.answer(renterPeer(), request)
    }

    const rental = (id: string) => manager.get(id) as ProviderRental
    const until = (id: string, what: string, ok: (r: ProviderRental) => boolean, ms = 20_000) =>
      waitFor(() => (ok(rental(id)) ? rental(id) : undefined), what, ms)

    /** Ended, and the refund it owed was made (or its failure recorded). */
    const settled = (r: ProviderRental) =>
      r.state.status === 'ended' && (r.refunds.length > 0 || r.refundError !== undefined)

    async function received(address: string): Promise<number> {
      return (await env.backend.addressUtxos(address)).reduce((sum, u) => sum + u.valueSats, 0)
    }

    it('a paid offer becomes an active lease with a container, then expires and the container is gone', async () => {
      const made = await rent(BUSYBOX_IMAGE)
      assert.equal(rental(made.offerId).state.status, 'awaiting-payment')
      await renterWallet.send({ to: made.offer.body.invoice.address, amountSats: made.offer.body.priceSats })
      await env.devchain.mine(1)
      const active = await until(made.offerId, 'lease active', (r) => r.state.status === 'active')
      const lease = await verifyRecord('lease', active.lease)
      assert.ok(lease.ok, 'the lease record verifies')
      assert.equal(checkLeaseForOffer(lease.record, made.offer), undefined)
      assert.equal(lease.record.body.ssh.user, leaseUser(made.offerId))
      assert.equal((await runtime.getLease(leaseUser(made.offerId)))?.state, 'running')
      const access = manager.lookup(leaseUser(made.offerId))
      assert.deepEqual(access?.authorizedKeys, [TEST_SSH_KEY])
      assert.equal(manager.busySlots('box'), 1)

      const ended = await until(made.offerId, 'lease expired', (r) => r.state.status === 'ended')
      assert.equal(ended.state.endReason, 'expired')
      assert.equal(ended.state.earnedSats, made.offer.body.priceSats)
      const end = await verifyRecord('lease-end', ended.end)
      assert.ok(end.ok)
      assert.equal(end.record.body.reason, 'expired')
      assert.equal(end.record.body.refundDueSats, 0)
      assert.equal(await runtime.getLease(leaseUser(made.offerId)), undefined, 'container removed')
      assert.equal(manager.lookup(leaseUser(made.offerId)), undefined, 'SSH access gone')
      assert.equal(manager.busySlots('box'), 0)
    })

    it('when provisioning fails the renter gets everything back on the devchain', async () => {
      const before = await received(refundAddress)
      const made = await rent('rpib/missing:none')
      await renterWallet.send({ to: made.offer.body.invoice.address, amountSats: made.offer.body.priceSats })
      await env.devchain.mine(1)
      const ended = await until(made.offerId, 'provision failure and refund', settled)
      assert.equal(ended.state.endReason, 'provision-failed')
      assert.equal(ended.refunds.length, 1, ended.refundError)
      assert.equal(ended.refunds[0]?.amountSats, made.offer.body.priceSats)
      assert.equal((await verifyRecord('lease-end', ended.end)).ok, true)
      await env.devchain.mine(1)
      assert.equal((await received(refundAddress)) - before, made.offer.body.priceSats)
    })

    it('an underpaid offer that expires refunds what was paid, and a restart keeps every rental', async () => {
      const before = await received(refundAddress)
      const made = await rent(BUSYBOX_IMAGE)
      const half = Math.floor(made.offer.body.priceSats / 2)
      await renterWallet.send({ to: made.offer.body.invoice.address, amountSats: half })
      await env.devchain.mine(1)
      const ended = await until(made.offerId, 'offer lapse and refund', settled)
      assert.equal(ended.state.endReason, 'underpaid')
      assert.equal(ended.refunds[0]?.amountSats, half)
      await env.devchain.mine(1)
      assert.equal((await received(refundAddress)) - before, half)

      await manager.stop()
      manager = managerFor(home)
      await manager.start()
      assert.equal(manager.get(made.offerId)?.state.endReason, 'underpaid')
      assert.equal(manager.list().length, 3)
    })
  },
)
