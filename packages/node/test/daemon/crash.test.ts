/**
 * kill -9 matrix: the provider daemon (and the renter daemon) are SIGKILLed at each step of a rental and
 * restarted on the same data directory. Whatever the step: no payment is lost or made twice, no lease is
 * served twice, the flow completes (or refunds), and no lease container outlives its lease.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { processAlive } from '../../src/daemon/lock.js'
import { BUSYBOX_IMAGE, dockerSkipReason } from '../containers/harness.js'
import { waitFor } from '../api/http.js'
import {
  leaseContainerId,
  leaseContainers,
  paymentsTo,
  providerView,
  rent,
  renterView,
  sshInLease,
  startTwoDaemons,
  untilProvider,
  untilRenter,
  type RentalView,
  type TwoDaemons,
} from './crash-fixtures.js'

const skip = await dockerSkipReason([BUSYBOX_IMAGE])
const HOUR = 4 // fast lease clock: an "hour" lasts 4 s

describe('kill -9 at each step of a rental, then restart (two daemons, devchain, Docker)', { skip }, () => {
  let pair: TwoDaemons
  const offers: string[] = []

  before(async () => {
    pair = await startTwoDaemons('crash', {
      images: [BUSYBOX_IMAGE],
      satsPerHour: 3000,
      secondsPerHour: HOUR,
    })
  })

  after(async () => {
    await pair?.close()
  })

  /** Pays an invoice from outside the renter's wallet (the devchain faucet), as an external wallet would. */
  async function payExternally(view: RentalView): Promise<void> {
    await pair.devchain.faucet(view.invoice.address, view.invoice.amountSats)
  }

  async function assertOnePayment(view: RentalView): Promise<void> {
    const payments = await paymentsTo(pair.devchain, view.invoice.address)
    assert.deepEqual(
      payments.map((p) => p.sats),
      [view.invoice.amountSats],
      'exactly one payment of the price',
    )
  }

  async function assertUsable(offerId: string): Promise<void> {
    const ssh = await sshInLease(pair, offerId, 'true')
    assert.equal(ssh.code, 0, ssh.stderr)
  }

  it('provider killed after the offer, paid while it is down: the restart serves the lease', async () => {
    const view = await rent(pair, 4, 'external')
    offers.push(view.offerId)
    const killedPid = pair.owner.process.child.pid
    await pair.owner.kill9()
    // the lock a SIGKILL leaves behind names a dead process; the restart takes it over
    const lock = Number.parseInt(await readFile(join(pair.owner.home, 'daemon.lock'), 'utf8'), 10)
    assert.equal(lock, killedPid)
    assert.equal(processAlive(lock), false)

    await payExternally(view)
    await pair.devchain.mine(1)
    await pair.owner.start()
    const active = await untilRenter(
      pair,
      view.offerId,
      'the lease at the renter',
      (r) => r.ssh !== undefined,
    )
    assert.equal(active.status, 'active')
    await assertUsable(view.offerId)
    await assertOnePayment(view)
    const p = await providerView(pair, view.offerId)
    assert.equal(p.status, 'active')
    assert.equal(p.paidSats, view.priceSats)
  })

  it('provider frozen, paid, then killed before it provisioned: the restart provisions once', async () => {
    const view = await rent(pair, 4, 'external')
    offers.push(view.offerId)
    pair.owner.process.child.kill('SIGSTOP')
    await payExternally(view) // stays in the mempool: zero-conf is enough for this amount
    await waitFor(
      async () => ((await paymentsTo(pair.devchain, view.invoice.address)).length > 0 ? true : undefined),
      10_000,
      'the payment in the mempool',
    )
    await pair.owner.kill9()
    await pair.owner.start()
    await untilRenter(pair, view.offerId, 'the lease at the renter', (r) => r.ssh !== undefined)
    await assertUsable(view.offerId)
    await assertOnePayment(view)
    assert.equal((await leaseContainers(view.offerId)).length, 1, 'one container')
  })

  it('provider killed while a lease is active: same container, the renter’s files, same expiry', async () => {
    const view = await rent(pair, 8, 'wallet')
    offers.push(view.offerId)
    const before = await untilRenter(pair, view.offerId, 'the lease', (r) => r.ssh !== undefined)
    const wrote = await sshInLease(pair, view.offerId, 'echo survived > /root/note')
    assert.equal(wrote.code, 0, wrote.stderr)
    const container = await leaseContainerId(view.offerId)

    await pair.owner.kill9()
    await pair.owner.start()
    const read = await sshInLease(pair, view.offerId, 'cat /root/note')
    assert.equal(read.code, 0, read.stderr)
    assert.equal(read.stdout.trim(), 'survived')
    assert.equal(await leaseContainerId(view.offerId), container, 'the same container')
    const p = await providerView(pair, view.offerId)
    assert.equal(p.status, 'active')
    assert.equal(p.refundedSats, 0, 'a restart shorter than the outage threshold refunds nothing')
    const after = await renterView(pair, view.offerId)
    assert.equal(after.ssh?.expiresAt, before.ssh?.expiresAt, 'the lease was not issued again')
    await assertOnePayment(view)
  })

  it('renter killed right after it paid, and again while active: one payment, the lease follows', async () => {
    const view = await rent(pair, 8, 'wallet')
    offers.push(view.offerId)
    assert.ok(view.paymentTxid, 'paid from the built-in wallet')
    await pair.renter.kill9()
    await pair.renter.start()
    const active = await untilRenter(
      pair,
      view.offerId,
      'the lease after the restart',
      (r) => r.ssh !== undefined,
    )
    assert.equal(active.paymentTxid, view.paymentTxid, 'not paid again')
    await assertUsable(view.offerId)
    await pair.renter.kill9()
    await pair.renter.start()
    await assertUsable(view.offerId)
    await assertOnePayment(view)
    const { rentals } = await pair.renter.api<{ rentals: RentalView[] }>('GET', '/api/rentals')
    assert.equal(rentals.filter((r) => r.offerId === view.offerId).length, 1)
  })

  it('provider killed at the expiry: the restart ends the lease once and removes its container', async () => {
    const view = await rent(pair, 1, 'wallet')
    offers.push(view.offerId)
    const active = await untilRenter(pair, view.offerId, 'the lease', (r) => r.ssh !== undefined)
    const expiresAt = active.ssh?.expiresAt ?? 0
    pair.owner.process.child.kill('SIGSTOP')
    await waitFor(() => (Date.now() > expiresAt + 500 ? true : undefined), 20_000, 'the expiry to pass')
    await pair.owner.kill9()
    await pair.owner.start()
    const ended = await untilProvider(pair, view.offerId, 'the lease end', (r) => r.status === 'ended')
    assert.equal(ended.endReason, 'expired')
    assert.equal(ended.refundedSats, 0)
    assert.deepEqual(await leaseContainers(view.offerId), [])
    const seen = await untilRenter(
      pair,
      view.offerId,
      'the end at the renter',
      (r) => r.endReason !== undefined,
    )
    assert.equal(seen.endReason, 'expired')
    await assertOnePayment(view)
  })

  it('in the end every lease ended once, was paid once, and left no container behind', async () => {
    for (const offerId of offers) {
      const ended = await untilProvider(
        pair,
        offerId,
        `the end of ${offerId}`,
        (r) => r.status === 'ended',
        90_000,
      )
      assert.equal(ended.endReason, 'expired')
      assert.equal(ended.refundedSats, 0)
      assert.deepEqual(await leaseContainers(offerId), [], `no container of ${offerId}`)
    }
    const rentals = await pair.providerRentals()
    assert.equal(rentals.length, offers.length, 'one provider rental per offer')
    for (const r of rentals) {
      assert.equal(r.state.earnedSats, r.state.paidSats, 'served in full, earned in full')
      assert.deepEqual(r.refunds, [])
    }
    await pair.owner.stop()
    await pair.renter.stop()
  })
})
