import type { Readable } from 'node:stream'
import type { ServerChannel, Session } from 'ssh2'
import type { ContainerRuntime, LeaseExec } from '../containers/types.js'
import type { Logger } from '../log.js'

/** Where Debian's openssh-sftp-server installs the SFTP server (the rpib/base image includes it). */
export const SFTP_SERVER_PATH = '/usr/lib/openssh/sftp-server'

/** Prefers bash when the image has it; a login shell, as sshd would start. */
const SHELL_CMD = ['/bin/sh', '-c', 'if [ -x /bin/bash ]; then exec /bin/bash -l; fi; exec /bin/sh -l']

/** Environment variables a client may set (`SendEnv`); everything else is refused. */
export function isAllowedEnv(name: string): boolean {
  return name === 'LANG' || name === 'TZ' || name === 'COLORTERM' || /^LC_[A-Z_]{1,32}$/.test(name)
}

export interface OpenSession {
  /** Writes a one-line notice the renter sees (pty: on the terminal, otherwise on stderr). */
  notify(message: string): void
}

export interface SessionContext {
  leaseId: string
  runtime: Pick<ContainerRuntime, 'exec'>
  log: Logger
  /** Shown once when an interactive shell starts (the lease's end time). */
  loginNotice(): string
  /** A warning for non-interactive sessions when the lease ends soon, else undefined. */
  expiryWarning(): string | undefined
  register(session: OpenSession): () => void
}

interface PtyState {
  term: string
  cols: number
  rows: number
}

function whenDone(stream: Readable): Promise<void> {
  return new Promise((resolve) => {
    if (stream.readableEnded || stream.destroyed) return resolve()
    stream.once('end', resolve)
    stream.once('close', resolve)
    stream.once('error', () => resolve())
  })
}

/** Wires one SSH session channel (shell, exec or sftp) to a `docker exec` in the lease container. */
export function handleSession(session: Session, ctx: SessionContext): void {
  const env: Record<string, string> = {}
  let pty: PtyState | undefined
  let running: LeaseExec | undefined
  let started = false

  session.on('env', (accept, reject, info) => {
    if (!started && isAllowedEnv(info.key) && info.val.length <= 256) {
      env[info.key] = info.val
      accept?.()
    } else reject?.()
  })
  session.on('pty', (accept, reject, info) => {
    if (started) return reject?.()
    pty = { term: /^[\w.+-]{1,64}$/.test(info.term) ? info.term : 'xterm', cols: info.cols, rows: info.rows }
    accept?.()
  })
  session.on('window-change', (accept, _reject, info) => {
    if (pty != null) {
      pty.cols = info.cols
      pty.rows = info.rows
    }
    void running?.resize(info.cols, info.rows)
    accept?.()
  })
  // refused on purpose: agent forwarding would hand the provider's container the renter's keys
  session.on('auth-agent', (_accept, reject) => reject?.())
  session.on('x11', (_accept, reject) => reject?.())
  session.on('signal', (_accept, reject) => reject?.())

  const start = (
    accept: () => ServerChannel | undefined,
    reject: () => void,
    cmd: string[],
    kind: 'shell' | 'exec' | 'sftp',
  ): void => {
    if (started) return reject()
    started = true
    const tty = kind !== 'sftp' && pty != null
    // accept at once: ssh2 refuses a late accept when the client already sent EOF (e.g. `ssh host cmd </dev/null`)
    const channel = accept()
    if (channel == null) return
    void (async () => {
      let exec: LeaseExec
      try {
        exec = await ctx.runtime.exec(ctx.leaseId, {
          cmd,
          tty,
          env: { ...env, ...(tty && pty != null ? { TERM: pty.term } : {}) },
          ...(tty && pty != null ? { cols: pty.cols, rows: pty.rows } : {}),
        })
      } catch (err) {
        ctx.log('lease %s: exec failed: %s', ctx.leaseId, (err as Error).message)
        channel.stderr.write(`[rpib] could not start the session: ${(err as Error).message}\n`)
        channel.exit(255)
        channel.end()
        return
      }
      running = exec
      await bridge(channel, exec, tty, kind, ctx)
    })()
  }

  session.on('shell', (accept, reject) => start(accept, reject, SHELL_CMD, 'shell'))
  session.on('exec', (accept, reject, info) => start(accept, reject, ['/bin/sh', '-c', info.command], 'exec'))
  session.on('subsystem', (accept, reject, info) => {
    if (info.name === 'sftp') start(accept, reject, [SFTP_SERVER_PATH], 'sftp')
    else reject()
  })
}

async function bridge(
  channel: ServerChannel,
  exec: LeaseExec,
  tty: boolean,
  kind: 'shell' | 'exec' | 'sftp',
  ctx: SessionContext,
): Promise<void> {
  let channelClosed = false
  const unregister = ctx.register({
    notify(message) {
      if (channelClosed) return
      if (tty) channel.write(`\r\n[rpib] ${message}\r\n`)
      else if (kind !== 'sftp') channel.stderr.write(`[rpib] ${message}\n`)
    },
  })
  channel.once('close', () => {
    channelClosed = true
    unregister()
    // the exec keeps running when its client goes away: end its process group
    void exec.kill()
  })
  if (kind === 'shell' && tty) channel.write(`[rpib] ${ctx.loginNotice()}\r\n`)
  else if (kind === 'exec') {
    const warning = ctx.expiryWarning()
    if (warning != null) channel.stderr.write(`[rpib] ${warning}\n`)
  }
  // with a pty the client's end-of-input must not reach dockerd: it would close the output early
  channel.pipe(exec.stdin, { end: !tty })
  exec.stdout.pipe(channel, { end: false })
  exec.stderr?.pipe(channel.stderr, { end: false })
  await Promise.all([whenDone(exec.stdout), exec.stderr != null ? whenDone(exec.stderr) : undefined])
  let exit
  try {
    exit = await exec.exited()
  } catch (err) {
    ctx.log('lease %s: exit status unavailable: %s', ctx.leaseId, (err as Error).message)
    exit = { code: 255, signal: undefined }
  }
  if (channelClosed) return
  // the status must go out before the channel ends, or the client never sees it
  if (exit.signal != null) channel.exit(exit.signal, false, '')
  else channel.exit(exit.code)
  channel.end()
  unregister()
}
