import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { verifyRecord } from '@rpib/protocol'
import { leaseUser } from '../../src/rentals/provider-leases.js'
import { BUSYBOX_IMAGE, dockerSkipReason } from '../containers/harness.js'
import { startLeaseHarness, type LeaseHarness } from './lease-harness.js'

const execFileAsync = promisify(execFile)
const HOUR = 3 // fast test clock: an "hour" lasts 3 s
const OUTAGE_THRESHOLD_MS = 1000
const skip = await dockerSkipReason([BUSYBOX_IMAGE])

describe(
  'provider outage: the lease and its files survive, the down time is refunded (devchain + Docker)',
  { skip },
  () => {
    let h: LeaseHarness

    before(async () => {
      h = await startLeaseHarness({
        name: 'outage',
        secondsPerHour: HOUR,
        offerTtlMs: 4000,
        manager: { aliveIntervalMs: 100, outageThresholdMs: OUTAGE_THRESHOLD_MS },
      })
    })

    after(async () => {
      await h?.stop()
    })

    /** The provider is down for `ms` (its manager stopped, the containers left running), then back. */
    const outage = (ms: number) => h.restartManager(ms)

    async function containerOf(offerId: string) {
      const lease = await h.runtime.getLease(leaseUser(offerId))
      assert.ok(lease, `lease container of ${offerId} exists`)
      return lease
    }

    it('a lease still running after the outage keeps its container and files; the down time is refunded pro-rata', async () => {
      const { made, refundAddress } = await h.activeLease({ hours: 4 }) // 12 s
      const price = made.offer.body.priceSats
      const before = await containerOf(made.offerId)
      await execFileAsync('docker', ['exec', before.containerName, 'sh', '-c', 'echo kept > /root/work.txt'])

      const { downFrom, backAt } = await outage(2500)
      const back = h.rental(made.offerId)
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
      await h.env.devchain.mine(1)
      assert.equal(await h.received(refundAddress), expected, 'the outage refund is on the chain')
      // SSH access stays, until the expiry the renter was given
      assert.equal(h.manager.lookup(leaseUser(made.offerId))?.expiresAt, back.lease?.body.expiresAt)

      // the lease runs to its original expiry; the end refunds nothing more
      const ended = await h.until(made.offerId, 'lease expired', (r) => r.state.status === 'ended', 30_000)
      assert.equal(ended.state.endReason, 'expired')
      assert.equal(ended.state.refundDueSats, expected)
      assert.equal(ended.state.earnedSats! + ended.state.refundDueSats!, ended.state.paidSats)
      assert.equal(ended.refunds.length, 1, 'no second refund')
      const end = await verifyRecord('lease-end', ended.end)
      assert.ok(end.ok)
      assert.equal(end.record.body.refundDueSats, expected)
      assert.equal(end.record.body.servedSeconds, 4 * HOUR - down)
      assert.equal(
        await h.runtime.getLease(leaseUser(made.offerId)),
        undefined,
        'container removed at expiry',
      )
    })

    it('a lease that ran out during the outage ends as provider-offline with the unserved part refunded', async () => {
      const { made, refundAddress } = await h.activeLease({ hours: 1 }) // 3 s
      const price = made.offer.body.priceSats
      await outage(4000)
      const ended = h.rental(made.offerId)
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
      assert.equal(await h.runtime.getLease(leaseUser(made.offerId)), undefined, 'no container left behind')
      await h.env.devchain.mine(1)
      assert.equal(await h.received(refundAddress), due)
    })

    it('a short restart (under the threshold) refunds nothing and keeps the lease', async () => {
      const { made } = await h.activeLease({ hours: 4 })
      await outage(0)
      const back = h.rental(made.offerId)
      assert.equal(back.state.status, 'active')
      assert.equal(back.state.downSeconds, undefined)
      assert.deepEqual(back.refunds, [])
      assert.equal((await containerOf(made.offerId)).state, 'running')
    })
  },
)
