/**
 * Provider runtime bench (`npm run bench -- provider`):
 * - lease provisioned → first successful `ssh true` (OpenSSH client), median of 10;
 * - bulk SSH throughput into a lease vs. OpenSSH's own sshd on loopback, as a ratio.
 * Needs Docker, the rpib images (scripts/build-base-image) and openssh-server.
 */
import { spawn } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { startTestProvider, runProcess, waitFor, type TestProvider } from '../test/containers/harness.js'
import { printTable, type BenchRow } from './table.js'

const ROUNDS = 10
const BULK_BYTES = 256 * 1024 * 1024

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address()
      srv.close(() => resolve(typeof address === 'object' && address != null ? address.port : 0))
    })
  })
}

type Direction = 'upload' | 'download' | 'download-small-writes'

/**
 * Seconds to move `bytes` through `ssh`: upload = `cat >/dev/null` on the far side; download = `dd bs=1M`
 * there; download-small-writes = `head -c` (many small writes, which is what dockerd's attach stream is
 * slowest at, see the `docker exec` reference row).
 */
async function transferSeconds(sshArgs: string[], direction: Direction, bytes: number): Promise<number> {
  const quoted = sshArgs.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')
  const script = {
    upload: `head -c ${bytes} /dev/zero | ssh ${quoted} 'cat >/dev/null'`,
    download: `ssh ${quoted} 'dd if=/dev/zero bs=1M count=${bytes / 1024 / 1024} 2>/dev/null' >/dev/null`,
    'download-small-writes': `ssh ${quoted} 'head -c ${bytes} /dev/zero' >/dev/null`,
  }[direction]
  return timeShell(script)
}

async function timeShell(script: string): Promise<number> {
  const started = performance.now()
  const result = await runProcess('sh', ['-c', script], { timeoutMs: 180_000 })
  if (result.code !== 0) throw new Error(`transfer failed: ${result.stderr}`)
  return (performance.now() - started) / 1000
}

async function startSshd(
  provider: TestProvider,
): Promise<{ port: number; stop: () => void; args: string[] }> {
  const dir = join(provider.dir, 'sshd')
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await mkdir('/run/sshd', { recursive: true })
  const hostKey = join(dir, 'ssh_host_ed25519_key')
  await runProcess('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey])
  await writeFile(join(dir, 'authorized_keys'), provider.renter.publicKey + '\n', { mode: 0o600 })
  const port = await freePort()
  const config = join(dir, 'sshd_config')
  await writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      '',
    ].join('\n'),
  )
  const sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: 'ignore' })
  const knownHosts = join(dir, 'known_hosts')
  const user = process.env.USER ?? 'root'
  const args = [
    '-F',
    'none',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    `UserKnownHostsFile=${knownHosts}`,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'IdentityAgent=none',
    '-o',
    'LogLevel=ERROR',
    '-i',
    provider.renter.path,
    '-p',
    String(port),
    `${user}@127.0.0.1`,
  ]
  await waitFor(
    async () => ((await runProcess('ssh', [...args, 'true'])).code === 0 ? true : undefined),
    10_000,
    'sshd',
  )
  return { port, args, stop: () => sshd.kill() }
}

const provider = await startTestProvider()
const rows: BenchRow[] = []
try {
  // warm-up: network, firewall and image caches
  await provider.addLease('warmup')
  await provider.ssh('warmup', ['true'])

  const provisionMs: number[] = []
  const firstSshMs: number[] = []
  for (let i = 0; i < ROUNDS; i++) {
    const leaseId = `round${i}`
    const t0 = performance.now()
    await provider.addLease(leaseId)
    const t1 = performance.now()
    const result = await provider.ssh(leaseId, ['true'])
    const t2 = performance.now()
    if (result.code !== 0) throw new Error(`ssh true failed: ${result.stderr}`)
    provisionMs.push(t1 - t0)
    firstSshMs.push(t2 - t1)
    await provider.runtime.removeLease(leaseId)
  }
  rows.push({
    metric: `provision a lease (container + loop volume), median of ${ROUNDS}`,
    value: median(provisionMs),
    unit: 'ms',
  })
  rows.push({
    metric: `lease provisioned → first \`ssh true\` OK, median of ${ROUNDS}`,
    value: median(firstSshMs) / 1000,
    unit: 's',
    goal: '≤ 0.6 s',
  })
  rows.push({
    metric: 'provision + first ssh, median',
    value: median(provisionMs.map((p, i) => p + firstSshMs[i]!)) / 1000,
    unit: 's',
  })

  const leaseArgs = [...provider.sshOptions(), '-p', String(provider.server.port), 'warmup@127.0.0.1']
  const sshd = await startSshd(provider)
  try {
    const mb = BULK_BYTES / 1e6
    for (const direction of ['upload', 'download', 'download-small-writes'] as const) {
      // best of 2 each, alternating, so neither side profits from a warmer machine
      const ours: number[] = []
      const theirs: number[] = []
      for (let i = 0; i < 2; i++) {
        ours.push(await transferSeconds(leaseArgs, direction, BULK_BYTES))
        theirs.push(await transferSeconds(sshd.args, direction, BULK_BYTES))
      }
      const oursMBps = mb / Math.min(...ours)
      const sshdMBps = mb / Math.min(...theirs)
      rows.push({
        metric: `${direction} 256 MB into a lease (ssh2 → docker exec)`,
        value: oursMBps,
        unit: 'MB/s',
      })
      rows.push({ metric: `${direction} 256 MB, OpenSSH sshd on loopback`, value: sshdMBps, unit: 'MB/s' })
      rows.push({
        metric: `${direction} ratio rpib / sshd`,
        value: oursMBps / sshdMBps,
        unit: '×',
        goal: direction === 'download-small-writes' ? undefined : '≥ 0.9',
      })
    }
    const container = (await provider.runtime.getLease('warmup'))?.containerName ?? ''
    const floor = await timeShell(`docker exec ${container} head -c ${BULK_BYTES} /dev/zero >/dev/null`)
    rows.push({
      metric: 'reference: `docker exec head -c 256M` alone (no SSH)',
      value: mb / floor,
      unit: 'MB/s',
    })
  } finally {
    sshd.stop()
  }
} finally {
  await provider.close()
}
printTable('provider runtime (Docker lease + embedded SSH server)', rows)
