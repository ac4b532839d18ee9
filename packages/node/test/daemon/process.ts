import { spawn, type ChildProcess } from 'node:child_process'
import { CLI_PATH } from '../helpers/cli.js'

export interface DaemonProcess {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  /** resolves with the exit code and signal once the process is gone */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** kills it hard if it is still running (for `finally` blocks) */
  kill(): void
}

/** Starts `rpib <args>` as a separate process (the real CLI binary, same Node). */
export function spawnRpib(args: string[], env: Record<string, string> = {}): DaemonProcess {
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d))
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  )
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    kill: () => {
      if (child.exitCode == null && child.signalCode == null) child.kill('SIGKILL')
    },
  }
}

/** A process that exits at once: its pid is then the pid of no running process (for stale-file tests). */
export function spawnNode(): { child: ChildProcess; exited: Promise<unknown> } {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  return { child, exited: new Promise((resolve) => child.on('close', resolve)) }
}

/** Races a promise against a deadline. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_r, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}
