import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { checkLeaseForOffer, verifyRecord } from '@rpib/protocol'
import { leaseUser } from '../../src/rentals/provider-leases.js'
import type { ProviderRental } from '../../src/rentals/rental-store.js'
import { BUSYBOX_IMAGE, dockerSkipReason } from '../containers/harness.js'
import { TEST_SSH_KEY } from './fixtures.js'
import { startLeaseHarness, type LeaseHarness } from './lease-harness.js'

const HOUR = 3 // fast test clock: an "hour" lasts 3 s
const skip = await dockerSkipReason([BUSYBOX_IMAGE])

describe(
  'provider leases: paid offer → container → signed lease → expiry → refund (devchain + Docker)',
  { skip },
  () => {
    let h: LeaseHarness
    let refundAddress: string

    before(async () => {
      h = await startLeaseHarness({
        name: 'leases',
        secondsPerHour: HOUR,
        listing: { images: [BUSYBOX_IMAGE, 'rpib/missing:none'] },
        offerTtlMs: 4000,
      })
      refundAddress = (await h.renterWallet.nextReceiveAddress()).address
    })

    after(async () => {
      await h?.stop()
    })

    const rent = async (image: string, hours = 1) => (await h.rent({ hours, image, refundAddress })).made

    /** Ended, and the refund it owed was made (or its failure recorded). */
    const settled = (r: ProviderRental) =>
      r.state.status === 'ended' && (r.refunds.length > 0 || r.refundError !== undefined)

    it('a paid offer becomes an active lease with a container, then expires and the container is gone', async () => {
      const made = await rent(BUSYBOX_IMAGE)
      assert.equal(h.rental(made.offerId).state.status, 'awaiting-payment')
      await h.pay(made)
      const active = await h.until(made.offerId, 'lease active', (r) => r.state.status === 'active')
      const lease = await verifyRecord('lease', active.lease)
      assert.ok(lease.ok, 'the lease record verifies')
      assert.equal(checkLeaseForOffer(lease.record, made.offer), undefined)
      assert.equal(lease.record.body.ssh.user, leaseUser(made.offerId))
      assert.equal((await h.runtime.getLease(leaseUser(made.offerId)))?.state, 'running')
      const access = h.manager.lookup(leaseUser(made.offerId))
      assert.deepEqual(access?.authorizedKeys, [TEST_SSH_KEY])
      assert.equal(h.manager.busySlots('box'), 1)

      const ended = await h.until(made.offerId, 'lease expired', (r) => r.state.status === 'ended')
      assert.equal(ended.state.endReason, 'expired')
      assert.equal(ended.state.earnedSats, made.offer.body.priceSats)
      const end = await verifyRecord('lease-end', ended.end)
      assert.ok(end.ok)
      assert.equal(end.record.body.reason, 'expired')
      assert.equal(end.record.body.refundDueSats, 0)
      assert.equal(await h.runtime.getLease(leaseUser(made.offerId)), undefined, 'container removed')
      assert.equal(h.manager.lookup(leaseUser(made.offerId)), undefined, 'SSH access gone')
      assert.equal(h.manager.busySlots('box'), 0)
    })

    it('when provisioning fails the renter gets everything back on the devchain', async () => {
      const before = await h.received(refundAddress)
      const made = await rent('rpib/missing:none')
      await h.pay(made)
      const ended = await h.until(made.offerId, 'provision failure and refund', settled)
      assert.equal(ended.state.endReason, 'provision-failed')
      assert.equal(ended.refunds.length, 1, ended.refundError)
      assert.equal(ended.refunds[0]?.amountSats, made.offer.body.priceSats)
      assert.equal((await verifyRecord('lease-end', ended.end)).ok, true)
      await h.env.devchain.mine(1)
      assert.equal((await h.received(refundAddress)) - before, made.offer.body.priceSats)
    })

    it('an underpaid offer that expires refunds what was paid, and a restart keeps every rental', async () => {
      const before = await h.received(refundAddress)
      const made = await rent(BUSYBOX_IMAGE)
      const half = Math.floor(made.offer.body.priceSats / 2)
      await h.pay(made, half)
      const ended = await h.until(made.offerId, 'offer lapse and refund', settled)
      assert.equal(ended.state.endReason, 'underpaid')
      assert.equal(ended.refunds[0]?.amountSats, half)
      await h.env.devchain.mine(1)
      assert.equal((await h.received(refundAddress)) - before, half)

      await h.restartManager()
      assert.equal(h.manager.get(made.offerId)?.state.endReason, 'underpaid')
      assert.equal(h.manager.list().length, 3)
    })
  },
)
