/**
 * Lease operations through the product's own doors: two provider daemons and a renter daemon as separate
 * processes on a devchain, with a fast lease clock (an "hour" of HOUR seconds). The renter rents two
 * replicas from distinct owners, connects with `rpib ssh <prefix>`, extends one lease past its original
 * expiry, cancels the other (refund of the unserved time lands on the devchain), and lets a third renew
 * itself once within a spending cap.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { priceSats, refundSats } from '@rpib/protocol'
import type { Devchain } from '../../src/payments/devchain/server.js'
import type { DaemonState } from '../../src/daemon/state-file.js'
import { BUSYBOX_IMAGE, dockerSkipReason, makeRenterKey, type RenterKey } from '../containers/harness.js'
import { runCli } from '../helpers/cli.js'
import { waitFor } from '../api/http.js'
import { startRentalMarket, type RentalMarket } from './rental-market.js'

const skip = await dockerSkipReason([BUSYBOX_IMAGE])
const ENV = { RPIB_WALLET_PASSPHRASE: 'lease-cli-passphrase', RPIB_MDNS: 'false' }
/** Seconds in a lease "hour". */
const HOUR = 5
const RATES = { a: 1000, b: 2000 }
/** Long enough for the SSH and prefix checks under load before the cancel and the extension. */
const REPLICA_HOURS = 12

interface RentalView {
  offerId: string
  listingKey: string
  status: string
  priceSats: number
  expiresAt?: number
  endReason?: string
  extensions: { addSeconds: number; priceSats: number; status: string }[]
  autoExtend: { enabled: boolean; maxSats?: number; spentSats: number; lastError?: string }
  end?: { reason: string; endedAt: number; servedSeconds: number; refundDueSats: number }
}

