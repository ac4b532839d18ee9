import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import Docker from 'dockerode'
import ssh2 from 'ssh2'
import { createDockerRuntime, type DockerRuntime } from '../../src/containers/index.js'
import type { LeaseResources, LeaseSpec } from '../../src/containers/types.js'
import { createSshServer, sshFingerprint, type LeaseAccess, type SshServer } from '../../src/ssh/index.js'

const { Client } = ssh2
type Client = InstanceType<typeof Client>

const execFileAsync = promisify(execFile)

export const BUSYBOX_IMAGE = 'rpib/busybox:latest'
export const DEBIAN_IMAGE = 'rpib/base:bookworm'

export const SMALL_RESOURCES: LeaseResources = { cpus: 1000, memoryMb: 128, diskMb: 64, pidsLimit: 64 }

/**
 * Docker is required: in CI (CI=true) its absence (or a missing base image) fails the run; elsewhere the
 * returned reason skips the suite. Images come from scripts/build-base-image.
 */
export async function dockerSkipReason(images: string[] = [BUSYBOX_IMAGE]): Promise<string | undefined> {
  const docker = new Docker()
  let problem: string | undefined
  try {
    await docker.ping()
    for (const image of images) {
      try {
        await docker.getImage(image).inspect()
      } catch {
        problem = `image ${image} is missing (run scripts/build-base-image)`
      }
    }
  } catch (err) {
    problem = `Docker engine not reachable: ${(err as Error).message}`
  }
  if (problem != null && process.env.CI === 'true') throw new Error(`${problem}; CI requires Docker`)
  return problem
}

export function uniqueName(prefix = 'rpib-t'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`
}

/**
 * Removes what a provider daemon under test leaves on purpose (its paid leases survive a restart): the
 * lease containers, volumes and firewall rules of its Docker network, and the network itself.
 */
export async function removeProviderLeases(networkName: string, stateDir: string): Promise<void> {
  const runtime = createDockerRuntime({ networkName, stateDir })
  await runtime.reconcile(Date.now(), [])
  await runtime.removeNetwork()
}

export interface RenterKey {
  path: string
  publicKey: string
}

export async function makeRenterKey(dir: string, name = 'id_ed25519'): Promise<RenterKey> {
  const path = join(dir, name)
  await execFileAsync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path])
  return { path, publicKey: (await readFile(`${path}.pub`, 'utf8')).trim() }
}

/** OpenSSH client options for tests: no user config, no agent, the host key pinned from `knownHostsPath`. */
export function opensshClientOptions(knownHostsPath: string, keyPath: string): string[] {
  return [
    '-F',
    'none',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `UserKnownHostsFile=${knownHostsPath}`,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'IdentityAgent=none',
    '-o',
    'LogLevel=ERROR',
    '-i',
    keyPath,
  ]
}

export interface ProcResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Runs a command (OpenSSH client tools) with a deadline; never through a shell unless asked. */
export function runProcess(
  cmd: string,
  args: string[],
  opts: { input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 30_000,
      env: opts.env ?? process.env,
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
    child.stdin.on('error', () => undefined)
    child.stdin.end(opts.input ?? '')
  })
}

export interface TestProvider {
  dir: string
  runtime: DockerRuntime
  server: SshServer
  leases: Map<string, LeaseAccess>
  renter: RenterKey
  knownHostsPath: string
  /** Provisions a container and registers its access entry. */
  addLease(leaseId: string, opts?: Partial<LeaseSpec> & { keys?: string[] }): Promise<void>
  /** Common OpenSSH options (-F none, pinned host key, only our key, batch mode). */
  sshOptions(key?: string): string[]
  ssh(
    leaseId: string,
    command: string[],
    opts?: { input?: string | Buffer; key?: string; extra?: string[] },
  ): Promise<ProcResult>
  close(): Promise<void>
}

export async function startTestProvider(
  opts: { expiryCheckIntervalMs?: number; expiryWarningsMs?: number[]; maxFailures?: number } = {},
): Promise<TestProvider> {
  const dir = await mkdtemp(join(tmpdir(), 'rpib-provider-'))
  const networkName = uniqueName()
  const runtime = createDockerRuntime({ networkName, stateDir: join(dir, 'state') })
  const leases = new Map<string, LeaseAccess>()
  const server = createSshServer({
    hostKeyPath: join(dir, 'ssh_host_ed25519_key'),
    runtime,
    lookupLease: (user) => leases.get(user),
    expiryCheckIntervalMs: opts.expiryCheckIntervalMs,
    expiryWarningsMs: opts.expiryWarningsMs,
    rateLimit: { maxFailures: opts.maxFailures ?? 50 },
  })
  await server.start()
  const renter = await makeRenterKey(dir)
  const knownHostsPath = join(dir, 'known_hosts')
  await writeFile(knownHostsPath, `[127.0.0.1]:${server.port} ${server.hostPublicKey}\n`)

  const sshOptions = (key = renter.path): string[] => opensshClientOptions(knownHostsPath, key)
  return {
    dir,
    runtime,
    server,
    leases,
    renter,
    knownHostsPath,
    sshOptions,
    async addLease(leaseId, spec = {}) {
      const expiresAt = spec.expiresAt ?? Date.now() + 3_600_000
      await runtime.createLease({
        leaseId,
        image: spec.image ?? BUSYBOX_IMAGE,
        expiresAt,
        resources: spec.resources ?? SMALL_RESOURCES,
      })
      leases.set(leaseId, { leaseId, expiresAt, authorizedKeys: spec.keys ?? [renter.publicKey] })
    },
    ssh(leaseId, command, o = {}) {
      return runProcess(
        'ssh',
        [
          ...sshOptions(o.key),
          ...(o.extra ?? []),
          '-p',
          String(server.port),
          `${leaseId}@127.0.0.1`,
          ...command,
        ],
        { input: o.input },
      )
    },
    async close() {
      await server.stop()
      for (const lease of await runtime.listLeases().catch(() => [])) await runtime.removeLease(lease.leaseId)
      await runtime.reconcile(Date.now(), [])
      await runtime.removeNetwork()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** An ssh2 client logged into a lease (for what the OpenSSH CLI cannot drive: resizes, signals). */
export async function connectSsh2(
  provider: TestProvider,
  leaseId: string,
  keyPath = provider.renter.path,
): Promise<Client> {
  const privateKey = await readFile(keyPath)
  const client = new Client()
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve())
    client.once('error', reject)
    client.connect({
      host: '127.0.0.1',
      port: provider.server.port,
      username: leaseId,
      privateKey,
      readyTimeout: 10_000,
      hostVerifier: (key: Buffer) => sshFingerprint(key) === provider.server.hostKeyFingerprint,
    })
  })
  return client
}

/** Polls `check` until it returns a value (not undefined) or the deadline passes. */
export async function waitFor<T>(
  check: () => Promise<T | undefined>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (let wait = 20; ; wait = Math.min(wait * 2, 250)) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, wait))
  }
}
