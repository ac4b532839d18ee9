import type { Command } from 'commander'
import { Option } from 'commander'
import { configRoute, nodeRoute } from '../api/routes/node.js'
import {
  loadConfig,
  readConfigFile,
  resolveConfig,
  setKey,
  type ConfigLayer,
  type ConfigSource,
} from '../config/config.js'
import { configJsonSchema } from '../config/schema.js'
import { connectToDaemon } from './client.js'
import { emit, globalOptions } from './output.js'

interface ConfigFlags {
  config?: string
  network?: string
  provider?: boolean
  relay?: boolean
  apiHost?: string
  apiPort?: string
  listen?: string[]
  bootstrap?: string[]
  bitcoinBackend?: string
  bitcoinUrl?: string
  logLevel?: string
  timeUnit?: string
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value]

/** The flags that override config keys, shared by `rpib daemon` and `rpib config show`. */
function addConfigFlags(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'config file (default: <home>/config.json if it exists; env RPIB_CONFIG)')
    .option('--network <id>', 'market network id: mainnet, testnet, regtest or sandbox-<id>')
    .option('--provider', 'rent out this device (needs Docker)')
    .option('--relay', 'act as a public relay')
    .addOption(new Option('--api-host <addr>', 'local API address').choices(['127.0.0.1', '::1']))
    .option('--api-port <n>', 'local API port (0 picks a free one)')
    .option(
      '--listen <multiaddr>',
      'libp2p listen address (repeatable; replaces the configured list)',
      collect,
    )
    .option('--bootstrap <multiaddr>', 'bootstrap peer (repeatable; replaces the configured list)', collect)
    .addOption(
      new Option('--bitcoin-backend <kind>', 'chain backend').choices(['devchain', 'esplora', 'core']),
    )
    .option('--bitcoin-url <url>', 'Esplora or Bitcoin Core RPC URL')
    .addOption(new Option('--log-level <level>', 'log level').choices(['debug', 'info', 'warn', 'error']))
    .option(
      '--time-unit <seconds>',
      'seconds in a lease "hour" (provider.secondsPerHour): regtest and sandbox networks only, for tests and demos',
    )
}

/** Maps parsed flags to a config layer, remembering which flag set which key (for error messages). */
export function flagsLayer(flags: ConfigFlags): ConfigSource {
  const layer: ConfigLayer = {}
  const keyLabels = new Map<string, string>()
  const set = (key: string, flag: string, value: unknown): void => {
    if (value === undefined) return
    setKey(layer, key, value)
    keyLabels.set(key, `flag ${flag}`)
  }
  set('network', '--network', flags.network)
  set('roles.provider', '--provider', flags.provider)
  set('roles.relay', '--relay', flags.relay)
  set('api.host', '--api-host', flags.apiHost)
  const port = flags.apiPort
  set('api.port', '--api-port', port != null && /^\d+$/.test(port) ? Number(port) : port)
  set('p2p.listen', '--listen', flags.listen)
  set('p2p.bootstrap', '--bootstrap', flags.bootstrap)
  set('bitcoin.backend', '--bitcoin-backend', flags.bitcoinBackend)
  set('bitcoin.url', '--bitcoin-url', flags.bitcoinUrl)
  set('log.level', '--log-level', flags.logLevel)
  const unit = flags.timeUnit
  set('provider.secondsPerHour', '--time-unit', unit != null && /^\d+$/.test(unit) ? Number(unit) : unit)
  return { label: 'flags', layer, keyLabels }
}

