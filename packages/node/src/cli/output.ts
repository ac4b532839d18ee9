import type { Command } from 'commander'
import { dataDir } from '../config/paths.js'

export interface GlobalOptions {
  json: boolean
  home: string
}

/** Global options (`--json`, `--home`) as seen from any (sub)command. */
export function globalOptions(cmd: Command): GlobalOptions {
  const opts = cmd.optsWithGlobals<{ json?: boolean; home?: string }>()
  return { json: opts.json === true, home: opts.home ?? dataDir() }
}

/** Prints a command's result: JSON with `--json`, otherwise the human rendering. */
export function emit(cmd: Command, data: unknown, human: () => string): void {
  if (globalOptions(cmd).json) {
    process.stdout.write(
      JSON.stringify(data, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n',
    )
  } else {
    process.stdout.write(human() + '\n')
  }
}
