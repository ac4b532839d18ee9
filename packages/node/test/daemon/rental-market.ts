/**
 * A small rental market of real daemon processes for tests and benches: an in-process devchain, one or
 * more provider daemons (`rpib daemon --provider`, each with its own Docker network) and a renter daemon
 * with a funded wallet, each bootstrapped to the providers before it, on a fresh sandbox network id.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ConfigInput } from '../../src/config/schema.js'
import { DaemonStateSchema, type DaemonState } from '../../src/daemon/state-file.js'
import { createDevchain, type Devchain } from '../../src/payments/devchain/server.js'
import { removeProviderLeases, uniqueName } from '../containers/harness.js'
import { waitFor } from '../api/http.js'
import { runCli, type CliResult } from '../helpers/cli.js'
import { spawnRpib, within, type DaemonProcess } from './process.js'

type DeviceInput = NonNullable<NonNullable<ConfigInput['provider']>['devices']>[number]

export interface MarketDaemon {
  home: string
  process: DaemonProcess
  state: DaemonState
  /** the daemon's local API with its bearer token; throws on a non-2xx answer */
  api<T = unknown>(path: string, init?: { method?: string; body?: unknown }): Promise<T>
  /** `rpib --home <home> …` as a separate process */
  cli(args: string[]): Promise<CliResult>
}

export interface RentalMarket {
  dir: string
  network: string
  devchain: Devchain
  owners: MarketDaemon[]
  renter: MarketDaemon
  env: Record<string, string>
  /** SIGTERMs every daemon and waits for clean exits (codes returned), then stops the devchain */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }[]>
}

export interface RentalMarketOptions {
  /** devices of each provider daemon (one entry per daemon) */
  owners: DeviceInput[][]
  /** seconds in a lease "hour" (fast clock) */
  secondsPerHour: number
  /** sats per faucet coin for the renter, and how many coins (several let parallel payments go at once) */
  renterSats?: number
  renterCoins?: number
  /** extra provider config (e.g. zeroConfMaxSats) */
  provider?: Omit<NonNullable<ConfigInput['provider']>, 'devices'>
  env?: Record<string, string>
}

async function readState(home: string, p: DaemonProcess): Promise<DaemonState> {
  return waitFor(
    async () => {
      if (p.child.exitCode != null) throw new Error(`the daemon in ${home} exited: ${p.stderr()}`)
      const text = await readFile(join(home, 'daemon.json'), 'utf8').catch(() => undefined)
      return text != null ? DaemonStateSchema.parse(JSON.parse(text)) : undefined
    },
    60_000,
    `the daemon in ${home}`,
  )
}

async function attach(home: string, p: DaemonProcess, env: Record<string, string>): Promise<MarketDaemon> {
  const state = await readState(home, p)
  const token = (await readFile(join(home, 'api-token'), 'utf8')).trim()
  return {
    home,
    process: p,
    state,
    async api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
      const res = await fetch(`${state.apiUrl}${path}`, {
        method: init.method ?? 'GET',
        headers: {
          authorization: `Bearer ${token}`,
          ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
      })
      const text = await res.text()
      if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${path}: ${res.status} ${text}`)
      return JSON.parse(text) as T
    },
    cli: (args) => runCli(['--home', home, ...args], env),
  }
}

export async function startRentalMarket(opts: RentalMarketOptions): Promise<RentalMarket> {
  const env = { RPIB_WALLET_PASSPHRASE: 'rental-market', RPIB_MDNS: 'false', ...opts.env }
  const dir = await mkdtemp(join(tmpdir(), 'rpib-market-'))
  const devchain = createDevchain({ port: 0 })
  await devchain.start()
  const network = `sandbox-${uniqueName('m').slice(-8)}`
  const processes: DaemonProcess[] = []
  const dockerNetworks: string[] = []
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
  const spawnDaemon = async (
    home: string,
    config: ConfigInput,
    args: string[],
    fundSats = 0,
    coins = 1,
  ): Promise<MarketDaemon> => {
    const created = await runCli(['--home', home, 'wallet', 'create', '--esplora-url', devchain.url], env)
    if (created.code !== 0) throw new Error(`wallet create: ${created.stderr}`)
    if (fundSats > 0) {
      const r = await runCli(
        ['--home', home, '--json', 'wallet', 'address', '--esplora-url', devchain.url],
        env,
      )
      const { address } = JSON.parse(r.stdout) as { address: string }
      for (let i = 0; i < coins; i++) await devchain.faucet(address, fundSats)
      await devchain.mine(1)
    }
    const file = join(dir, `${home.split('/').pop()!}.json`)
    await writeFile(file, JSON.stringify(config))
    const p = spawnRpib(['--home', home, ...common, '--config', file, ...args], env)
    processes.push(p)
    return attach(home, p, env)
  }
  const stopAll = async (): Promise<{ code: number | null; signal: NodeJS.Signals | null }[]> => {
    for (const p of processes) if (p.child.exitCode == null) p.child.kill('SIGTERM')
    try {
      return await Promise.all(processes.map((p) => within(p.exited, 20_000, 'a daemon to stop')))
    } finally {
      for (const p of processes) p.kill()
      // the daemons leave paid leases running on purpose (a restart resumes them): remove them here
      for (const [i, networkName] of dockerNetworks.entries())
        await removeProviderLeases(networkName, join(dir, `owner${i}`, 'provider', 'volumes'))
      await devchain.stop()
      await rm(dir, { recursive: true, force: true })
    }
  }
  try {
    const owners: MarketDaemon[] = []
    let bootstrap: string[] = []
    for (const [i, devices] of opts.owners.entries()) {
      const dockerNetwork = uniqueName(`rpib-mk${i}`)
      dockerNetworks.push(dockerNetwork)
      const owner = await spawnDaemon(
        join(dir, `owner${i}`),
        {
          provider: {
            zeroConfMaxSats: 1_000_000,
            ...opts.provider,
            devices,
            secondsPerHour: opts.secondsPerHour,
            dockerNetwork,
          },
        },
        ['--provider', ...bootstrap],
      )
      // the provider role is up once its rentals answer; its listen address bootstraps everyone else
      await waitFor(
        () =>
          owner.api('/api/provider/rentals').catch((err: unknown) => {
            if (owner.process.child.exitCode != null)
              throw new Error(`the provider daemon exited: ${owner.process.stderr()}`, { cause: err })
            return undefined
          }),
        90_000,
        'the provider role',
      ).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}; its log:\n${owner.process.stdout().slice(-3000)}`)
      })
      // everyone dials every provider at start: without mDNS (off in tests) a node reaches a provider it
      // is not connected to only after that provider's next presence beat (which carries its addresses)
      const net = await owner.api<{ addresses: string[] }>('/api/network')
      bootstrap = [...bootstrap, '--bootstrap', net.addresses[0]!]
      owners.push(owner)
    }
    const renter = await spawnDaemon(
      join(dir, 'renter'),
      { provider: { secondsPerHour: opts.secondsPerHour } },
      bootstrap,
      opts.renterSats ?? 500_000,
      opts.renterCoins ?? 1,
    )
    const want = opts.owners.reduce((n, d) => n + d.length, 0)
    await waitFor(
      async () => {
        const net = await renter.api<{ listings: { keys: number } }>('/api/network').catch(() => undefined) // 503 until its market runs
        return net != null && net.listings.keys >= want ? true : undefined
      },
      60_000,
      'every listing to reach the renter',
    )
    return { dir, network, devchain, owners, renter, env, stop: stopAll }
  } catch (err) {
    await stopAll().catch(() => undefined)
    throw err
  }
}
