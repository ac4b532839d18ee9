/**
 * The rental through the product's own doors: a provider daemon and a renter daemon as separate
 * processes; the renter runs `rpib rent` (the daemon negotiates, pays from its wallet on the devchain and
 * follows the lease), connects with the `rpib ssh` command it printed, and `rpib leases` shows the end.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { BUSYBOX_IMAGE, dockerSkipReason, makeRenterKey } from '../containers/harness.js'
import { waitFor } from '../api/http.js'
import { startRentalMarket } from './rental-market.js'

const skip = await dockerSkipReason([BUSYBOX_IMAGE])
const HOUR = 4

test(
  'rpib rent: offer, payment from the built-in wallet, lease, rpib ssh, expiry — across two daemons',
  { skip },
  async () => {
    const market = await startRentalMarket({
      owners: [
        [
          {
            id: 'pi',
            name: 'Kitchen Pi',
            satsPerHour: 3000,
            images: [BUSYBOX_IMAGE],
            limits: { memoryMb: 64, diskMb: 16 },
          },
        ],
      ],
      secondsPerHour: HOUR,
      renterSats: 200_000,
    })
    const { renter } = market
    let stopped = false
    try {
      const listingKey = `${market.owners[0]!.state.peerId}/pi`
      // with a daemon running, `rpib market list` asks its index (the replica is the daemon's)
      const list = await renter.cli(['--json', 'market', 'list'])
      assert.equal(list.code, 0, list.stderr)
      const listed = JSON.parse(list.stdout) as {
        entries: { key: string; listing: { body: { satsPerHour: number } } }[]
      }
      assert.deepEqual(
        listed.entries.map((e) => [e.key, e.listing.body.satsPerHour]),
        [[listingKey, 3000]],
      )
      const show = await renter.cli(['market', 'show', listingKey])
      assert.match(show.stdout, /^Kitchen Pi/)

      const key = await makeRenterKey(market.dir)
      const rent = await renter.cli([
        'rent',
        listingKey,
        '--hours',
        '2',
        '--ssh-key',
        `${key.path}.pub`,
        '--wait',
        '60',
      ])
      assert.equal(rent.code, 0, rent.stderr + rent.stdout)
      assert.match(rent.stdout, /offer [0-9a-f]{12}: 6000 sats for 2 h/)
      assert.match(rent.stdout, /paid from the built-in wallet/)
      const command = /connect: (rpib ssh .*)$/m.exec(rent.stdout)?.[1]
      assert.ok(command !== undefined, rent.stdout)
      const ssh = await renter.cli([...command.split(' ').slice(1), 'echo rented; exit 7'])
      assert.equal(ssh.code, 7, ssh.stderr)
      assert.match(ssh.stdout, /rented/)

      const ended = await waitFor(
        async () => {
          const list = await renter.cli(['--json', 'leases'])
          const { rentals } = JSON.parse(list.stdout) as { rentals: { status: string; endReason?: string }[] }
          return rentals[0]?.endReason !== undefined ? rentals[0] : undefined
        },
        30_000,
        'the lease to end',
      )
      assert.equal(ended.endReason, 'expired')
      stopped = true
      for (const exit of await market.stop()) assert.deepEqual(exit, { code: 0, signal: null })
    } finally {
      if (!stopped) await market.stop().catch(() => undefined)
    }
  },
)
