/**
 * Provider side of extend and cancel: the lease manager with real invoices on the devchain and real
 * containers. An extension is invoiced on its own, pushes the lease (record, SSH lookup, container) once
 * paid, lapses cleanly when not; a cancel removes the container and refunds the unserved time, taking the
 * money from the lease's and the extension's invoices.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { checkLeaseForOffer, refundSats, verifyRecord } from '@rpib/protocol'
import { RpibError } from '../../src/errors.js'
import { leaseUser } from '../../src/rentals/provider-leases.js'
import { BUSYBOX_IMAGE, dockerSkipReason } from '../containers/harness.js'
import { waitFor } from '../payments/helpers/env.js'
import { startLeaseHarness, type LeaseHarness } from './lease-harness.js'

const HOUR = 3 // fast test clock: an "hour" lasts 3 s
const skip = await dockerSkipReason([BUSYBOX_IMAGE])

const rejectsWith = async (work: Promise<unknown>, code: string) =>
  assert.rejects(work, (err: unknown) => err instanceof RpibError && err.code === code)

describe('provider leases: extend and cancel (devchain + Docker)', { skip }, () => {
  let h: LeaseHarness
  let refundAddress: string

  before(async () => {
    h = await startLeaseHarness({
      name: 'extend',
      secondsPerHour: HOUR,
      renterFundingSats: [500_000, 500_000, 500_000, 500_000],
    })
    refundAddress = (await h.renterWallet.nextReceiveAddress()).address
  })

  after(async () => {
    await h?.stop()
  })

  /** An active lease of `hours` test hours, paid from the renter's wallet. */
  const activeLease = async (hours: number) => (await h.activeLease({ hours, refundAddress })).made

  it('a paid extension moves the expiry of the state, the signed lease and the SSH lookup; the container stays', async () => {
    const made = await activeLease(4)
    const user = leaseUser(made.offerId)
    const firstExpiry = h.rental(made.offerId).state.expiresAt!
    const ext = await h.manager.extend(made.offerId, 2 * HOUR, 777)
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
      (await h.manager.extend(made.offerId, 2 * HOUR, 777)).body.invoice.address,
      ext.body.invoice.address,
    )
    await rejectsWith(h.manager.extend(made.offerId, HOUR, 400), 'ERR_EXTENSION_PENDING')

    await h.renterWallet.send({ to: ext.body.invoice.address, amountSats: 777 })
    await h.env.devchain.mine(1)
    await h.env.devchain.mine(1)
    const extended = await h.until(
      made.offerId,
      'extension applied',
      (r) => r.state.expiresAt !== firstExpiry,
    )
    assert.equal(extended.state.expiresAt, firstExpiry + 2 * HOUR * 1000)
    assert.equal(extended.state.priceSats, made.offer.body.priceSats + 777)
    const lease = await verifyRecord('lease', extended.lease, { ignoreExpiry: true })
    assert.ok(lease.ok)
    assert.equal(lease.record.body.expiresAt, firstExpiry + 2 * HOUR * 1000)
    assert.equal(checkLeaseForOffer(lease.record, made.offer), undefined)
    assert.equal(h.manager.lookup(user)?.expiresAt, firstExpiry + 2 * HOUR * 1000)

    await waitFor(() => (Date.now() > firstExpiry + 500 ? true : undefined), 'the first expiry', 20_000)
    assert.equal((await h.runtime.getLease(user))?.state, 'running', 'still running after the first expiry')
    assert.equal(h.rental(made.offerId).state.status, 'active')
    const ended = await h.until(made.offerId, 'lease expired', (r) => r.state.status === 'ended')
    assert.equal(ended.state.endReason, 'expired')
    assert.equal(ended.state.servedSeconds, 6 * HOUR)
    assert.equal(ended.state.refundDueSats, 0)
    assert.equal(await h.runtime.getLease(user), undefined)
    await rejectsWith(h.manager.extend(made.offerId, HOUR, 400), 'ERR_LEASE_NOT_ACTIVE')
    await rejectsWith(h.manager.cancel(made.offerId), 'ERR_LEASE_ENDED')
  })

  it('an underpaid extension lapses: the lease keeps its expiry and the partial payment goes back', async () => {
    const made = await activeLease(2)
    const firstExpiry = h.rental(made.offerId).state.expiresAt!
    const ext = await h.manager.extend(made.offerId, HOUR, 1000)
    const before = await h.received(refundAddress)
    await h.renterWallet.send({ to: ext.body.invoice.address, amountSats: 400 })
    await h.env.devchain.mine(1)
    const lapsed = await h.until(
      made.offerId,
      'extension lapsed',
      (r) => r.state.pendingExtension === undefined && r.refunds.some((x) => x.amountSats === 400),
    )
    assert.equal(lapsed.state.expiresAt, firstExpiry)
    assert.equal(
      await waitFor(
        async () => ((await h.received(refundAddress)) >= before + 400 ? true : undefined),
        'refund',
      ),
      true,
    )
    await h.until(made.offerId, 'lease expired', (r) => r.state.status === 'ended')
    assert.equal(h.rental(made.offerId).state.endReason, 'expired')
  })

  it('cancel removes the container, signs the end and refunds the unserved time from both invoices', async () => {
    const made = await activeLease(4)
    const price = made.offer.body.priceSats
    const ext = await h.manager.extend(made.offerId, 4 * HOUR, price)
    await h.renterWallet.send({ to: ext.body.invoice.address, amountSats: price })
    await h.env.devchain.mine(1)
    await h.until(made.offerId, 'extension applied', (r) => r.state.durationSeconds === 8 * HOUR)
    const before = await h.received(refundAddress)
    const end = await h.manager.cancel(made.offerId)
    const checked = await verifyRecord('lease-end', end)
    assert.ok(checked.ok)
    assert.equal(end.body.reason, 'cancelled')
    assert.ok(end.body.servedSeconds < 4 * HOUR)
    // the refund is more than the lease invoice alone received
    assert.equal(end.body.refundDueSats, refundSats(2 * price, 8 * HOUR, end.body.servedSeconds))
    assert.ok(end.body.refundDueSats > price)
    const r = h.rental(made.offerId)
    assert.equal(r.refundError, undefined)
    assert.equal(
      r.refunds.reduce((s, x) => s + x.amountSats, 0),
      end.body.refundDueSats,
    )
    assert.equal(await h.runtime.getLease(leaseUser(made.offerId)), undefined)
    assert.equal(h.manager.lookup(leaseUser(made.offerId)), undefined)
    await waitFor(
      async () => ((await h.received(refundAddress)) === before + end.body.refundDueSats ? true : undefined),
      'refunds on the chain',
    )
  })
})
