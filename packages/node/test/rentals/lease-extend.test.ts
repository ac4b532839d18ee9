/**
 * Provider side of extend and cancel: the lease manager with real invoices on the devchain and real
 * containers. An extension is invoiced on its own, pushes the lease (record, SSH lookup, container) once
 * paid, lapses cleanly when not; a cancel removes the container and refunds the unserved time, taking the
 * money from the lease's and the extension's invoices.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { checkLeaseForOffer, refundSats, signRecord, verifyRecord, type Listing } from '@rpib/protocol'
import { createDockerRuntime, type DockerRuntime } from '../../src/containers/index.js'
import { RpibError } from '../../src/errors.js'
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

const rejectsWith = async (work: Promise<unknown>, code: string) =>
  assert.rejects(work, (err: unknown) => err instanceof RpibError && err.code === code)

describe('provider leases: extend and cancel (devchain + Docker)', { skip }, () => {
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
  let refundAddress: string

  before(async () => {
    env = await paymentsEnv()
    home = await mkdtemp(join(tmpdir(), 'rpib-lease-extend-'))
    providerKey = await generateKeyPair('Ed25519')
    renterKey = await generateKeyPair('Ed25519')
    const p = await env.newWallet('provider')
    const r = await env.newWallet('renter')
    renterWallet = r.wallet
    for (let i = 0; i < 4; i++)
      await env.devchain.faucet((await renterWallet.nextReceiveAddress()).address, 500_000)
    await env.devchain.faucet((await p.wallet.nextReceiveAddress()).address, 100_000)
    await env.devchain.mine(1)
    refundAddress = (await renterWallet.nextReceiveAddress()).address
    invoices = createInvoiceService({
      store: createInvoiceFileStore(p.home),
      backend: env.backend,
      wallet: p.wallet,
      pollIntervalMs: 100,
    })
    await invoices.start()
    runtime = createDockerRuntime({ networkName: uniqueName('rpib-extend') })
    await runtime.ensureNetwork()
    listing = await signRecord('listing', testListingBody({ images: [BUSYBOX_IMAGE] }), providerKey)
    manager = createLeaseManager({
      privateKey: providerKey,
      peerId: peerIdFromPrivateKey(providerKey),
      store: createRentalFileStore(home),
      invoices,
      runtime,
      listing: () => listing,
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

  /** An active lease of `hours` test hours, paid from the renter's wallet. */
  async function activeLease(hours: number) {
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
    await renterWallet.send({ to: made.offer.body.invoice.address, amountSats: made.offer.body.priceSats })
    await env.devchain.mine(1)
    await until(made.offerId, 'lease active', (r) => r.state.status === 'active')
    return made
  }

  async function received(address: string): Promise<number> {
    return (await env.backend.addressUtxos(address)).reduce((sum, u) => sum + u.valueSats, 0)
  }

  it('a paid extension moves the expiry of the state, the signed lease and the SSH lookup; the container stays', async () => {
    const made = await activeLease(4)
    const user = leaseUser(made.offerId)
    const firstExpiry = rental(made.offerId).state.expiresAt!
    const ext = await manager.extend(made.offerId, 2 * HOUR, 777)
    const checked = await verifyRecord('lease-extension', ext)
    assert.ok(checked.ok)
    assert.deepEqual(
      [ext.body.leaseId, ext.body.addSeconds, ext.body.priceSats],
      [made.offerId, 2 * HOUR, 777],
    )
    // the extension must be paid while the lease runs (give or take the invoice's creation)
    assert.ok(ext.body.invoice.expiresAt <= firstExpiry + 1000, 'invoice outlives the lease')
    // asking again for the same time gives the same invoice; for other time it is refused while one is open
    assert.equal(
      (await manager.extend(made.offerId, 2 * HOUR, 777)).body.invoice.address,
      ext.body.invoice.address,
    )
    await rejectsWith(manager.extend(made.offerId, HOUR, 400), 'ERR_EXTENSION_PENDING')

    await renterWallet.send({ to: ext.body.invoice.address, amountSats: 777 })
    await env.devchain.mine(1)
    await env.devchain.mine(1)
    const extended = await until(made.offerId, 'extension applied', (r) => r.state.expiresAt !== firstExpiry)
    assert.equal(extended.state.expiresAt, firstExpiry + 2 * HOUR * 1000)
    assert.equal(extended.state.priceSats, made.offer.body.priceSats + 777)
    const lease = await verifyRecord('lease', extended.lease, { ignoreExpiry: true })
    assert.ok(lease.ok)
    assert.equal(lease.record.body.expiresAt, firstExpiry + 2 * HOUR * 1000)
    assert.equal(checkLeaseForOffer(lease.record, made.offer), undefined)
    assert.equal(manager.lookup(user)?.expiresAt, firstExpiry + 2 * HOUR * 1000)

    await waitFor(() => (Date.now() > firstExpiry + 500 ? true : undefined), 'the first expiry', 20_000)
    assert.equal((await runtime.getLease(user))?.state, 'running', 'still running after the first expiry')
    assert.equal(rental(made.offerId).state.status, 'active')
    const ended = await until(made.offerId, 'lease expired', (r) => r.state.status === 'ended')
    assert.equal(ended.state.endReason, 'expired')
    assert.equal(ended.state.servedSeconds, 6 * HOUR)
    assert.equal(ended.state.refundDueSats, 0)
    assert.equal(await runtime.getLease(user), undefined)
    await rejectsWith(manager.extend(made.offerId, HOUR, 400), 'ERR_LEASE_NOT_ACTIVE')
    await rejectsWith(manager.cancel(made.offerId), 'ERR_LEASE_ENDED')
  })

  it('an underpaid extension lapses: the lease keeps its expiry and the partial payment goes back', async () => {
    const made = await activeLease(2)
    const firstExpiry = rental(made.offerId).state.expiresAt!
    const ext = await manager.extend(made.offerId, HOUR, 1000)
    const before = await received(refundAddress)
    await renterWallet.send({ to: ext.body.invoice.address, amountSats: 400 })
    await env.devchain.mine(1)
    const lapsed = await until(
      made.offerId,
      'extension lapsed',
      (r) => r.state.pendingExtension === undefined && r.refunds.some((x) => x.amountSats === 400),
    )
    assert.equal(lapsed.state.expiresAt, firstExpiry)
    assert.equal(
      await waitFor(
        async () => ((await received(refundAddress)) >= before + 400 ? true : undefined),
        'refund',
      ),
      true,
    )
    await until(made.offerId, 'lease expired', (r) => r.state.status === 'ended')
    assert.equal(rental(made.offerId).state.endReason, 'expired')
  })

  it('cancel removes the container, signs the end and refunds the unserved time from both invoices', async () => {
    const made = await activeLease(4)
    const price = made.offer.body.priceSats
    const ext = await manager.extend(made.offerId, 4 * HOUR, price)
    await renterWallet.send({ to: ext.body.invoice.address, amountSats: price })
    await env.devchain.mine(1)
    await until(made.offerId, 'extension applied', (r) => r.state.durationSeconds === 8 * HOUR)
    const before = await received(refundAddress)
    const end = await manager.cancel(made.offerId)
    const checked = await verifyRecord('lease-end', end)
    assert.ok(checked.ok)
    assert.equal(end.body.reason, 'cancelled')
    assert.ok(end.body.servedSeconds < 4 * HOUR)
    // the refund is more than the lease invoice alone received
    assert.equal(end.body.refundDueSats, refundSats(2 * price, 8 * HOUR, end.body.servedSeconds))
    assert.ok(end.body.refundDueSats > price)
    const r = rental(made.offerId)
    assert.equal(r.refundError, undefined)
    assert.equal(
      r.refunds.reduce((s, x) => s + x.amountSats, 0),
      end.body.refundDueSats,
    )
    assert.equal(await runtime.getLease(leaseUser(made.offerId)), undefined)
    assert.equal(manager.lookup(leaseUser(made.offerId)), undefined)
    await waitFor(
      async () => ((await received(refundAddress)) === before + end.body.refundDueSats ? true : undefined),
      'refunds on the chain',
    )
  })
})
