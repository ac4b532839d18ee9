/**
 * `rpib device …` through the product's own doors: an owner daemon (provider role, Docker) and a renter
 * daemon as separate processes on a devchain. The owner adds a device with the CLI, the renter's
 * `rpib market list` finds it, a rental runs on it; removal is refused while it runs; unpublishing takes
 * it off the market and the provider refuses a request made from the old listing; earnings match what
 * the devchain holds at the invoice; publishing again lists a new version; removal then succeeds.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createDevchain } from '../../src/payments/devchain/server.js'
import { DaemonStateSchema, type DaemonState } from '../../src/daemon/state-file.js'
import { createMarketNode, type MarketNode } from '../../src/market/market-node.js'
import { requestOffer } from '../../src/rentals/negotiation.js'
import { RpibError } from '../../src/errors.js'
import { createDockerRuntime } from '../../src/containers/index.js'
import { BUSYBOX_IMAGE, dockerSkipReason, makeRenterKey, uniqueName } from '../containers/harness.js'
import { loopbackP2p } from '../market/fixtures.js'
import { runCli } from '../helpers/cli.js'
import { waitFor } from '../api/http.js'
import { spawnRpib, within, type DaemonProcess } from './process.js'

const skip = await dockerSkipReason([BUSYBOX_IMAGE])
const ENV = { RPIB_WALLET_PASSPHRASE: 'devices-passphrase', RPIB_MDNS: 'false' }
// seconds in a lease "hour": long enough that the checks made while the lease runs finish first
const HOUR = 10

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

interface Api {
  get(path: string): Promise<{ status: number; body: Record<string, unknown> }>
  send(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; type: string; body: Record<string, unknown> }>
}

async function apiOf(home: string, state: DaemonState): Promise<Api> {
  const token = (await readFile(join(home, 'api-token'), 'utf8')).trim()
  const send: Api['send'] = async (method, path, body) => {
    const res = await fetch(`${state.apiUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    })
    return {
      status: res.status,
      type: res.headers.get('content-type') ?? '',
      body: (await res.json()) as Record<string, unknown>,
    }
  }
  return { send, get: (path) => send('GET', path) }
}

const daemonArgs = (network: string, devchainUrl: string): string[] => [
  'daemon',
  '--network',
  network,
  '--api-port',
  '0',
  '--listen',
  '/ip4/127.0.0.1/tcp/0',
  '--bitcoin-url',
  devchainUrl,
]

interface MarketAnswer {
  entries: { key: string; listing: { body: { version: number; satsPerHour: number } } }[]
}

test(
  'rpib device add/list/show/unpublish/publish/remove/earnings against a real provider and renter',
  { skip },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rpib-devices-'))
    const devchain = createDevchain({ port: 0 })
    await devchain.start()
    const network = `sandbox-${uniqueName('d').slice(-8)}`
    const owner = join(dir, 'owner')
    const renter = join(dir, 'renter')
    const daemons: DaemonProcess[] = []
    const dockerNetwork = uniqueName('rpib-dev')
    let probe: MarketNode | undefined
    const rpib = (home: string, ...args: string[]) => runCli(['--home', home, ...args], ENV)
    try {
      for (const home of [owner, renter]) {
        const created = await runCli(['--home', home, 'wallet', 'create', '--esplora-url', devchain.url], ENV)
        assert.equal(created.code, 0, created.stderr)
      }
      const addr = await rpib(renter, '--json', 'wallet', 'address', '--esplora-url', devchain.url)
      await devchain.faucet((JSON.parse(addr.stdout) as { address: string }).address, 200_000)
      await devchain.mine(1)
      const config = join(dir, 'owner.json')
      await writeFile(
        config,
        JSON.stringify({
          provider: {
            secondsPerHour: HOUR,
            zeroConfMaxSats: 1_000_000,
            dockerNetwork,
          },
        }),
      )
      const common = daemonArgs(network, devchain.url)
      const ownerDaemon = spawnRpib(['--home', owner, ...common, '--provider', '--config', config], ENV)
      daemons.push(ownerDaemon)
      const ownerState = await started(owner, ownerDaemon)
      const ownerApi = await apiOf(owner, ownerState)
      const none = await waitFor(
        async () => {
          const r = await ownerApi.get('/api/devices')
          return r.status === 200 && r.body.canHost === true ? r : undefined
        },
        60_000,
        'the provider role',
      )
      assert.deepEqual(none.body, { canHost: true, devices: [] })
      const ownerNet = (await ownerApi.get('/api/network')).body as { addresses: string[] }

      const renterConfig = join(dir, 'renter.json')
      await writeFile(renterConfig, JSON.stringify({ provider: { secondsPerHour: HOUR } }))
      const renterDaemon = spawnRpib(
        ['--home', renter, ...common, '--config', renterConfig, '--bootstrap', ownerNet.addresses[0]!],
        ENV,
      )
      daemons.push(renterDaemon)
      const renterApi = await apiOf(renter, await started(renter, renterDaemon))

      // add with the CLI: listed at once
      const add = await rpib(
        owner,
        'device',
        'add',
        '--name',
        'Kitchen Pi',
        '--price',
        '3000',
        '--max-hours',
        '4',
        '--image',
        BUSYBOX_IMAGE,
        '--memory',
        '64m',
        '--disk',
        '16m',
        '--description',
        'a Pi 4 on the shelf',
      )
      assert.equal(add.code, 0, add.stderr)
      const key = `${ownerState.peerId}/kitchen-pi`
      assert.match(add.stdout, new RegExp(`^added kitchen-pi: listed as ${key} \\(v\\d+\\)`))
      const registry = await stat(join(owner, 'provider', 'devices.json'))
      assert.equal(registry.mode & 0o777, 0o600)

      // bad requests: problem+json with a code and a message that says what to do
      const dup = await ownerApi.send('POST', '/api/devices', {
        id: 'kitchen-pi',
        name: 'again',
        satsPerHour: 1,
        images: [BUSYBOX_IMAGE],
      })
      assert.equal(dup.status, 409)
      assert.match(dup.type, /^application\/problem\+json/)
      assert.equal(dup.body.code, 'ERR_DEVICE_EXISTS')
      assert.match(String(dup.body.detail), /kitchen-pi exists already/)
      const badPrice = await ownerApi.send('POST', '/api/devices', { id: 'x', name: 'x', satsPerHour: 0 })
      assert.equal(badPrice.status, 400)
      assert.equal(badPrice.body.code, 'ERR_VALIDATION')
      assert.deepEqual(
        (badPrice.body.issues as { path: string }[]).map((i) => i.path),
        ['body.satsPerHour'],
      )
      const badHours = await ownerApi.send('POST', '/api/devices', {
        id: 'x',
        name: 'x',
        satsPerHour: 5,
        minHours: 9,
        maxHours: 2,
      })
      assert.equal(badHours.status, 400)
      assert.match(String(badHours.body.detail), /minHours must not exceed maxHours/)
      const noImage = await rpib(
        owner,
        'device',
        'add',
        '--name',
        'Other',
        '--price',
        '10',
        '--image',
        'rpib/nope:1',
      )
      assert.equal(noImage.code, 1)
      assert.match(noImage.stderr, /^rpib: image rpib\/nope:1 is not on this device; build it/)
      const cliPrice = await rpib(owner, 'device', 'add', '--name', 'Other', '--price', 'cheap')
      assert.equal(cliPrice.code, 1)
      assert.match(cliPrice.stderr, /--price must be a whole number ≥ 1, got "cheap"/)
      const unknown = await ownerApi.get('/api/devices/nope')
      assert.equal(unknown.status, 404)
      assert.equal(unknown.body.code, 'ERR_DEVICE_UNKNOWN')
      const unknownCli = await rpib(owner, '--json', 'device', 'show', 'nope')
      assert.equal(unknownCli.code, 1)
      assert.equal(
        (JSON.parse(unknownCli.stdout) as { error: { code: string } }).error.code,
        'ERR_DEVICE_UNKNOWN',
      )
      const list = await rpib(owner, '--json', 'device', 'list')
      assert.deepEqual(
        (JSON.parse(list.stdout) as { devices: { id: string }[] }).devices.map((d) => d.id),
        ['kitchen-pi'],
        'failed requests left nothing behind',
      )

      // the renter daemon's market has it
      const marketList = async (): Promise<MarketAnswer> => {
        const r = await rpib(renter, '--json', 'market', 'list')
        assert.equal(r.code, 0, r.stderr)
        return JSON.parse(r.stdout) as MarketAnswer
      }
      await waitFor(
        async () =>
          (await renterApi.get(`/api/market/listings?key=${encodeURIComponent(key)}`)).body.total === 1
            ? true
            : undefined,
        30_000,
        'the listing on the renter',
      )
      const listed = await marketList()
      assert.deepEqual(
        listed.entries.map((e) => [e.key, e.listing.body.satsPerHour]),
        [[key, 3000]],
      )
      const firstVersion = listed.entries[0]!.listing.body.version
      const notProvider = await rpib(renter, 'device', 'list')
      assert.equal(notProvider.code, 1)
      assert.match(
        notProvider.stderr,
        /^rpib: the daemon for .* does not run the provider role; restart it with/,
      )

      // a renter node of our own keeps the listing as it was (for the stale request below)
      const probeKey = await generateKeyPair('Ed25519')
      probe = await createMarketNode({
        dataDir: join(dir, 'probe'),
        networkId: network,
        privateKey: probeKey,
        p2p: loopbackP2p(ownerNet.addresses),
      })
      const probeNode = probe
      const stale = await waitFor(() => probeNode.show(key), 30_000, 'the listing on the probe node')

      // rent it; removal is refused while the lease runs
      const sshKey = await makeRenterKey(dir)
      const rent = await rpib(
        renter,
        'rent',
        key,
        '--hours',
        '2',
        '--ssh-key',
        `${sshKey.path}.pub`,
        '--wait',
        '60',
      )
      assert.equal(rent.code, 0, rent.stderr + rent.stdout)
      assert.match(rent.stdout, /offer [0-9a-f]{12}: 6000 sats for 2 h/)
      const offerId = /offer ([0-9a-f]{12})/.exec(rent.stdout)![1]!
      const busy = await rpib(owner, 'device', 'remove', 'kitchen-pi')
      assert.equal(busy.code, 1)
      assert.match(
        busy.stderr,
        new RegExp(`device kitchen-pi has rentals in progress: ${offerId} \\(active\\)`),
      )
      const shown = JSON.parse((await rpib(owner, '--json', 'device', 'show', 'kitchen-pi')).stdout) as {
        busySlots: number
        rentals: { status: string }[]
        signedListing: { body: { version: number } }
      }
      assert.equal(shown.busySlots, 1)
      assert.deepEqual(
        shown.rentals.map((r) => r.status),
        ['active'],
      )
      assert.equal(shown.signedListing.body.version, firstVersion)

      // unpublish: gone from the market, the old listing is refused, the running lease goes on
      const unpub = await rpib(owner, 'device', 'unpublish', 'kitchen-pi')
      assert.equal(unpub.code, 0, unpub.stderr)
      assert.match(unpub.stdout, /unpublished kitchen-pi \(v\d+ \(unlisted\)\); 1 lease\(s\) keep running/)
      const table = await rpib(owner, 'device', 'list')
      assert.match(table.stdout, /^ID\s+NAME\s+SATS\/H\s+SLOTS\s+PUBLISHED\s+LISTING$/m)
      assert.match(table.stdout, /^kitchen-pi\s+Kitchen Pi\s+3000\s+1\/1\s+no\s+v\d+ \(unlisted\)$/m)
      await waitFor(
        async () => ((await marketList()).entries.length === 0 ? true : undefined),
        30_000,
        'the listing to leave the renter’s market',
      )
      await assert.rejects(
        requestOffer({
          libp2p: probeNode.libp2p,
          privateKey: probeKey,
          listing: stale.listing,
          durationSeconds: 2 * HOUR,
          image: BUSYBOX_IMAGE,
          sshPublicKeys: [sshKey.publicKey],
          secondsPerHour: HOUR,
        }),
        (err: unknown) =>
          err instanceof RpibError &&
          err.code === 'ERR_RENT_MISMATCH' &&
          /listing is not available for rent/.test(err.message),
      )

      // the lease runs to its end; earnings match the devchain
      const rental = await waitFor(
        async () => {
          const r = (await renterApi.get('/api/rentals')).body as {
            rentals: { endReason?: string; invoice: { address: string } }[]
          }
          return r.rentals[0]?.endReason !== undefined ? r.rentals[0] : undefined
        },
        30_000,
        'the lease to end',
      )
      assert.equal(rental.endReason, 'expired')
      const utxos = (await (
        await fetch(`${devchain.url}/address/${rental.invoice.address}/utxo`)
      ).json()) as {
        value: number
      }[]
      const onChain = utxos.reduce((s, u) => s + u.value, 0)
      assert.equal(onChain, 6000)
      const earned = await rpib(owner, '--json', 'device', 'earnings', 'kitchen-pi')
      assert.deepEqual(JSON.parse(earned.stdout), {
        deviceId: 'kitchen-pi',
        leasesServed: 1,
        paidSats: onChain,
        refundedSats: 0,
        earnedSats: onChain,
        pendingRefundSats: 0,
      })
      const all = await rpib(owner, 'device', 'earnings')
      assert.match(all.stdout, /^kitchen-pi\s+1\s+6000\s+0\s+6000\s+0$/m)
      assert.match(all.stdout, /^TOTAL\s+1\s+6000\s+0\s+6000\s+0$/m)

      // publish again: a newer version is back on the market
      const pub = await rpib(owner, '--json', 'device', 'publish', 'kitchen-pi')
      assert.equal(pub.code, 0, pub.stderr)
      const again = await waitFor(
        async () => (await marketList()).entries.find((e) => e.key === key),
        30_000,
        'the listing to come back',
      )
      assert.ok(again.listing.body.version > firstVersion)

      // removal once nothing runs: gone from the registry and from the market; earnings are kept
      const removed = await rpib(owner, 'device', 'remove', 'kitchen-pi')
      assert.equal(removed.code, 0, removed.stderr)
      assert.equal(removed.stdout.trim(), 'removed kitchen-pi')
      assert.deepEqual((await ownerApi.get('/api/devices')).body.devices, [])

      // --no-publish registers without listing; two adds of one id at once: exactly one wins
      const twin = { id: 'spare', name: 'Spare', satsPerHour: 10, images: [BUSYBOX_IMAGE], publish: false }
      const answers = await Promise.all([
        ownerApi.send('POST', '/api/devices', twin),
        ownerApi.send('POST', '/api/devices', twin),
      ])
      assert.deepEqual(answers.map((a) => a.status).sort(), [201, 409])
      const spare = answers.find((a) => a.status === 201)!.body
      assert.deepEqual([spare.published, spare.listing], [false, null])
      const spareRemoved = await rpib(owner, '--json', 'device', 'remove', 'spare')
      assert.deepEqual(JSON.parse(spareRemoved.stdout), { removed: 'spare' })
      await waitFor(
        async () => ((await marketList()).entries.length === 0 ? true : undefined),
        30_000,
        'the removed device to leave the market',
      )
      const total = (await ownerApi.get('/api/earnings')).body as { total: { earnedSats: number } }
      assert.equal(total.total.earnedSats, 6000)

      // both daemons stop cleanly
      for (const d of daemons) d.child.kill('SIGTERM')
      for (const d of daemons)
        assert.deepEqual(await within(d.exited, 15_000, 'daemon exit'), { code: 0, signal: null })
    } finally {
      for (const d of daemons) d.kill()
      await Promise.all(daemons.map((d) => d.exited))
      try {
        // the provider keeps its lease network (and leases a failed run left) for its next start: not here
        const runtime = createDockerRuntime({
          networkName: dockerNetwork,
          stateDir: join(owner, 'provider', 'volumes'),
        })
        await runtime.reconcile(Date.now(), [])
        await runtime.removeNetwork()
      } finally {
        await probe?.stop()
        await devchain.stop()
        await rm(dir, { recursive: true, force: true })
      }
    }
  },
)

test('without a Docker engine the provider daemon starts, says why it cannot host and lists nothing', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rpib-nodocker-'))
  const devchain = createDevchain({ port: 0 })
  await devchain.start()
  const home = join(dir, 'owner')
  const env = { ...ENV, DOCKER_HOST: `unix://${join(dir, 'no-such-docker.sock')}` }
  let daemon: DaemonProcess | undefined
  try {
    const created = await runCli(['--home', home, 'wallet', 'create', '--esplora-url', devchain.url], env)
    assert.equal(created.code, 0, created.stderr)
    const config = join(dir, 'config.json')
    await writeFile(
      config,
      JSON.stringify({
        provider: { devices: [{ id: 'pi', name: 'Pi', satsPerHour: 100, images: [BUSYBOX_IMAGE] }] },
      }),
    )
    // the registry already holds `pi` (imported earlier, then re-priced by the owner): it wins over the config
    const registryFile = join(home, 'provider', 'devices.json')
    await mkdir(join(home, 'provider'), { recursive: true, mode: 0o700 })
    const kept = {
      id: 'pi',
      name: 'Pi',
      description: '',
      satsPerHour: 250,
      minHours: 1,
      maxHours: 720,
      slots: 1,
      images: [BUSYBOX_IMAGE],
      limits: { cpus: 1000, memoryMb: 512, diskMb: 2048, pidsLimit: 256 },
      published: true,
      createdAt: 1,
    }
    await writeFile(registryFile, JSON.stringify({ version: 1, devices: [kept], seeded: ['pi'] }))
    const network = `sandbox-${uniqueName('n').slice(-8)}`
    daemon = spawnRpib(
      ['--home', home, ...daemonArgs(network, devchain.url), '--provider', '--config', config],
      env,
    )
    const proc = daemon
    const state = await started(home, proc)
    const api = await apiOf(home, state)
    const node = await waitFor(
      async () => {
        const n = (await api.get('/api/node')).body as { services: { name: string; state: string }[] }
        return n.services.every((s) => s.state === 'running') ? n : undefined
      },
      60_000,
      'every service running',
    )
    assert.deepEqual(
      node.services.map((s) => s.name),
      ['market', 'payments', 'renter', 'provider'],
    )
    const provider = (node.services as { name: string; note?: string }[]).find((s) => s.name === 'provider')
    assert.match(provider?.note ?? '', /^cannot host leases: .*Docker engine is not reachable/)
    const status = await runCli(['--home', home, 'status'], env)
    assert.match(status.stdout, /provider running \(cannot host leases: /)
    const devices = (await api.get('/api/devices')).body as {
      canHost: boolean
      reason: string
      hint: string
      devices: { id: string; published: boolean; satsPerHour: number; listing: unknown }[]
    }
    assert.equal(devices.canHost, false)
    assert.match(devices.reason, /Docker engine is not reachable/)
    assert.match(devices.hint, /apt-get install docker\.io/)
    // the registry's device is kept (its price, not the config's), and nothing was published
    assert.deepEqual(
      devices.devices.map((d) => [d.id, d.published, d.satsPerHour, d.listing]),
      [['pi', true, 250, null]],
    )
    const net = (await api.get('/api/network')).body as { listings: { keys: number } }
    assert.equal(net.listings.keys, 0)
    const log = proc.stdout()
    const warning = log.split('\n').find((l) => l.includes('provider.cannot_host'))
    assert.ok(warning !== undefined, log)
    assert.match(warning, /apt-get install docker\.io/)
    const ignored = log.split('\n').find((l) => l.includes('provider.config_device_ignored'))
    assert.ok(ignored !== undefined, log)
    assert.match(ignored, /rpib device remove pi/)

    const list = await runCli(['--home', home, 'device', 'list'], env)
    assert.equal(list.code, 0, list.stderr)
    assert.match(
      list.stdout,
      /^this node cannot host leases: .*Docker engine is not reachable.* — install and start Docker/,
    )
    const add = await runCli(['--home', home, 'device', 'add', '--name', 'Second', '--price', '5'], env)
    assert.equal(add.code, 1)
    assert.match(add.stderr, /^rpib: this node cannot host leases: .*apt-get install docker\.io/)
    // the rest of the daemon works: its wallet answers through the API
    assert.equal((await api.get('/api/wallet')).status, 200)

    proc.child.kill('SIGTERM')
    assert.deepEqual(await within(proc.exited, 15_000, 'daemon exit'), { code: 0, signal: null })
  } finally {
    daemon?.kill()
    await devchain.stop()
    await rm(dir, { recursive: true, force: true })
  }
})
