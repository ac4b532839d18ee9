import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import Docker from 'dockerode'
import type { LeaseExec } from '../../src/containers/types.js'
import { dockerSkipReason, startTestProvider, type TestProvider } from './harness.js'

const skip = await dockerSkipReason()

async function collect(
  exec: LeaseExec,
): Promise<{ code: number; signal: string | undefined; out: string; err: string }> {
  let out = ''
  let err = ''
  exec.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
  exec.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d))
  exec.stdin.end()
  const exit = await exec.exited()
  return { ...exit, out, err }
}

describe('lease container limits and hardening', { skip }, () => {
  let provider: TestProvider
  const docker = new Docker()
  before(async () => {
    provider = await startTestProvider()
    await Promise.all([
      provider.addLease('limits', { resources: { cpus: 500, memoryMb: 64, diskMb: 16, pidsLimit: 32 } }),
      provider.addLease('neighbour'),
    ])
  })
  after(async () => {
    await provider?.close()
  })
  const run = async (leaseId: string, script: string): Promise<Awaited<ReturnType<typeof collect>>> =>
    collect(await provider.runtime.exec(leaseId, { cmd: ['/bin/sh', '-c', script], tty: false }))

  it('OOM-kills a memory hog inside the container; the container and the runtime live on', async () => {
    // dd allocates its whole block in memory: 200 MB against a 64 MB limit (no swap)
    const hog = await run('limits', 'dd if=/dev/zero of=/dev/null bs=200M count=1')
    assert.equal(hog.code, 137)
    assert.equal(hog.signal, 'KILL')
    const alive = await run('limits', 'echo still here')
    assert.equal(alive.out, 'still here\n')
    assert.equal((await provider.runtime.getLease('limits'))?.state, 'running')
  })

  it('stops a fork bomb at the pids limit', async () => {
    const lease = await provider.runtime.getLease('limits')
    assert.ok(lease != null)
    const bomb = await run(
      'limits',
      'i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done; echo spawned',
    )
    assert.match(bomb.err, /fork|Resource temporarily unavailable/i)
    const stats = await docker.getContainer(lease.containerId).stats({ stream: false })
    const pids = (stats as unknown as { pids_stats: { current: number } }).pids_stats.current
    assert.ok(pids <= 32, `pids ${pids} must not exceed the limit`)
    // the renter can clean up (even killing every sleep, the keepalive's included) and the lease lives on
    await run('limits', 'killall sleep')
    assert.equal((await provider.runtime.getLease('limits'))?.state, 'running')
    assert.equal((await run('limits', 'echo recovered')).out, 'recovered\n')
  })

  it('starts a container the renter stopped when the next session opens', async () => {
    await run('neighbour', 'kill -9 -1')
    const lease = await provider.runtime.getLease('neighbour')
    assert.ok(lease != null)
    await docker.getContainer(lease.containerId).wait()
    assert.equal((await run('neighbour', 'echo back')).out, 'back\n')
  })

  it('fails writes past the disk limit of the lease volume', async () => {
    const result = await run(
      'limits',
      'dd if=/dev/zero of=/root/fill bs=1M count=64 2>&1; status=$?; rm -f /root/fill; exit $status',
    )
    assert.notEqual(result.code, 0)
    assert.match(result.out, /No space left on device/)
  })

  it('applies the CPU, memory and pids limits and the hardening to the container', async () => {
    const lease = await provider.runtime.getLease('limits')
    assert.ok(lease != null)
    const info = await docker.getContainer(lease.containerId).inspect()
    assert.equal(info.HostConfig.NanoCpus, 500_000_000)
    assert.equal(info.HostConfig.Memory, 64 * 1024 * 1024)
    assert.equal(info.HostConfig.MemorySwap, 64 * 1024 * 1024)
    assert.equal(info.HostConfig.PidsLimit, 32)
    assert.deepEqual(info.HostConfig.CapDrop, ['ALL'])
    assert.deepEqual(info.HostConfig.SecurityOpt, ['no-new-privileges'])
    assert.equal(info.HostConfig.Privileged, false)
    // the only mount is the lease's own volume: no host path, no Docker socket
    assert.deepEqual(
      info.Mounts.map((m) => [m.Type, m.Destination]),
      [['volume', '/root']],
    )
    const inside = await run(
      'limits',
      'grep -E "^(CapEff|NoNewPrivs)" /proc/self/status; ls /var/run/docker.sock 2>&1',
    )
    // CHOWN, DAC_OVERRIDE, FOWNER, KILL, SETGID, SETUID
    assert.match(inside.out, /CapEff:\s+00000000000000eb/)
    assert.match(inside.out, /NoNewPrivs:\s+1/)
    assert.match(inside.out, /No such file/)
  })

  it("keeps two leases from seeing each other's processes", async () => {
    await run('neighbour', 'sleep 3131 >/dev/null 2>&1 &')
    const own = await run('neighbour', 'ps -o args')
    assert.match(own.out, /sleep 3131/)
    const other = await run('limits', 'ps -o args')
    assert.doesNotMatch(other.out, /sleep 3131/)
  })
})
