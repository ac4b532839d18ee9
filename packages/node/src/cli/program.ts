import { Command, CommanderError } from 'commander'
import { readFileSync } from 'node:fs'
import { RpibError } from '../errors.js'

type Registrar = (program: Command) => void

/**
 * Command modules, loaded on demand: a command's module pulls in its stack (libp2p, Docker, Bitcoin),
 * and loading all of them costs ~1 s of start-up that `rpib wallet balance` should not pay. Every top-level
 * command a module registers is listed here (a test checks the list is complete).
 */
export const COMMAND_MODULES: readonly { commands: readonly string[]; load: () => Promise<Registrar> }[] = [
  { commands: ['id'], load: async () => (await import('./id.js')).registerId },
  { commands: ['device'], load: async () => (await import('./device.js')).registerDevice },
  {
    commands: ['wallet', 'invoice', 'devchain'],
    load: async () => (await import('./wallet.js')).registerPayments,
  },
  {
    commands: ['daemon', 'status', 'events', 'config'],
    load: async () => (await import('./daemon.js')).registerDaemon,
  },
  {
    commands: ['relay', 'tunnel', 'ssh-config'],
    load: async () => (await import('./relay.js')).registerRelay,
  },
  { commands: ['proxy'], load: async () => (await import('./proxy.js')).registerProxy },
  { commands: ['ssh'], load: async () => (await import('./ssh.js')).registerSsh },
  { commands: ['market'], load: async () => (await import('./market.js')).registerMarket },
  { commands: ['rent', 'leases'], load: async () => (await import('./rent.js')).registerRent },
  { commands: ['lease'], load: async () => (await import('./lease.js')).registerLease },
]

/** The top-level command named on the command line, if any (skipping global options). */
function commandName(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (a === '--home') {
      i++
      continue
    }
    if (a.startsWith('-')) continue
    return a === 'help' ? args[i + 1] : a
  }
  return undefined
}

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
  version: string
}

function modulesFor(args: readonly string[] | undefined): typeof COMMAND_MODULES {
  if (args === undefined) return COMMAND_MODULES
  const name = commandName(args)
  if (name === undefined) return args.includes('-V') || args.includes('--version') ? [] : COMMAND_MODULES
  const own = COMMAND_MODULES.filter((m) => m.commands.includes(name))
  return own.length > 0 ? own : COMMAND_MODULES
}

/** Builds the CLI; with `argv`, registers only the module of the command it names (all for help). */
export async function buildProgram(argv?: readonly string[]): Promise<Command> {
  const program = new Command('rpib')
    .description(
      'RPi Broker: rent out or rent Docker-capable devices as small VPSes, paid in Bitcoin, peer to peer',
    )
    .version(pkg.version, '-V, --version', 'print the version')
    .option('--json', 'print machine-readable JSON')
    .option('--home <dir>', 'data directory (default: $RPIB_HOME or $XDG_DATA_HOME/rpib)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
  for (const m of modulesFor(argv?.slice(2))) (await m.load())(program)
  return program
}

export async function run(argv: string[]): Promise<number> {
  const program = await buildProgram(argv)
  try {
    await program.parseAsync(argv)
    return 0
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version "errors" are normal exits; usage errors were already printed by commander
      return err.exitCode === 0 ? 0 : 2
    }
    const json = argv.includes('--json')
    const code = err instanceof RpibError ? err.code : 'ERR_INTERNAL'
    const message = err instanceof Error ? err.message : String(err)
    if (json) process.stdout.write(JSON.stringify({ error: { code, message } }) + '\n')
    else process.stderr.write(`rpib: ${message}\n`)
    if (!(err instanceof RpibError) && process.env.RPIB_DEBUG != null) console.error(err)
    return 1
  }
}