describe(
  'rpib lease: replicas, ssh by prefix, extend, cancel with refund, auto-extend within a cap',
  { skip },
  () => {
    let market: RentalMarket
    let renter: string
    let devchain: Devchain
    let key: RenterKey
    let providers: { home: string; state: DaemonState }[] = []
    let replicas: { listingKey: string; offerId: string }[] = []

    const cli = (...args: string[]) => runCli(['--home', renter, ...args], ENV)
    async function lease(prefix: string): Promise<RentalView> {
      const shown = await cli('--json', 'lease', 'show', prefix)
      assert.equal(shown.code, 0, shown.stderr + shown.stdout)
      return JSON.parse(shown.stdout) as RentalView
    }
    const waitLease = (prefix: string, ok: (r: RentalView) => boolean, ms: number, what: string) =>
      waitFor(async () => ((r) => (ok(r) ? r : undefined))(await lease(prefix)), ms, what)

    before(async () => {
      market = await startRentalMarket({
        owners: (['a', 'b'] as const).map((name) => [
          {
            id: 'pi',
            name: `Pi ${name}`,
            satsPerHour: RATES[name],
            slots: 3,
            images: [BUSYBOX_IMAGE],
            limits: { memoryMb: 64, diskMb: 16 },
          },
        ]),
        secondsPerHour: HOUR,
        // several coins, so parallel payments never wait on change
        renterSats: 100_000,
        renterCoins: 6,
        env: ENV,
      })
      renter = market.renter.home
      devchain = market.devchain
      providers = market.owners
      key = await makeRenterKey(market.dir)
    })

    after(async () => {
      await market?.stop()
    })

    it('--replicas 2 --distinct-owners rents one device from each owner in parallel', async () => {
      const [a, b] = providers
      const rent = await cli(
        '--json',
        'rent',
        `${a!.state.peerId}/pi`,
        '--hours',
        String(REPLICA_HOURS),
        '--replicas',
        '2',
        '--distinct-owners',
        '--ssh-key',
        `${key.path}.pub`,
        '--wait',
        '60',
      )
      assert.equal(rent.code, 0, rent.stderr + rent.stdout)
      const out = JSON.parse(rent.stdout) as {
        replicas: { listingKey: string; offerId: string; sshCommand: string }[]
      }
      assert.deepEqual(
        out.replicas.map((x) => x.listingKey),
        [`${a!.state.peerId}/pi`, `${b!.state.peerId}/pi`],
      )
      for (const x of out.replicas) assert.match(x.sshCommand, /^rpib ssh [0-9a-f]{12} -i /)
      replicas = out.replicas
      // a third replica from a third owner does not exist: refused before anything is paid
      const tooMany = await cli(
        'rent',
        `${a!.state.peerId}/pi`,
        '--hours',
        '4',
        '--replicas',
        '3',
        '--distinct-owners',
        '--ssh-key',
        `${key.path}.pub`,
      )
      assert.equal(tooMany.code, 1)
      assert.match(tooMany.stderr, /only 2 listing\(s\) offer .* from distinct owners/)
      const { rentals } = JSON.parse((await cli('--json', 'leases')).stdout) as { rentals: unknown[] }
      assert.equal(rentals.length, 2)
    })

    it('rpib ssh <prefix> runs the command on the lease and passes its exit code through', async () => {
      const prefix = replicas[0]!.offerId.slice(0, 8)
      const ok = await cli('ssh', prefix, '-i', key.path, '--', 'true')
      assert.equal(ok.code, 0, ok.stderr)
      const seven = await cli('ssh', prefix, '-i', key.path, '--', 'echo on-lease; exit 7')
      assert.equal(seven.code, 7, seven.stderr)
      assert.match(seven.stdout, /on-lease/)
    })

    it('refuses short, malformed and unknown lease prefixes with a clear error', async () => {
      const short = await cli('lease', 'show', replicas[0]!.offerId.slice(0, 5))
      assert.equal(short.code, 1)
      assert.match(short.stderr, /prefix of at least 6 hex digits/)
      const unknown = await cli(
        '--json',
        'lease',
        'show',
        'ffffff' === replicas[0]!.offerId.slice(0, 6) ? 'eeeeee' : 'ffffff',
      )
      assert.equal(unknown.code, 1)
      assert.equal(
        (JSON.parse(unknown.stdout) as { error: { code: string } }).error.code,
        'ERR_UNKNOWN_LEASE',
      )
      const ssh = await cli('ssh', 'not-a-lease', '--', 'true')
      assert.equal(ssh.code, 1)
      assert.match(ssh.stderr, /at least 6 hex digits/)
    })

    it('cancel ends the lease and the unserved time is refunded to the renter on the devchain', async () => {
      const offerId = replicas[1]!.offerId
      const rentalsFile = JSON.parse(await readFile(join(renter, 'renter', 'rentals.json'), 'utf8')) as {
        rentals: { offerId: string; request: { body: { refundAddress: string } } }[]
      }
      const refundAddress = rentalsFile.rentals.find((r) => r.offerId === offerId)!.request.body.refundAddress
      await devchain.mine(1)
      const cancelled = await cli('--json', 'lease', 'cancel', offerId.slice(0, 7))
      assert.equal(cancelled.code, 0, cancelled.stderr + cancelled.stdout)
      const view = JSON.parse(cancelled.stdout) as RentalView
      assert.equal(view.endReason, 'cancelled')
      const price = priceSats(RATES.b, REPLICA_HOURS * HOUR, HOUR)
      assert.equal(view.priceSats, price)
      const end = view.end!
      assert.ok(end.servedSeconds < REPLICA_HOURS * HOUR, `served ${end.servedSeconds}`)
      assert.equal(end.refundDueSats, refundSats(price, REPLICA_HOURS * HOUR, end.servedSeconds))
      assert.ok(end.refundDueSats > 0)
      const received = await waitFor(
        async () => {
          const res = await fetch(`${devchain.url}/address/${refundAddress}/utxo`)
          const utxos = (await res.json()) as { value: number }[]
          const sum = utxos.reduce((s, u) => s + u.value, 0)
          return sum > 0 ? sum : undefined
        },
        15_000,
        'the refund on the devchain',
      )
      assert.equal(received, end.refundDueSats)
      const again = await cli('lease', 'cancel', offerId.slice(0, 7))
      assert.equal(again.code, 1)
      assert.match(again.stderr, /ended \(cancelled\)/)
    })

    it('extend pushes expiry; the container outlives the original expiry, then the lease ends', async () => {
      const prefix = replicas[0]!.offerId.slice(0, 10)
      const before = await lease(prefix)
      assert.ok(before.expiresAt !== undefined)
      const bad = await cli('lease', 'extend', prefix, '--hours', '0')
      assert.equal(bad.code, 1)
      const extended = await cli('--json', 'lease', 'extend', prefix, '--hours', '4')
      assert.equal(extended.code, 0, extended.stderr + extended.stdout)
      const after = JSON.parse(extended.stdout) as RentalView
      assert.equal(after.expiresAt, before.expiresAt + 4 * HOUR * 1000)
      assert.deepEqual(
        after.extensions.map((e) => [e.addSeconds, e.priceSats, e.status]),
        [[4 * HOUR, priceSats(RATES.a, 4 * HOUR, HOUR), 'applied']],
      )
      // past the original expiry the lease (and its container) is still there
      await waitFor(
        async () => (Date.now() > before.expiresAt! + 1500 ? true : undefined),
        REPLICA_HOURS * HOUR * 1000 + 5000,
        'the old expiry',
      )
      const still = await cli('ssh', prefix, '-i', key.path, '--', 'true')
      assert.equal(still.code, 0, still.stderr)
      const ended = await waitLease(
        prefix,
        (r) => r.endReason !== undefined,
        4 * HOUR * 1000 + 25_000,
        'the extended lease to end',
      )
      assert.equal(ended.endReason, 'expired')
      assert.equal(ended.end?.servedSeconds, (REPLICA_HOURS + 4) * HOUR)
      const late = await cli('lease', 'extend', prefix, '--hours', '1')
      assert.equal(late.code, 1)
      assert.match(late.stderr, /ended \(expired\)/)
    })

    it('auto-extend renews once within the cap, then says the cap is reached and the lease expires', async () => {
      const [a] = providers
      const rent = await cli(
        '--json',
        'rent',
        `${a!.state.peerId}/pi`,
        '--hours',
        '4',
        '--ssh-key',
        `${key.path}.pub`,
        '--wait',
        '60',
      )
      assert.equal(rent.code, 0, rent.stderr + rent.stdout)
      const made = JSON.parse(rent.stdout) as RentalView
      const prefix = made.offerId.slice(0, 12)
      const on = await cli(
        '--json',
        'lease',
        'auto-extend',
        prefix,
        'on',
        '--max-sats',
        String(made.priceSats),
      )
      assert.equal(on.code, 0, on.stderr)
      assert.deepEqual((JSON.parse(on.stdout) as RentalView).autoExtend, {
        enabled: true,
        maxSats: made.priceSats,
        spentSats: 0,
      })
      const capped = await waitLease(
        prefix,
        (r) => r.autoExtend.lastError !== undefined,
        60_000,
        'one renewal, then the cap',
      )
      assert.match(capped.autoExtend.lastError!, /cap reached/)
      assert.equal(capped.autoExtend.spentSats, made.priceSats)
      assert.deepEqual(
        capped.extensions.map((e) => [e.addSeconds, e.status]),
        [[4 * HOUR, 'applied']],
      )
      assert.equal(capped.expiresAt, made.expiresAt! + 4 * HOUR * 1000)
      const ended = await waitLease(prefix, (r) => r.endReason !== undefined, 30_000, 'the lease to expire')
      assert.equal(ended.endReason, 'expired')
      assert.equal(ended.end?.servedSeconds, 8 * HOUR)
    })
  },
)
