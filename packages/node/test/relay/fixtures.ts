import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ssh2 from 'ssh2'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { createJumpRelay, type JumpRelay } from '../../src/relay/jump-server.js'
import { relayLimits, type RelayLimitsInput } from '../../src/relay/limits.js'
import { logger } from '../../src/log.js'

export async function tempDir(
  prefix = 'rpib-relay-',
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) }
}

export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** Polls until a TCP port accepts connections, or throws at the deadline. */
export async function waitForPort(host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, host)
      s.once('connect', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`port ${host}:${port} did not open within ${timeoutMs} ms`)
}

/** Like waitForPort, from inside a network namespace. */
export async function waitForPortInNamespace(
  netns: string,
  host: string,
  port: number,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const r = await run(
      'ip',
      ['netns', 'exec', netns, 'bash', '-c', `exec 3<>/dev/tcp/${host}/${port}`],
      undefined,
      5_000,
    )
    if (r.code === 0) return
    await new Promise((res) => setTimeout(res, 100))
  }
  throw new Error(`port ${host}:${port} in ${netns} did not open within ${timeoutMs} ms`)
}

/** Polls `check` until it returns true, or throws at the deadline. */
export async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

export function sshKeygen(path: string): string {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'rpib-test', '-f', path])
  return execFileSync('cat', [`${path}.pub`], { encoding: 'utf8' }).trim()
}

export interface Sshd {
  port: number
  /** `ssh-ed25519 AAAA…` of the host key */
  hostPublicKey: string
  /** private key file the client logs in with (as root) */
  clientKeyPath: string
  stop(): Promise<void>
}

/**
 * A real OpenSSH server on a loopback port, standing in for the provider's embedded SSH server:
 * key-only root login with a key the test generates.
 */
export async function startSshd(
  dir: string,
  listen = '127.0.0.1',
  inNamespace?: { netns: string; port: number },
): Promise<Sshd> {
  await mkdir('/run/sshd', { recursive: true })
  const hostPublicKey = sshKeygen(join(dir, 'host_key'))
  const clientPub = sshKeygen(join(dir, 'client_key'))
  await writeFile(join(dir, 'authorized_keys'), clientPub + '\n')
  const port = inNamespace?.port ?? (await freePort())
  const config = [
    `Port ${port}`,
    `ListenAddress ${listen}`,
    `HostKey ${join(dir, 'host_key')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    `PidFile ${join(dir, 'sshd.pid')}`,
    'LogLevel ERROR',
    'AllowTcpForwarding no',
  ].join('\n')
  await writeFile(join(dir, 'sshd_config'), config + '\n')
  const sshd = ['/usr/sbin/sshd', '-D', '-e', '-f', join(dir, 'sshd_config')]
  const child =
    inNamespace == null
      ? spawn(sshd[0]!, sshd.slice(1), { stdio: 'ignore' })
      : spawn('ip', ['netns', 'exec', inNamespace.netns, ...sshd], { stdio: 'ignore' })
  if (inNamespace == null) await waitForPort(listen, port)
  else await waitForPortInNamespace(inNamespace.netns, listen === '0.0.0.0' ? '127.0.0.1' : listen, port)
  return {
    port,
    hostPublicKey: hostPublicKey.split(' ').slice(0, 2).join(' '),
    clientKeyPath: join(dir, 'client_key'),
    stop: () => stopChild(child),
  }
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode != null || child.signalCode != null) return
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve())
    child.kill('SIGTERM')
    setTimeout(() => child.kill('SIGKILL'), 3_000).unref()
  })
}

export interface TestRelay {
  relay: JumpRelay
  host: string
  port: number
  hostPublicKey: string
  hostKey: string
}

export async function startJumpRelay(
  limits: RelayLimitsInput = {},
  port = 0,
  hostKey?: string,
): Promise<TestRelay> {
  const key = hostKey ?? ssh2.utils.generateKeyPairSync('ed25519').private
  const relay = createJumpRelay({
    hostKey: key,
    host: '127.0.0.1',
    port,
    limits: relayLimits(limits),
    logger: logger('rpib:test:relay'),
  })
  await relay.start()
  const parsed = ssh2.utils.parseKey(key)
  if (parsed instanceof Error) throw parsed
  return {
    relay,
    host: '127.0.0.1',
    port: relay.address().port,
    hostPublicKey: `${parsed.type} ${parsed.getPublicSSH().toString('base64')}`,
    hostKey: key,
  }
}

export async function newIdentity(): Promise<Ed25519PrivateKey> {
  return generateKeyPair('Ed25519')
}

/**
 * An ssh_config for the renter: the relay as jump host (its key pinned) and `*.rpib` targets with
 * the provider's host key pinned. `ssh -J` does not pass `-o`/`-i` to the jump hop, hence a file.
 */
export async function writeRenterSshConfig(
  dir: string,
  opts: {
    relay: { host: string; port: number; hostPublicKey: string }
    targetName: string
    targetHostKey: string
    identityFile: string
  },
): Promise<string> {
  const knownHosts = join(dir, 'known_hosts')
  await writeFile(
    knownHosts,
    `[${opts.relay.host}]:${opts.relay.port} ${opts.relay.hostPublicKey}\n${opts.targetName} ${opts.targetHostKey}\n`,
  )
  const path = join(dir, 'ssh_config')
  await writeFile(
    path,
    [
      `Host ${opts.targetName}`,
      `  User root`,
      `  ProxyJump jump@${opts.relay.host}:${opts.relay.port}`,
      `  IdentityFile ${opts.identityFile}`,
      `Host *`,
      `  UserKnownHostsFile ${knownHosts}`,
      `  GlobalKnownHostsFile /dev/null`,
      `  StrictHostKeyChecking yes`,
      `  BatchMode yes`,
      `  IdentitiesOnly yes`,
      `  ConnectTimeout 10`,
      `  LogLevel ERROR`,
    ].join('\n') + '\n',
  )
  return path
}

export interface ProcResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs a command, collecting output; `input` is written to stdin. */
export function run(
  cmd: string,
  args: string[],
  input?: Buffer | string,
  timeoutMs = 30_000,
): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs })
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

export { readFile }
