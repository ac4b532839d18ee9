import { constants } from 'node:os'
import { PassThrough, type Duplex } from 'node:stream'
import { setTimeout as delay } from 'node:timers/promises'
import type Docker from 'dockerode'
import type { Logger } from '../log.js'
import { demuxDockerStream } from './demux.js'
import type { ExecExit, ExecOptions, LeaseExec } from './types.js'

/**
 * Docker reports a process killed by signal N as exit code 128+N (it cannot tell the two apart). These
 * signals are reported to SSH clients as `exit-signal`; other codes stay plain exit statuses.
 */
const REPORTED_SIGNALS = ['HUP', 'INT', 'QUIT', 'ILL', 'ABRT', 'FPE', 'KILL', 'SEGV', 'TERM'] as const

export function exitFromCode(code: number): ExecExit {
  for (const name of REPORTED_SIGNALS) {
    if (code === 128 + constants.signals[`SIG${name}`]) return { code, signal: name }
  }
  return { code, signal: undefined }
}

const KILL_GRACE_MS = 2_000
const EXIT_POLL_DEADLINE_MS = 10_000

function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    // each exec is its own process group (see NOTES: docker exec cannot be cancelled otherwise)
    process.kill(-pid, signal)
    return true
  } catch {
    try {
      process.kill(pid, signal)
      return true
    } catch {
      return false
    }
  }
}

/** Starts `docker exec` in a running container and exposes it as plain streams. */
export async function startExec(
  container: Docker.Container,
  options: ExecOptions,
  log: Logger,
): Promise<LeaseExec> {
  const sized = options.tty && options.cols != null && options.rows != null
  // API 1.41 cannot create an exec with a console size, and a resize after start races with programs
  // that read the size at once (`ssh -tt host 'stty size'`): set it from inside before the command runs.
  const cmd = sized
    ? [
        '/bin/sh',
        '-c',
        `stty rows ${options.rows} cols ${options.cols} 2>/dev/null; exec "$@"`,
        'sh',
        ...options.cmd,
      ]
    : options.cmd
  const exec = await container.exec({
    Cmd: cmd,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    Tty: options.tty,
    Env: Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`),
    WorkingDir: options.workingDir,
  })
  const socket = (await exec.start({ hijack: true, stdin: true, Tty: options.tty })) as Duplex
  let stdout: PassThrough | Duplex = socket
  let stderr: PassThrough | undefined
  if (!options.tty) {
    stdout = new PassThrough({ highWaterMark: 256 * 1024 })
    stderr = new PassThrough()
    demuxDockerStream(socket, stdout, stderr)
  }
  const socketClosed = new Promise<void>((resolve) => {
    socket.once('close', () => resolve())
    socket.once('end', () => resolve())
  })
  let exitPromise: Promise<ExecExit> | undefined

  async function pollExit(): Promise<ExecExit> {
    await socketClosed
    const deadline = Date.now() + EXIT_POLL_DEADLINE_MS
    // dockerd may still report Running for a moment after the output ends
    for (let wait = 2; ; wait = Math.min(wait * 2, 100)) {
      const info = await exec.inspect()
      if (!info.Running && info.ExitCode != null) return exitFromCode(info.ExitCode)
      if (Date.now() > deadline) return { code: 255, signal: undefined }
      await delay(wait)
    }
  }

  if (sized) {
    exec.resize({ w: options.cols, h: options.rows }).catch(() => undefined)
  }

  return {
    stdin: socket,
    stdout,
    stderr,
    async resize(cols, rows) {
      // resizing an exec that already finished fails with HTTP 500: nothing to resize then
      await exec.resize({ w: cols, h: rows }).catch(() => undefined)
    },
    exited() {
      exitPromise ??= pollExit()
      return exitPromise
    },
    async kill() {
      try {
        const info = await exec.inspect()
        if (info.Running && info.Pid > 0) {
          signalGroup(info.Pid, 'SIGHUP')
          const deadline = Date.now() + KILL_GRACE_MS
          while (Date.now() < deadline) {
            await delay(50)
            if (!(await exec.inspect()).Running) break
          }
          if ((await exec.inspect()).Running) signalGroup(info.Pid, 'SIGKILL')
        }
      } catch (err) {
        log('ending exec: %s', (err as Error).message)
      } finally {
        socket.destroy()
      }
    },
  }
}
