/**
 * Failure paths through two real daemons on a devchain, each handled without anyone stepping in:
 * provisioning fails → full refund; overpayment → the lease works and the excess goes back at the end; a
 * refund the provider's wallet cannot pay → `refundError` in GET /api/provider/rentals, paid after a restart.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promisify } from 'node:util'
import { networks, payments } from 'bitcoinjs-lib'
import { BUSYBOX_IMAGE, dockerSkipReason, uniqueName } from '../containers/harness.js'
import { runCli } from '../helpers/cli.js'
import {
  ENV,
  assertRefundedOnChain,
  leaseContainers,
  paymentsTo,
  rent,
  sshInLease,
  startTwoDaemons,
  untilProvider,
  untilRenter,
  type TwoDaemons,
} from './crash-fixtures.js'

const execFileAsync = promisify(execFile)
const skip = await dockerSkipReason([BUSYBOX_IMAGE])
const HOUR = 4 // fast lease clock: an "hour" lasts 4 s
/** An image that exists when the device is listed and is removed before the rental is paid. */
const DOOMED_IMAGE = `rpib/doomed-${uniqueName('i').slice(-8)}:latest`

describe('failure paths end to end (two daemons, devchain, Docker)', { skip }, () => {
  let pair: TwoDaemons

  before(async () => {
    await execFileAsync('docker', ['tag', BUSYBOX_IMAGE, DOOMED_IMAGE])
    pair = await startTwoDaemons('fail', {
      images: [BUSYBOX_IMAGE, DOOMED_IMAGE],
      satsPerHour: 3000,
      secondsPerHour: HOUR,
    })
  })

  after(async () => {
    await pair?.close()
    await execFileAsync('docker', ['rmi', DOOMED_IMAGE]).catch(() => undefined)
  })

  async function wallet(home: string, args: string[]): Promise<string> {
    const r = await runCli(
      ['--home', home, '--json', 'wallet', ...args, '--esplora-url', pair.devchain.url],
      ENV,
    )
    assert.equal(r.code, 0, r.stderr)
    return r.stdout
  }

  it('provisioning fails (the image was removed after listing): the renter gets everything back', async () => {
    const view = await rent(pair, 1, 'external', DOOMED_IMAGE)
    await execFileAsync('docker', ['rmi', DOOMED_IMAGE])
    await pair.devchain.faucet(view.invoice.address, view.invoice.amountSats)
    await pair.devchain.mine(1)
    const ended = await untilProvider(
      pair,
      view.offerId,
      'the provisioning failure and its refund',
      (r) => r.refundedSats > 0 || r.refundError !== undefined,
    )
    assert.equal(ended.status, 'ended')
    assert.equal(ended.endReason, 'provision-failed')
    assert.equal(ended.refundedSats, view.priceSats)
    assert.equal(ended.refundError, undefined)
    const seen = await untilRenter(
      pair,
      view.offerId,
      'the failure at the renter',
      (r) => r.status === 'ended',
    )
    assert.equal(seen.ssh, undefined, 'no SSH access to a lease that never started')
    await pair.devchain.mine(1)
    await assertRefundedOnChain(pair, view.offerId, view.priceSats)
    assert.deepEqual(await leaseContainers(view.offerId), [], 'no container left behind')
  })

  it('overpaid, and the provider wallet emptied before the end: refundError, then paid after a restart', async () => {
    const excess = 5000
    const view = await rent(pair, 4, 'external')
    await pair.devchain.faucet(view.invoice.address, view.invoice.amountSats + excess)
    await pair.devchain.mine(1)
    const active = await untilRenter(pair, view.offerId, 'the lease', (r) => r.ssh !== undefined)
    const ssh = await sshInLease(pair, view.offerId, 'echo overpaid-but-served')
    assert.equal(ssh.code, 0, ssh.stderr)
    assert.match(ssh.stdout, /overpaid-but-served/)
    assert.equal(
      (await untilProvider(pair, view.offerId, 'paid', () => true)).paidSats,
      view.priceSats + excess,
    )

    // the owner moves (nearly) everything away: what is left cannot pay the refund of the excess
    const { totalSats } = JSON.parse(await wallet(pair.owner.home, ['balance'])) as { totalSats: number }
    const away = payments.p2wpkh({ hash: randomBytes(20), network: networks.regtest }).address ?? ''
    await wallet(pair.owner.home, ['send', away, String(totalSats - 1000), '--fee-rate', '1'])
    await pair.devchain.mine(1)

    const stuck = await untilProvider(
      pair,
      view.offerId,
      'the failed refund to show',
      (r) => r.refundError !== undefined,
      (active.ssh?.expiresAt ?? 0) - Date.now() + 30_000,
    )
    assert.equal(stuck.status, 'ended')
    assert.equal(stuck.endReason, 'expired')
    assert.equal(stuck.refundedSats, 0)
    assert.match(stuck.refundError ?? '', new RegExp(`refund of ${excess} sats failed`))
    assert.deepEqual(await leaseContainers(view.offerId), [], 'the lease container is gone at the end')

    // funds come back; the restart retries the refund it owes
    const { address } = JSON.parse(await wallet(pair.owner.home, ['address'])) as { address: string }
    await pair.devchain.faucet(address, 50_000)
    await pair.devchain.mine(1)
    await pair.owner.kill9()
    await pair.owner.start()
    const paid = await untilProvider(pair, view.offerId, 'the retried refund', (r) => r.refundedSats > 0)
    assert.equal(paid.refundedSats, excess)
    assert.equal(paid.refundError, undefined)
    await pair.devchain.mine(1)
    await assertRefundedOnChain(pair, view.offerId, excess)
    assert.equal((await paymentsTo(pair.devchain, view.invoice.address)).length, 1, 'one payment')
  })
})
