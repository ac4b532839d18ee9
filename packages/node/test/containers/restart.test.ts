import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, it } from 'node:test'
import Docker from 'dockerode'
import { createDockerRuntime } from '../../src/containers/index.js'
import type { ReconcileReport } from '../../src/containers/types.js'
import { BUSYBOX_IMAGE, dockerSkipReason, makeRenterKey, runProcess, uniqueName } from './harness.js'

const skip = await dockerSkipReason()
const FIXTURE = fileURLToPath(new URL('./fixtures/provider-daemon.js', import.meta.url))

interface Ready {
  port: number
  fingerprint: string
  report: ReconcileReport
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

function startDaemon(dataDir: string): Promise<{ child: ChildProcess; ready: Ready }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FIXTURE, dataDir], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`provider daemon did not become ready: ${err}`))
    }, 30_000)
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d))
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (line != null && out.includes('\n')) {
        clearTimeout(timer)
        resolve({ child, ready: JSON.parse(line) as Ready })
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`provider daemon exited with ${code}: ${err}`))
    })
  })
}

function kill9(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode != null || child.signalCode != null) return resolve()
    child.removeAllListeners('exit')
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })
}

describe('provider restart (daemon killed mid-lease)', { skip }, () => {
  it('keeps the lease, its files and SSH across a SIGKILL, and cleans up an expired lease on reconcile', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'rpib-restart-'))
    const networkName = uniqueName()
    const docker = new Docker()
    let daemon: ChildProcess | undefined
    try {
      const renter = await makeRenterKey(dataDir)
      const port = await freePort()
      const leases = [
        {
          leaseId: 'keep',
          image: BUSYBOX_IMAGE,
          expiresAt: Date.now() + 3_600_000,
          authorizedKeys: [renter.publicKey],
        },
        {
          leaseId: 'doomed',
          image: BUSYBOX_IMAGE,
          expiresAt: Date.now() + 3_600_000,
          authorizedKeys: [renter.publicKey],
        },
      ]
      const writeConfig = (): Promise<void> =>
        writeFile(join(dataDir, 'provider.json'), JSON.stringify({ networkName, port, leases }))
      await writeConfig()

      const first = await startDaemon(dataDir)
      daemon = first.child
      const knownHosts = join(dataDir, 'known_hosts')
      await writeFile(knownHosts, '')
      const ssh = async (
        leaseId: string,
        command: string,
      ): Promise<{ code: number | null; stdout: string; stderr: string }> => {
        // pin the host key by fingerprint: the known_hosts entry is rebuilt from what the daemon printed
        const keyscan = await runProcess('ssh-keyscan', ['-t', 'ed25519', '-p', String(port), '127.0.0.1'])
        await writeFile(knownHosts, keyscan.stdout)
        const fp = await runProcess('ssh-keygen', ['-lf', knownHosts])
        assert.match(fp.stdout, new RegExp(first.ready.fingerprint.replace(/[+/]/g, (c) => `\\${c}`)))
        return runProcess('ssh', [
          '-F',
          'none',
          '-o',
          'BatchMode=yes',
          '-o',
          'StrictHostKeyChecking=yes',
          '-o',
          `UserKnownHostsFile=${knownHosts}`,
          '-o',
          'IdentitiesOnly=yes',
          '-o',
          'IdentityAgent=none',
          '-i',
          renter.path,
          '-p',
          String(port),
          `${leaseId}@127.0.0.1`,
          command,
        ])
      }
      const wrote = await ssh('keep', 'echo precious > /root/data && cat /root/data')
      assert.equal(wrote.code, 0, wrote.stderr)
      const runtime = createDockerRuntime({ networkName, stateDir: join(dataDir, 'containers') })
      const before = await runtime.getLease('keep')
      assert.equal(before?.state, 'running')

      // the daemon dies without any cleanup; the containers live on
      await kill9(daemon)
      assert.equal((await runtime.getLease('keep'))?.state, 'running')

      // time passes: 'doomed' has expired by the time the daemon comes back
      leases[1] = { ...leases[1]!, expiresAt: Date.now() - 1_000 }
      await writeConfig()
      const second = await startDaemon(dataDir)
      daemon = second.child
      assert.equal(second.ready.fingerprint, first.ready.fingerprint, 'the host key persists')
      assert.deepEqual(second.ready.report.running, ['keep'])
      assert.deepEqual(
        second.ready.report.ended.map((e) => [e.leaseId, e.cause]),
        [['doomed', 'expired']],
      )
      const after = await runtime.listLeases()
      assert.deepEqual(
        after.map((l) => l.leaseId),
        ['keep'],
      )
      assert.equal(after[0]?.containerId, before?.containerId, 'no second container for the lease')
      const read = await ssh('keep', 'cat /root/data')
      assert.equal(read.code, 0, read.stderr)
      assert.equal(read.stdout, 'precious\n')
      const volumes = await docker.listVolumes({ filters: { label: [`io.rpib.namespace=${networkName}`] } })
      assert.deepEqual(
        volumes.Volumes?.map((v) => v.Name),
        [`${networkName}-keep-home`],
      )

      // the device itself restarted: the container is stopped; reconcile starts it with its files
      await kill9(daemon)
      await docker.getContainer(after[0]!.containerId).stop({ t: 0 })
      const third = await startDaemon(dataDir)
      daemon = third.child
      assert.deepEqual(third.ready.report.restarted, ['keep'])
      const reread = await ssh('keep', 'cat /root/data')
      assert.equal(reread.stdout, 'precious\n')
    } finally {
      if (daemon != null) await kill9(daemon)
      const runtime = createDockerRuntime({ networkName, stateDir: join(dataDir, 'containers') })
      await runtime.reconcile(Date.now(), [])
      await runtime.removeNetwork()
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})