function formatUptime(seconds: number): string {
  const h = Math.floor(seconds / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  const s = seconds % 60
  return h > 0 ? `${h}h${m}m` : m > 0 ? `${m}m${s}s` : `${s}s`
}

/** How long a graceful stop may take before the process gives up and exits with an error. */
const STOP_DEADLINE_MS = 30_000

export function registerDaemon(program: Command): void {
  addConfigFlags(
    program
      .command('daemon')
      .description('run the node in the foreground (JSON-lines logs on stdout; stop with SIGINT or SIGTERM)'),
  ).action(async (flags: ConfigFlags, cmd: Command) => {
    const { home } = globalOptions(cmd)
    const loaded = await loadConfig({ home, configFile: flags.config, flags: flagsLayer(flags) })
    // loaded on demand: the other commands should not pay for Fastify and every service at start-up
    const { createDaemon } = await import('../daemon.js')
    const { createJsonLogger } = await import('../daemon/json-log.js')
    const log = createJsonLogger({ level: loaded.config.log.level })
    const daemon = createDaemon({ home, config: loaded.config, configFile: loaded.configFile }, { log })

    let signalled: NodeJS.Signals | undefined
    let onSignal: (signal: NodeJS.Signals) => void = () => {}
    const stopped = new Promise<void>((resolve) => {
      onSignal = (signal) => {
        if (signalled != null) {
          log.warn('daemon.forced_exit', { signal })
          process.exit(130)
        }
        signalled = signal
        const watchdog = setTimeout(() => {
          log.error('daemon.stop_timeout', { ms: STOP_DEADLINE_MS })
          process.exit(1)
        }, STOP_DEADLINE_MS)
        watchdog.unref()
        void daemon.stop(signal).then(() => {
          clearTimeout(watchdog)
          resolve()
        })
      }
    })
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    try {
      try {
        await daemon.start()
      } catch (err) {
        if (signalled == null) throw err // a signal during start is a normal, graceful stop
      }
      await stopped
    } finally {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    }
  })

  program
    .command('status')
    .description('show the running daemon: peer id, network, roles, uptime, services')
    .action(async (_opts, cmd: Command) => {
      const { home } = globalOptions(cmd)
      const { client } = await connectToDaemon(home)
      const node = await client.call(nodeRoute)
      const roles = [
        'renter',
        ...(node.roles.provider ? ['provider'] : []),
        ...(node.roles.relay ? ['relay'] : []),
      ]
      emit(cmd, node, () =>
        [
          `daemon    running (pid ${node.pid}, up ${formatUptime(node.uptimeSeconds)}, version ${node.version})`,
          `api       ${node.apiUrl}`,
          `peer id   ${node.peerId}`,
          `network   ${node.network} (bitcoin ${node.bitcoinNetwork})`,
          `roles     ${roles.join(', ')}`,
          `services  ${node.services.length === 0 ? '(none)' : node.services.map((s) => `${s.name} ${s.state}${s.note != null ? ` (${s.note})` : ''}`).join(', ')}`,
        ].join('\n'),
      )
    })

  program
    .command('events')
    .description("follow the daemon's live events (one JSON line each) until interrupted")
    .option('--types <prefixes>', 'comma-separated event type prefixes, e.g. lease.,invoice.')
    .action(async (opts: { types?: string }, cmd: Command) => {
      const { home } = globalOptions(cmd)
      const { client } = await connectToDaemon(home)
      const controller = new AbortController()
      const onSignal = (): void => controller.abort()
      process.once('SIGINT', onSignal)
      process.once('SIGTERM', onSignal)
      try {
        const types = opts.types?.split(',').filter((t) => t !== '')
        for await (const event of client.events({ types, signal: controller.signal })) {
          process.stdout.write(JSON.stringify(event) + '\n')
        }
      } finally {
        process.off('SIGINT', onSignal)
        process.off('SIGTERM', onSignal)
      }
    })

  const config = program.command('config').description('show, validate and describe the configuration')
  addConfigFlags(
    config
      .command('show')
      .description('print the effective config (defaults < config file < RPIB_* env < flags)')
      .option('--running', 'ask the running daemon for the config it runs with'),
  ).action(async (flags: ConfigFlags & { running?: boolean }, cmd: Command) => {
    const { home } = globalOptions(cmd)
    if (flags.running === true) {
      const { client } = await connectToDaemon(home)
      const running = await client.call(configRoute)
      emit(cmd, running, () => JSON.stringify(running.config, null, 2))
      return
    }
    const loaded = await loadConfig({ home, configFile: flags.config, flags: flagsLayer(flags) })
    const data = { home, configFile: loaded.configFile, config: loaded.config }
    emit(cmd, data, () =>
      [
        `# data directory: ${home}`,
        `# config file: ${loaded.configFile ?? '(none; defaults, RPIB_* env and flags only)'}`,
        JSON.stringify(loaded.config, null, 2),
      ].join('\n'),
    )
  })

  config
    .command('validate <file>')
    .description('check a config file; exits 1 naming each bad key')
    .action(async (file: string, _opts, cmd: Command) => {
      const source = await readConfigFile(file, false)
      const effective = resolveConfig(source != null ? [source] : [])
      emit(cmd, { valid: true, file, config: effective }, () => `${file}: valid`)
    })

  config
    .command('schema')
    .description('print the JSON Schema of the config file')
    .action(() => {
      process.stdout.write(JSON.stringify(configJsonSchema(), null, 2) + '\n')
    })
}
