/**
 * The market history through the product's own doors: a provider daemon and a renter daemon; the renter
 * rents with `rpib rent`, the lease runs to its end, the listing is available again and the renter's
 * `rpib market list|show` show the provider's reputation, computed from the provider's signed history that
 * reached the renter through the offers log.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { BUSYBOX_IMAGE, dockerSkipReason, makeRenterKey } from '../containers/harness.js'
import { waitFor } from '../api/http.js'
import { startRentalMarket } from '../daemon/rental-market.js'

const skip = await dockerSkipReason([BUSYBOX_IMAGE])

interface ListedEntry {
  key: string
  online: boolean
  reputation: number | null
  reputationDetail: { leases: number; completedLeases: number; failedRefunds: number } | null
}

test(
  'rent → lease → expiry → listing available again → reputation updated in the renter’s market list',
  { skip, timeout: 240_000 },
  async () => {
    const market = await startRentalMarket({
      owners: [
        [
          {
            id: 'pi',
            name: 'Kitchen Pi',
            satsPerHour: 1000,
            images: [BUSYBOX_IMAGE],
            limits: { memoryMb: 64, diskMb: 16 },
          },
        ],
      ],
      secondsPerHour: 3,
      renterSats: 100_000,
    })
    const { renter } = market
    const owner = market.owners[0]!
    let stopped = false
    try {
      const listingKey = `${owner.state.peerId}/pi`
      const list = async (...filters: string[]): Promise<ListedEntry[]> => {
        const res = await renter.cli(['--json', 'market', 'list', '--sort', 'reputation', ...filters])
        assert.equal(res.code, 0, res.stderr)
        return (JSON.parse(res.stdout) as { entries: ListedEntry[] }).entries
      }
      const before = await list()
      assert.deepEqual(
        before.map((e) => [e.key, e.reputation, e.reputationDetail?.completedLeases]),
        [[listingKey, 0, 0]],
      )

      const key = await makeRenterKey(market.dir)
      const rent = await renter.cli([
        'rent',
        listingKey,
        '--hours',
        '1',
        '--ssh-key',
        `${key.path}.pub`,
        '--wait',
        '60',
      ])
      assert.equal(rent.code, 0, rent.stderr + rent.stdout)

      const ended = await waitFor(
        async () => {
          const res = await renter.cli(['--json', 'leases'])
          const { rentals } = JSON.parse(res.stdout) as { rentals: { endReason?: string }[] }
          return rentals[0]?.endReason !== undefined ? rentals[0] : undefined
        },
        60_000,
        'the lease to end',
      )
      assert.equal(ended.endReason, 'expired')

      // the device is free again and still listed and online
      const devices = await owner.api<{ devices: { id: string; busySlots: number }[] }>('/api/devices')
      assert.deepEqual(
        devices.devices.map((d) => [d.id, d.busySlots]),
        [['pi', 0]],
      )
      const after = await waitFor(
        async () => {
          // --online: presence beats (every 30 s by default) show the device is up
          const entries = await list('--online', '--min-reputation', '1')
          return entries[0]?.reputationDetail?.completedLeases === 1 ? entries : undefined
        },
        60_000,
        'the provider’s history to reach the renter',
      )
      assert.deepEqual(
        after.map((e) => [
          e.key,
          e.online,
          e.reputation,
          e.reputationDetail?.leases,
          e.reputationDetail?.failedRefunds,
        ]),
        [[listingKey, true, 1, 1, 0]],
      )
      const show = await renter.cli(['market', 'show', listingKey])
      assert.equal(show.code, 0, show.stderr)
      assert.match(show.stdout, /reputation 1: 1 of 1 leases completed, 0 failed by the provider/)

      // the provider did not go silent during the lease: the renter recorded no outage
      const outages = await renter.api<{ outages: unknown[] }>('/api/market/outages')
      assert.deepEqual(outages.outages, [])

      stopped = true
      for (const exit of await market.stop()) assert.deepEqual(exit, { code: 0, signal: null })
    } finally {
      if (!stopped) await market.stop().catch(() => undefined)
    }
  },
)
