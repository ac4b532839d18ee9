import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { signRecord, verifyRecord, type Listing } from '@rpib/protocol'
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

const execFileAsync = promisify(execFile)
const HOUR = 3 // fast test clock: an "hour" lasts 3 s
const OUTAGE_THRESHOLD_MS = 1000
const skip = await dockerSkipReason([BUSYBOX_IMAGE])

describe(
  'provider outage: the lease and its files survive, the down time is refunded (devchain + Docker)',
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
    let manager: LeaseManager | undefined

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
        aliveIntervalMs: 100,
        outageThresholdMs: OUTAGE_THRESHOLD_MS,
      })
    }

    before(async () => {
      env = await paymentsEnv()
      home = await mkdtemp(join(tmpdir(), 'rpib-outage-'))
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
      runtime = createDockerRuntime({ networkName: uniqueName('rpib-outage') })
      await runtime.ensureNetwork()
      listing = await signRecord('listing', testListingBody({ images: [BUSYBOX_IMAGE] }), providerKey)
      manager = managerFor(home)
      await manager.start()
      negotiator = createRentalNegotiator({
        privateKey: providerKey,
        peerId: peerIdFromPrivateKey(providerKey),
        listing: () => listing,
        busySlots: (d) => manager?.busySlots(d) ?? 0,
        invoices,
        bitcoinNetwork: 'regtest',
        secondsPerHour: HOUR,
        offerTtlMs: 4000,
        onOffer: (o) => (manager as LeaseManager).track(o),
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

    const current = (): LeaseManager => {
      assert.ok(manager, 'the lease manager runs')
      return manager
    }
    const rental = (id: string) => current().get(id) as ProviderRental
    const until = (id: string, what: string, ok: (r: ProviderRental) => boolean, ms = 20_000) =>
      waitFor(() => (ok(rental(id)) ? rental(id) : undefined), what, ms)

    async function received(address: string): Promise<number> {
      return (await env.backend.addressUtxos(address)).reduce((sum, u) => sum + u.valueSats, 0)
    }

    /** Rents `hours`, pays in full and waits for the lease; returns the offer and the renter's refund address. */
    async function activeLease(hours: number) {
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
      await renterWallet.send({ to: made.offer.body.invoice.address, amountSats: made.offer.body.priceSats })
      await env.devchain.mine(1)
      await until(made.offerId, 'lease active', (r) => r.state.status === 'active')
      return { made, refundAddress }
    }

    /** The provider is down for `ms` (its manager stopped, the containers left running), then back. */
    async function outage(ms: number): Promise<{ downFrom: number; backAt: number }> {
      await current().stop()
      manager = undefined
      const downFrom = Date.now()
      await new Promise((r) => setTimeout(r, ms))
      const next = managerFor(home)
      const backAt = Date.now()
      await next.start()
      manager = next
      return { downFrom, backAt }
    }

    async function containerOf(offerId: string) {
      const lease = await runtime.getLease(leaseUser(offerId))
      assert.ok(lease, `lease container of ${offerId} exists`)
      return lease
    }

    it('a lease still running after the outage keeps its container and files; the down time is refunded pro-rata', async () => {
      const { made, refundAddress } = await activeLease(4) // 12 s
      const price = made.offer.body.priceSats
      const before = await containerOf(made.offerId)
      await execFileAsync('docker', ['exec', before.containerName, 'sh', '-c', 'echo kept > /root/work.txt'])

      const { downFrom, backAt } = await outage(2500)
      const back = rental(made.offerId)
      assert.equal(back.state.status, 'active', 'a restart never ends a paid lease that has time left')
      const after = await containerOf(made.offerId)
      assert.equal(after.containerId, before.containerId, 'the same container')
      assert.equal(after.state, 'running')
      const { stdout } = await execFileAsync('docker', ['exec', after.containerName, 'cat', '/root/work.txt'])
      assert.equal(stdout.trim(), 'kept', 'the renter’s files survived')

      const down = back.state.downSeconds ?? 0
      // the gap is measured from the last alive mark, written when serving stopped
      assert.ok(down >= 2 && down <= Math.ceil((backAt + 1000 - downFrom) / 1000) + 1, `down ${down} s`)
      const expected = Math.floor((price * down) / (4 * HOUR))
      assert.equal(back.state.outageRefundSats, expected)
      assert.ok(expected > 0)
      assert.deepEqual(
        back.refunds.map((r) => [r.amountSats, r.reason]),
        [[expected, 'outage']],
        back.refundError,
      )
      await env.devchain.mine(1)
      assert.equal(await received(refundAddress), expected, 'the outage refund is on the chain')
      // SSH access stays, until the expiry the renter was given
      assert.equal(current().lookup(leaseUser(made.offerId))?.expiresAt, back.lease?.body.expiresAt)

      // the lease runs to its original expiry; the end refunds nothing more
      const ended = await until(made.offerId, 'lease expired', (r) => r.state.status === 'ended', 30_000)
      assert.equal(ended.state.endReason, 'expired')
      assert.equal(ended.state.refundDueSats, expected)
      assert.equal(ended.state.earnedSats! + ended.state.refundDueSats!, ended.state.paidSats)
      assert.equal(ended.refunds.length, 1, 'no second refund')
      const end = await verifyRecord('lease-end', ended.end)
      assert.ok(end.ok)
      assert.equal(end.record.body.refundDueSats, expected)
      assert.equal(end.record.body.servedSeconds, 4 * HOUR - down)
      assert.equal(await runtime.getLease(leaseUser(made.offerId)), undefined, 'container removed at expiry')
    })

    it('a lease that ran out during the outage ends as provider-offline with the unserved part refunded', async () => {
      const { made, refundAddress } = await activeLease(1) // 3 s
      const price = made.offer.body.priceSats
      await outage(4000)
      const ended = rental(made.offerId)
      assert.equal(ended.state.status, 'ended')
      assert.equal(ended.state.endReason, 'provider-offline')
      const served = ended.state.servedSeconds ?? -1
      assert.ok(served >= 0 && served < HOUR, `served ${served} s of ${HOUR}`)
      const due = price - Math.ceil((price * served) / HOUR)
      assert.equal(ended.state.refundDueSats, due)
      assert.ok(due > 0)
      assert.deepEqual(
        ended.refunds.map((r) => [r.amountSats, r.reason]),
        [[due, 'lease-end']],
        ended.refundError,
      )
      const end = await verifyRecord('lease-end', ended.end)
      assert.ok(end.ok)
      assert.equal(end.record.body.reason, 'provider-offline')
      assert.equal(await runtime.getLease(leaseUser(made.offerId)), undefined, 'no container left behind')
      await env.devchain.mine(1)
      assert.equal(await received(refundAddress), due)
    })

    it('a short restart (under the threshold) refunds nothing and keeps the lease', async () => {
      const { made } = await activeLease(4)
      await outage(0)
      const back = rental(made.offerId)
      assert.equal(back.state.status, 'active')
      assert.equal(back.state.downSeconds, undefined)
      assert.deepEqual(back.refunds, [])
      assert.equal((await containerOf(made.offerId)).state, 'running')
    })
  },
)
