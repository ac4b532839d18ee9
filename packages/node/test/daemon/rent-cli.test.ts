/**
 * The rental through the product's own doors: a provider daemon and a renter daemon as separate
 * processes; the renter runs `rpib rent` (the daemon negotiates, pays from its wallet on the devchain and
 * follows the lease), connects with the `rpib ssh` command it printed, and `rpib leases` shows the end.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createDevchain } from '../../src/payments/devchain/server.js'
import { DaemonStateSchema, type DaemonState } from '../../src/daemon/state-file.js'
import { BUSYBOX_IMAGE, dockerSkipReason, makeRenterKey, uniqueName } from '../containers/harness.js'
import { runCli } from '../helpers/cli.js'
import { waitFor } from '../api/http.js'
import { spawnRpib, within, type DaemonProcess } from './process.js'

const skip = await dockerSkipReason([BUSYBOX_IMAGE])
const ENV = { RPIB_WALLET_PASSPHRASE: 'rent-cli-passphrase', RPIB_MDNS: 'false' }
const HOUR = 4

async function started(home: string, p: DaemonProcess): Promise<DaemonState> {
  return waitFor(
    async () => {
      if (p.child.exitCode != null) throw new Error(`daemon exited: ${p.stderr()}`)
      const text = await readFile(join(home, 'daemon.json'), 'utf8').catch(() => undefined)
      return text != null ? DaemonStateSchema.parse(JSON.parse(text)) : undefined
    },
    30_000,
    `the daemon in ${home}`,
  )
}

test(
  'rpib rent: offer, payment from the built-in wallet, lease, rpib ssh, expiry — across two daemons',
  { skip },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rpib-rent-cli-'))
    const devchain = createDevchain({ port: 0 })
    await devchain.start()
    const network = `sandbox-${uniqueName('r').slice(-8)}`
    const owner = join(dir, 'owner')
    const renter = join(dir, 'renter')
    const daemons: DaemonProcess[] = []
    try {
      for (const home of [owner, renter]) {
        const created = await runCli(['--home', home, 'wallet', 'create', '--esplora-url', devchain.url], ENV)
        assert.equal(created.code, 0, created.stderr)
      }
      const addr = await runCli(
        ['--home', renter, '--json', 'wallet', 'address', '--esplora-url', devchain.url],
        ENV,
      )
      await devchain.faucet((JSON.parse(addr.stdout) as { address: string }).address, 200_000)
      await devchain.mine(1)
      const config = join(dir, 'owner.json')
      await writeFile(
        config,
        JSON.stringify({
          provider: {
            devices: [
              {
                id: 'pi',
                name: 'Kitchen Pi',
                satsPerHour: 3000,
                images: [BUSYBOX_IMAGE],
                limits: { memoryMb: 64, diskMb: 16 },
              },
            ],
            secondsPerHour: HOUR,
            zeroConfMaxSats: 1_000_000,
            dockerNetwork: uniqueName('rpib-rentcli'),
          },
        }),
      )
      const common = [
        'daemon',
        '--network',
        network,
        '--api-port',
        '0',
        '--listen',
        '/ip4/127.0.0.1/tcp/0',
        '--bitcoin-url',
        devchain.url,
      ]
      const ownerDaemon = spawnRpib(['--home', owner, ...common, '--provider', '--config', config], ENV)
      daemons.push(ownerDaemon)
      const ownerState = await started(owner, ownerDaemon)
      const ownerToken = (await readFile(join(owner, 'api-token'), 'utf8')).trim()
      const ownerNet = await waitFor(
        async () => {
          const res = await fetch(`${ownerState.apiUrl}/api/provider/rentals`, {
            headers: { authorization: `Bearer ${ownerToken}` },
          })
          if (!res.ok) return undefined
          const net = await fetch(`${ownerState.apiUrl}/api/network`, {
            headers: { authorization: `Bearer ${ownerToken}` },
          })
          return (await net.json()) as { addresses: string[] }
        },
        60_000,
        'the provider role',
      )
      // the renter needs the market: a config file for its fast lease clock, bootstrapped to the owner
      const renterConfig = join(dir, 'renter.json')
      await writeFile(renterConfig, JSON.stringify({ provider: { secondsPerHour: HOUR } }))
      const renterDaemon = spawnRpib(
        ['--home', renter, ...common, '--config', renterConfig, '--bootstrap', ownerNet.addresses[0]!],
        ENV,
      )
      daemons.push(renterDaemon)
      await started(renter, renterDaemon)
      const listingKey = `${ownerState.peerId}/pi`
      const renterToken = (await readFile(join(renter, 'api-token'), 'utf8')).trim()
      const renterState = await started(renter, renterDaemon)
      await waitFor(
        async () => {
          const res = await fetch(`${renterState.apiUrl}/api/network`, {
            headers: { authorization: `Bearer ${renterToken}` },
          })
          const net = res.ok ? ((await res.json()) as { listings: { keys: number } }) : undefined
          return net != null && net.listings.keys > 0 ? true : undefined
        },
        30_000,
        'the listing to reach the renter',
      )

      // with a daemon running, `rpib market list` asks its index (the replica is the daemon's)
      const market = await runCli(['--home', renter, '--json', 'market', 'list'], ENV)
      assert.equal(market.code, 0, market.stderr)
      const listed = JSON.parse(market.stdout) as {
        entries: { key: string; listing: { body: { satsPerHour: number } } }[]
      }
      assert.deepEqual(
        listed.entries.map((e) => [e.key, e.listing.body.satsPerHour]),
        [[listingKey, 3000]],
      )
      const show = await runCli(['--home', renter, 'market', 'show', listingKey], ENV)
      assert.match(show.stdout, /^Kitchen Pi/)

      const key = await makeRenterKey(dir)
      const rent = await runCli(
        [
          '--home',
          renter,
          'rent',
          listingKey,
          '--hours',
          '2',
          '--ssh-key',
          `${key.path}.pub`,
          '--wait',
          '60',
        ],
        ENV,
      )
      assert.equal(rent.code, 0, rent.stderr + rent.stdout)
      assert.match(rent.stdout, /offer [0-9a-f]{12}: 6000 sats for 2 h/)
      assert.match(rent.stdout, /paid from the built-in wallet/)
      const command = /connect: (rpib ssh .*)$/m.exec(rent.stdout)?.[1]
      assert.ok(command !== undefined, rent.stdout)
      const ssh = await runCli(['--home', renter, ...command.split(' ').slice(1), 'echo rented; exit 7'], ENV)
      assert.equal(ssh.code, 7, ssh.stderr)
      assert.match(ssh.stdout, /rented/)

      const ended = await waitFor(
        async () => {
          const list = await runCli(['--home', renter, '--json', 'leases'], ENV)
          const { rentals } = JSON.parse(list.stdout) as { rentals: { status: string; endReason?: string }[] }
          return rentals[0]?.endReason !== undefined ? rentals[0] : undefined
        },
        30_000,
        'the lease to end',
      )
      assert.equal(ended.endReason, 'expired')
      for (const d of daemons) d.child.kill('SIGTERM')
      for (const d of daemons)
        assert.deepEqual(await within(d.exited, 15_000, 'daemon exit'), { code: 0, signal: null })
    } finally {
      for (const d of daemons) if (d.child.exitCode == null) d.child.kill('SIGKILL')
      await devchain.stop()
      await rm(dir, { recursive: true, force: true })
    }
  },
)
