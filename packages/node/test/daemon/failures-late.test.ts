/**
 * The failure paths that need an offer to lapse: a daemon's offers live a fixed 30 min, so these run the
 * provider's own pieces in-process (negotiator + lease manager + invoice service, real devchain and Docker)
 * with an offer lifetime of a few seconds. Refunds are checked on the devchain.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { leaseUser } from '../../src/rentals/provider-leases.js'
import { BUSYBOX_IMAGE, dockerSkipReason } from '../containers/harness.js'
import { startLeaseHarness, type LeaseHarness } from '../rentals/lease-harness.js'

const HOUR = 3 // fast lease clock: an "hour" lasts 3 s
const OFFER_TTL_MS = 1500
const LISTING_WAIT_MS = 2000
const skip = await dockerSkipReason([BUSYBOX_IMAGE])

describe(
  'lapsed offer, overpayment, missing listing: refunds on the devchain (lease manager, devchain, Docker)',
  { skip },
  () => {
    let h: LeaseHarness
    /** Whether the provider lists its device right now (it does not for a moment after a restart). */
    let listed = true

    before(async () => {
      h = await startLeaseHarness({
        name: 'late',
        secondsPerHour: HOUR,
        offerTtlMs: OFFER_TTL_MS,
        manager: { listingWaitMs: LISTING_WAIT_MS },
        isListed: () => listed,
      })
    })

    after(async () => {
      await h?.stop()
    })

    const rent = (hours: number) => h.rent({ hours })

    it('a payment that arrives after the offer expired buys nothing and goes back in full', async () => {
      const { made, refundAddress } = await rent(1)
      const lapsed = await h.until(
        made.offerId,
        'the offer to lapse',
        (r) => r.state.status === 'ended',
        15_000,
      )
      assert.equal(lapsed.state.endReason, 'offer-expired')
      const price = made.offer.body.priceSats
      await h.pay(made, price)
      const refunded = await h.until(made.offerId, 'the late payment refund', (r) => r.refunds.length > 0)
      assert.deepEqual(
        refunded.refunds.map((r) => [r.amountSats, r.reason]),
        [[price, 'paid-late']],
      )
      assert.equal(refunded.state.status, 'ended', 'no lease for a late payment')
      assert.equal(refunded.lease, undefined)
      assert.equal(await h.runtime.getLease(leaseUser(made.offerId)), undefined, 'no container')
      await h.env.devchain.mine(1)
      assert.equal(await h.received(refundAddress), price)
    })

    it('an overpaid lease runs normally and the excess is refunded at its end', async () => {
      const { made, refundAddress } = await rent(1)
      const price = made.offer.body.priceSats
      const excess = 2345
      await h.pay(made, price + excess)
      const active = await h.until(made.offerId, 'the lease', (r) => r.state.status === 'active')
      assert.equal(active.state.paidSats, price + excess)
      assert.deepEqual(active.refunds, [], 'nothing refunded while the lease runs')
      const ended = await h.until(made.offerId, 'the end and refund', (r) => r.refunds.length > 0)
      assert.equal(ended.state.endReason, 'expired')
      assert.equal(ended.state.earnedSats, price)
      assert.deepEqual(
        ended.refunds.map((r) => [r.amountSats, r.reason]),
        [[excess, 'lease-end']],
      )
      await h.env.devchain.mine(1)
      assert.equal(await h.received(refundAddress), excess)
    })

    it('a paid rental waits for its device listing: served once it is back, refunded in full if it stays gone', async () => {
      listed = false
      try {
        const back = await rent(1)
        await h.pay(back.made)
        const waiting = await h.until(back.made.offerId, 'the payment', (r) => r.state.paidSats > 0)
        assert.equal(waiting.state.status, 'paid', 'waits for the listing instead of failing')
        listed = true
        const active = await h.until(
          back.made.offerId,
          'the lease once listed',
          (r) => r.state.status === 'active',
        )
        assert.ok(active.lease)

        listed = false
        const gone = await rent(1)
        await h.pay(gone.made)
        const failed = await h.until(gone.made.offerId, 'the failure and refund', (r) => r.refunds.length > 0)
        assert.equal(failed.state.endReason, 'provision-failed')
        assert.deepEqual(
          failed.refunds.map((r) => [r.amountSats, r.reason]),
          [[gone.made.offer.body.priceSats, 'lease-end']],
        )
        await h.env.devchain.mine(1)
        assert.equal(await h.received(gone.refundAddress), gone.made.offer.body.priceSats)
      } finally {
        listed = true
      }
    })
  },
)
