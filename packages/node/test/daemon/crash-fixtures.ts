/**
 * Two real daemons (a provider and a renter, separate OS processes) on one devchain, for the crash and
 * failure-path tests: each daemon can be SIGKILLed, SIGSTOPped and restarted on the same data directory
 * and the same libp2p port, so the other side finds it again.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { createDevchain, type Devchain } from '../../src/payments/devchain/server.js'
import { DaemonStateSchema, type DaemonState } from '../../src/daemon/state-file.js'
import { LABEL_NAMESPACE } from '../../src/containers/labels.js'
import { leaseUser } from '../../src/rentals/provider-leases.js'
import type { ProviderRental } from '../../src/rentals/rental-store.js'
import { makeRenterKey, uniqueName, type RenterKey } from '../containers/harness.js'
import { runCli, type CliResult } from '../helpers/cli.js'
import { waitFor } from '../api/http.js'
import { spawnRpib, within, type DaemonProcess } from './process.js'

const execFileAsync = promisify(execFile)
export const ENV = { RPIB_WALLET_PASSPHRASE: 'crash-test-passphrase', RPIB_MDNS: 'false' }

export interface DaemonNode {
  home: string
  process: DaemonProcess
  state: DaemonState
  /** Calls the daemon's REST API; throws with the problem text on a non-2xx answer. */
  api<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T>
  /** Starts the daemon (again) on the same home and port; resolves once its API answers. */
  start(): Promise<void>
  /** SIGKILL, and waits until the process is gone. */
  kill9(): Promise<void>
  /** SIGTERM and a clean exit. */
  stop(): Promise<void>
}

export interface RentalView {
  offerId: string
  status: string
  priceSats: number
  invoice: { address: string; amountSats: number; expiresAt: number }
  paymentTxid?: string
  ssh?: { user: string; expiresAt: number }
  endReason?: string
  error?: string
}

export interface ProviderRentalSummary {
  offerId: string
  status: string
  paidSats: number
  endReason?: string
  refundedSats: number
  refundError?: string
}

export interface TwoDaemons {
  dir: string
  devchain: Devchain
  owner: DaemonNode
  renter: DaemonNode
  listingKey: string
  key: RenterKey
  /** The provider's own record of its rentals (its data directory), with refund txids. */
  providerRentals(): Promise<ProviderRental[]>
  close(): Promise<void>
}

export interface DeviceOptions {
  images: string[]
  satsPerHour: number
  secondsPerHour: number
}

/**
 * Removes what a test's provider left in Docker: lease containers and volumes of its namespace (after a
 * failure), then its network (daemons keep their network across restarts; Docker has only ~30 to give).
 */
async function removeDockerNamespace(network: string): Promise<void> {
  const label = `${LABEL_NAMESPACE}=${network}`
  const docker = (args: string[]) =>
    execFileAsync('docker', args).then((r) => r.stdout.split('\n').filter(Boolean))
  const containers = await docker(['ps', '-aq', '--filter', `label=${label}`])
  if (containers.length > 0) await docker(['rm', '-f', '-v', ...containers])
  const volumes = await docker(['volume', 'ls', '-q', '--filter', `label=${label}`])
  if (volumes.length > 0) await docker(['volume', 'rm', '-f', ...volumes])
  await docker(['network', 'rm', network]).catch(() => undefined)
}

/** Unmounts what is still mounted under `dir` (loop-mounted lease volumes of a killed provider). */
async function unmountUnder(dir: string): Promise<void> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '')
  const points = mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((point) => point.startsWith(`${dir}/`))
  for (const point of points.reverse()) await execFileAsync('umount', [point]).catch(() => undefined)
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  assert.ok(address !== null && typeof address === 'object')
  return address.port
}

