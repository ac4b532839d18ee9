import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

export const REPO = fileURLToPath(new URL('../../../', import.meta.url))
export const CLI = `${REPO}packages/node/dist/src/cli/main.js`
export const NETSIM = `${REPO}scripts/netsim`

/** Why namespace tests cannot run here, or undefined when they can. */
export function netsimUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, iptables)'
  for (const tool of ['ip', 'iptables', 'ssh', 'ssh-keygen', '/usr/sbin/sshd', 'curl']) {
    const r = spawnSync('sh', ['-c', `command -v ${tool}`])
    if (r.status !== 0)
      return `needs ${tool} (apt-get install iproute2 iptables openssh-client openssh-server curl)`
  }
  return undefined
}

export function netsim(cmd: 'up' | 'down', prefix: string): void {
  const r = spawnSync(NETSIM, [cmd, prefix], { encoding: 'utf8', timeout: 60_000 })
  if (r.status !== 0) throw new Error(`scripts/netsim ${cmd} ${prefix} failed: ${r.stderr}`)
}

/** A process inside a namespace whose stdout lines can be awaited. */
export interface NsProcess {
  child: ChildProcess
  lines: string[]
  stderr(): string
  waitForLine(match: (line: string) => boolean, timeoutMs: number, what: string): Promise<string>
  exited: Promise<number | null>
  kill(signal?: NodeJS.Signals): Promise<void>
}

export function nsSpawn(ns: string, cmd: string, args: string[]): NsProcess {
  const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  const lines: string[] = []
  let err = ''
  let buf = ''
  const waiters = new Set<() => void>()
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d
    let i: number
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i))
      buf = buf.slice(i + 1)
    }
    for (const w of waiters) w()
  })
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      for (const w of waiters) w()
      resolve(code)
    }),
  )
  return {
    child,
    lines,
    stderr: () => err,
    exited,
    waitForLine(match, timeoutMs, what) {
      return new Promise((resolve, reject) => {
        let seen = 0
        const check = (): void => {
          for (; seen < lines.length; seen++) {
            if (match(lines[seen]!)) {
              done()
              return resolve(lines[seen]!)
            }
          }
          if (child.exitCode != null) {
            done()
            reject(new Error(`${what}: process exited (${child.exitCode}); stderr: ${err.slice(-2000)}`))
          }
        }
        const timer = setTimeout(() => {
          done()
          reject(
            new Error(`timed out after ${timeoutMs} ms waiting for ${what}; stderr: ${err.slice(-2000)}`),
          )
        }, timeoutMs)
        const done = (): void => {
          clearTimeout(timer)
          waiters.delete(check)
        }
        waiters.add(check)
        check()
      })
    },
    async kill(signal = 'SIGTERM') {
      if (child.exitCode != null || child.signalCode != null) return
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000)
      child.kill(signal)
      await exited
      clearTimeout(t)
    },
  }
}

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

export function nsRun(
  ns: string,
  cmd: string,
  args: string[],
  timeoutMs = 60_000,
  input?: string,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: timeoutMs,
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
    child.stdin.on('error', () => {})
    child.stdin.end(input)
  })
}

/** Tries a TCP connection from inside a namespace; true when it connected within `timeoutMs`. */
export async function canConnect(
  ns: string,
  host: string,
  port: number,
  timeoutMs = 3_000,
): Promise<boolean> {
  const script =
    `const s=require('net').connect(${port},'${host}');` +
    `s.on('connect',()=>{process.stdout.write('connected');process.exit(0)});` +
    `s.on('error',()=>process.exit(3));setTimeout(()=>process.exit(4),${timeoutMs})`
  const r = await nsRun(ns, process.execPath, ['-e', script], timeoutMs + 5_000)
  return r.stdout === 'connected'
}

/** OpenSSH server for the provider's side, in a namespace on its loopback. */
export async function writeSshdConfig(
  dir: string,
  port: number,
): Promise<{ config: string; hostPublicKey: string; clientKey: string }> {
  await mkdir('/run/sshd', { recursive: true })
  for (const k of ['host_key', 'client_key']) {
    const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'netsim', '-f', `${dir}/${k}`])
    if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`)
  }
  const { readFile } = await import('node:fs/promises')
  const clientPub = await readFile(`${dir}/client_key.pub`, 'utf8')
  await writeFile(`${dir}/authorized_keys`, clientPub)
  const config = `${dir}/sshd_config`
  await writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${dir}/host_key`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      `PidFile ${dir}/sshd.pid`,
      'LogLevel ERROR',
    ].join('\n') + '\n',
  )
  const hostPublicKey = (await readFile(`${dir}/host_key.pub`, 'utf8')).split(' ').slice(0, 2).join(' ')
  return { config, hostPublicKey, clientKey: `${dir}/client_key` }
}

export async function pollUntil(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<number> {
  const start = Date.now()
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return Date.now() - start
}
