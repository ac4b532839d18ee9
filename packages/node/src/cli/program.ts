import { Command, CommanderError } from 'commander'
import { readFileSync } from 'node:fs'
import { RpibError } from '../errors.js'
import { registerId } from './id.js'
import { registerPayments } from './wallet.js'

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
  version: string
}

export function buildProgram(): Command {
  const program = new Command('rpib')
    .description(
      'RPi Broker: rent out or rent Docker-capable devices as small VPSes, paid in Bitcoin, peer to peer',
    )
    .version(pkg.version, '-V, --version', 'print the version')
    .option('--json', 'print machine-readable JSON')
    .option('--home <dir>', 'data directory (default: $RPIB_HOME or $XDG_DATA_HOME/rpib)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
  registerId(program)
  registerPayments(program)
  return program
}

export async function run(argv: string[]): Promise<number> {
  const program = buildProgram()
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