function daemonNode(
  home: string,
  args: () => string[],
  check: (node: DaemonNode) => Promise<boolean>,
): DaemonNode {
  let token = ''
  const node: DaemonNode = {
    home,
    process: undefined as unknown as DaemonProcess,
    state: undefined as unknown as DaemonState,
    async api<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
      const res = await fetch(`${node.state.apiUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      })
      const text = await res.text()
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`)
      return JSON.parse(text) as T
    },
    async start() {
      const p = spawnRpib(['--home', home, ...args()], ENV)
      node.process = p
      node.state = await waitFor(
        async () => {
          if (p.child.exitCode != null) throw new Error(`daemon exited: ${p.stderr()}`)
          const text = await readFile(join(home, 'daemon.json'), 'utf8').catch(() => undefined)
          if (text === undefined) return undefined
          const state = DaemonStateSchema.safeParse(JSON.parse(text))
          // after a SIGKILL the old daemon.json stays behind: wait for this process's own
          return state.success && state.data.pid === p.child.pid ? state.data : undefined
        },
        60_000,
        `the daemon in ${home}`,
      )
      token = (await readFile(join(home, 'api-token'), 'utf8')).trim()
      let last = ''
      await waitFor(
        async () => {
          if (p.child.exitCode != null) throw new Error(`daemon exited: ${p.stderr()}`)
          const ok = await check(node).catch((err: unknown) => {
            last = (err as Error).message
            return false
          })
          return ok ? true : undefined
        },
        60_000,
        `${home} ready (last: ${last})`,
      ).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}; last answer: ${last}; stderr: ${p.stderr().slice(-2000)}`)
      })
    },
    async kill9() {
      node.process.child.kill('SIGKILL')
      await within(node.process.exited, 10_000, 'SIGKILL')
    },
    async stop() {
      node.process.child.kill('SIGTERM')
      assert.deepEqual(await within(node.process.exited, 20_000, 'daemon exit'), { code: 0, signal: null })
    },
  }
  return node
}

/** Wallets for both, the renter funded, a provider listing one device, a renter that sees the listing. */
export async function startTwoDaemons(prefix: string, device: DeviceOptions): Promise<TwoDaemons> {
  const dir = await mkdtemp(join(tmpdir(), `rpib-${prefix}-`))
  const devchain = createDevchain({ port: 0 })
  await devchain.start()
  const nodes: DaemonNode[] = []
  const dockerNetwork = uniqueName(`rpib-${prefix}`)
  try {
    const ownerHome = join(dir, 'owner')
    const renterHome = join(dir, 'renter')
    for (const home of [ownerHome, renterHome]) {
      const created = await runCli(['--home', home, 'wallet', 'create', '--esplora-url', devchain.url], ENV)
      assert.equal(created.code, 0, created.stderr)
    }
    const addr = await runCli(
      ['--home', renterHome, '--json', 'wallet', 'address', '--esplora-url', devchain.url],
      ENV,
    )
    await devchain.faucet((JSON.parse(addr.stdout) as { address: string }).address, 2_000_000)
    // the provider pays refund fees from its own funds (a full refund cannot come out of the payment alone)
    const ownerAddr = await runCli(
      ['--home', ownerHome, '--json', 'wallet', 'address', '--esplora-url', devchain.url],
      ENV,
    )
    await devchain.faucet((JSON.parse(ownerAddr.stdout) as { address: string }).address, 20_000)
    await devchain.mine(1)
    const ownerConfig = join(dir, 'owner.json')
    await writeFile(
      ownerConfig,
      JSON.stringify({
        provider: {
          devices: [
            {
              id: 'pi',
              name: 'Crash Pi',
              satsPerHour: device.satsPerHour,
              maxHours: 10,
              slots: 8,
              images: device.images,
              limits: { memoryMb: 64, diskMb: 16 },
            },
          ],
          secondsPerHour: device.secondsPerHour,
          zeroConfMaxSats: 10_000_000,
          dockerNetwork,
        },
      }),
    )
    const renterConfig = join(dir, 'renter.json')
    await writeFile(renterConfig, JSON.stringify({ provider: { secondsPerHour: device.secondsPerHour } }))
    const network = `sandbox-${prefix}${uniqueName('n').slice(-8)}`
    const ownerPort = await freePort()
    const renterPort = await freePort()
    const common = (port: number) => [
      'daemon',
      '--network',
      network,
      '--api-port',
      '0',
      '--listen',
      `/ip4/127.0.0.1/tcp/${port}`,
      '--bitcoin-url',
      devchain.url,
    ]
    const owner = daemonNode(
      ownerHome,
      () => [...common(ownerPort), '--provider', '--config', ownerConfig],
      async (n) => {
        await n.api('GET', '/api/provider/rentals')
        return true
      },
    )
    nodes.push(owner)
    await owner.start()
    const ownerPeer = owner.state.peerId
    const renter = daemonNode(
      renterHome,
      () => [
        ...common(renterPort),
        '--config',
        renterConfig,
        '--bootstrap',
        `/ip4/127.0.0.1/tcp/${ownerPort}/p2p/${ownerPeer}`,
      ],
      // the wallet opens after the API is up: until then rentals get no refund address
      async (n) =>
        (await n.api<{ unlocked: boolean }>('GET', '/api/wallet')).unlocked &&
        (await n.api<{ listings: { keys: number } }>('GET', '/api/network')).listings.keys > 0,
    )
    nodes.push(renter)
    await renter.start()
    const key = await makeRenterKey(dir)
    return {
      dir,
      devchain,
      owner,
      renter,
      listingKey: `${ownerPeer}/pi`,
      key,
      async providerRentals() {
        const text = await readFile(join(ownerHome, 'provider', 'rentals.json'), 'utf8')
        return (JSON.parse(text) as { rentals: ProviderRental[] }).rentals
      },
      async close() {
        for (const n of nodes) if (n.process.child.exitCode == null) n.process.kill()
        await Promise.all(
          nodes.map((n) => within(n.process.exited, 10_000, 'daemon exit').catch(() => undefined)),
        )
        await removeDockerNamespace(dockerNetwork)
        await unmountUnder(dir)
        await devchain.stop()
        await rm(dir, { recursive: true, force: true })
      },
    }
  } catch (err) {
    for (const n of nodes) n.process?.kill()
    await Promise.all(
      nodes.map((n) => within(n.process.exited, 10_000, 'daemon exit').catch(() => undefined)),
    )
    await removeDockerNamespace(dockerNetwork).catch(() => undefined)
    await unmountUnder(dir)
    await devchain.stop()
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}

/**
 * Asks the renter daemon to rent; `external` returns the invoice unpaid. A restarted provider signs a new
 * listing version, so until it reaches the renter's market the provider answers ERR_RENT_MISMATCH: retried.
 */
export async function rent(
  pair: TwoDaemons,
  hours: number,
  pay: 'wallet' | 'external',
  image?: string,
): Promise<RentalView> {
  const publicKey = (await readFile(`${pair.key.path}.pub`, 'utf8')).trim()
  const body = {
    listingKey: pair.listingKey,
    hours,
    sshPublicKeys: [publicKey],
    pay,
    ...(image !== undefined ? { image } : {}),
  }
  return waitFor(
    async () => {
      try {
        return await pair.renter.api<RentalView>('POST', '/api/rentals', body)
      } catch (err) {
        if ((err as Error).message.includes('ERR_RENT_MISMATCH')) return undefined
        throw err
      }
    },
    30_000,
    'an offer for the current listing',
  )
}

export async function renterView(pair: TwoDaemons, offerId: string): Promise<RentalView> {
  return pair.renter.api<RentalView>('GET', `/api/rentals/${offerId}`)
}

export async function providerView(pair: TwoDaemons, offerId: string): Promise<ProviderRentalSummary> {
  const { rentals } = await pair.owner.api<{ rentals: ProviderRentalSummary[] }>(
    'GET',
    '/api/provider/rentals',
  )
  const found = rentals.filter((r) => r.offerId === offerId)
  assert.equal(found.length, 1, `the provider has exactly one rental ${offerId}`)
  return found[0]!
}

/** Polls the provider's view of a rental until `ok`. */
export function untilProvider(
  pair: TwoDaemons,
  offerId: string,
  what: string,
  ok: (r: ProviderRentalSummary) => boolean,
  ms = 60_000,
): Promise<ProviderRentalSummary> {
  return waitFor(
    async () => {
      const r = await providerView(pair, offerId).catch(() => undefined)
      return r !== undefined && ok(r) ? r : undefined
    },
    ms,
    what,
  )
}

/** Polls the renter's view of a rental until `ok`. */
export function untilRenter(
  pair: TwoDaemons,
  offerId: string,
  what: string,
  ok: (r: RentalView) => boolean,
  ms = 60_000,
): Promise<RentalView> {
  return waitFor(
    async () => {
      const r = await renterView(pair, offerId).catch(() => undefined)
      return r !== undefined && ok(r) ? r : undefined
    },
    ms,
    what,
  )
}

/** Runs a command in the lease through `rpib ssh` (the renter daemon resolves the lease). */
export function sshInLease(pair: TwoDaemons, offerId: string, command: string): Promise<CliResult> {
  return runCli(['--home', pair.renter.home, 'ssh', offerId.slice(0, 12), '-i', pair.key.path, command], ENV)
}

interface EsploraTx {
  txid: string
  status: { confirmed: boolean }
  vout: { scriptpubkey_address?: string; value: number }[]
}

/** Outputs paying `address` on the devchain (mempool and blocks), one entry per output. */
export async function paymentsTo(
  devchain: Devchain,
  address: string,
): Promise<{ txid: string; sats: number }[]> {
  const res = await fetch(`${devchain.url}/address/${address}/txs`)
  assert.ok(res.ok, `devchain /address/${address}/txs: ${res.status}`)
  const txs = (await res.json()) as EsploraTx[]
  return txs.flatMap((t) =>
    t.vout.filter((o) => o.scriptpubkey_address === address).map((o) => ({ txid: t.txid, sats: o.value })),
  )
}

/** What the transaction `txid` pays to `address` on the devchain (0 if it does not exist). */
export async function paidBy(devchain: Devchain, txid: string, address: string): Promise<number> {
  const res = await fetch(`${devchain.url}/tx/${txid}`)
  if (!res.ok) return 0
  const tx = (await res.json()) as EsploraTx
  return tx.vout.filter((o) => o.scriptpubkey_address === address).reduce((sum, o) => sum + o.value, 0)
}

/**
 * Checks the provider's refunds of a rental on the devchain: every refund it recorded is a transaction
 * there paying the renter's refund address, and together they make `expectedSats`.
 */
export async function assertRefundedOnChain(
  pair: TwoDaemons,
  offerId: string,
  expectedSats: number,
): Promise<void> {
  const rental = (await pair.providerRentals()).find((r) => r.offerId === offerId)
  assert.ok(rental, `provider rental ${offerId}`)
  const address = rental.request.body.refundAddress
  assert.ok(address !== undefined, 'the renter gave a refund address')
  let total = 0
  for (const refund of rental.refunds) {
    const onChain = await paidBy(pair.devchain, refund.txid, address)
    assert.equal(onChain, refund.amountSats, `refund ${refund.txid} is on the devchain`)
    total += onChain
  }
  assert.equal(total, expectedSats, `refunded on chain for ${offerId}`)
}

/** Names of the lease's containers (running or not) in Docker. */
export async function leaseContainers(offerId: string): Promise<string[]> {
  const { stdout } = await execFileAsync('docker', ['ps', '-a', '--format', '{{.Names}}'])
  return stdout.split('\n').filter((name) => name.endsWith(`-${leaseUser(offerId)}`))
}

/** The id of the lease's (single) container. */
export async function leaseContainerId(offerId: string): Promise<string> {
  const names = await leaseContainers(offerId)
  assert.equal(names.length, 1, `one container for ${offerId}: ${names.join(', ')}`)
  const { stdout } = await execFileAsync('docker', ['inspect', '--format', '{{.Id}}', names[0]!])
  return stdout.trim()
}
