import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import Docker from 'dockerode'
import {
  createDockerRuntime,
  createLeaseReaper,
  DockerUnavailableError,
  ImageNotAvailableError,
  InvalidLeaseSpecError,
  type DockerRuntime,
  type LeaseEnded,
} from '../../src/containers/index.js'
import {
  BUSYBOX_IMAGE,
  DEBIAN_IMAGE,
  dockerSkipReason,
  SMALL_RESOURCES,
  uniqueName,
  waitFor,
} from './harness.js'

const skip = await dockerSkipReason([BUSYBOX_IMAGE, DEBIAN_IMAGE])

describe('docker container runtime', { skip }, () => {
  let runtime: DockerRuntime
  let dir: string
  const spec = (leaseId: string, expiresAt = Date.now() + 3_600_000) => ({
    leaseId,
    image: BUSYBOX_IMAGE,
    expiresAt,
    resources: SMALL_RESOURCES,
  })
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rpib-runtime-'))
    runtime = createDockerRuntime({ networkName: uniqueName(), stateDir: dir })
  })
  after(async () => {
    await runtime.reconcile(Date.now(), [])
    await runtime.removeNetwork()
    await rm(dir, { recursive: true, force: true })
  })

  it('creates one container per lease even when asked concurrently and again', async () => {
    const results = await Promise.all([
      runtime.createLease(spec('twice')),
      runtime.createLease(spec('twice')),
    ])
    const again = await runtime.createLease(spec('twice'))
    assert.equal(results[0].containerId, results[1].containerId)
    assert.equal(again.containerId, results[0].containerId)
    assert.equal(again.state, 'running')
    assert.ok(again.containerName.startsWith(`${runtime.namespace}-`))
    const listed = (await runtime.listLeases()).filter((l) => l.leaseId === 'twice')
    assert.equal(listed.length, 1)
  })

  it('labels the container with the lease id and expiry', async () => {
    const expiresAt = Date.now() + 7_200_000
    const lease = await runtime.createLease(spec('labelled', expiresAt))
    const info = await new Docker().getContainer(lease.containerId).inspect()
    assert.equal(info.Config.Labels['io.rpib.lease-id'], 'labelled')
    assert.equal(info.Config.Labels['io.rpib.expires-at'], String(expiresAt))
    assert.equal(lease.expiresAt, expiresAt)
  })

  it('rejects an invalid lease spec with a typed error', async () => {
    await assert.rejects(runtime.createLease({ ...spec('Bad Id!') }), InvalidLeaseSpecError)
    await assert.rejects(
      runtime.createLease({ ...spec('nomem'), resources: { ...SMALL_RESOURCES, memoryMb: 0 } }),
      InvalidLeaseSpecError,
    )
  })

  it('refuses an image the device does not have', async () => {
    await assert.rejects(
      runtime.createLease({ ...spec('noimage'), image: 'rpib/does-not-exist:1' }),
      ImageNotAvailableError,
    )
    assert.equal(await runtime.getLease('noimage'), undefined)
  })

  it('lists the local rpib images it can offer', async () => {
    const refs = (await runtime.listImages()).map((i) => i.ref)
    assert.ok(refs.includes(BUSYBOX_IMAGE))
    assert.ok(refs.includes(DEBIAN_IMAGE))
  })

  it('reconcile removes expired leases and orphans and keeps active ones', async () => {
    await runtime.createLease(spec('active'))
    await runtime.createLease(spec('stale'))
    await runtime.createLease(spec('orphan'))
    const now = Date.now()
    const report = await runtime.reconcile(now, [
      { leaseId: 'active', expiresAt: now + 60_000 },
      { leaseId: 'stale', expiresAt: now - 1 },
      { leaseId: 'twice', expiresAt: now + 60_000 },
      { leaseId: 'labelled', expiresAt: now + 60_000 },
    ])
    assert.deepEqual(report.ended.map((e) => [e.leaseId, e.cause]).sort(), [
      ['orphan', 'orphan'],
      ['stale', 'expired'],
    ])
    assert.deepEqual(report.running.sort(), ['active', 'labelled', 'twice'])
    assert.deepEqual((await runtime.listLeases()).map((l) => l.leaseId).sort(), [
      'active',
      'labelled',
      'twice',
    ])
  })

  it('the reaper removes a lease when it expires and reports its end', async () => {
    await runtime.createLease(spec('reaped'))
    // the rental flow's expiry wins over the label (as after an extension, here a shortening)
    const expiresAt = Date.now() + 3_000
    const known = [
      { leaseId: 'reaped', expiresAt },
      { leaseId: 'active', expiresAt: Date.now() + 60_000 },
      { leaseId: 'twice', expiresAt: Date.now() + 60_000 },
      { leaseId: 'labelled', expiresAt: Date.now() + 60_000 },
    ]
    const ended: LeaseEnded[] = []
    const reaper = createLeaseReaper({
      runtime,
      knownLeases: () => known,
      onLeaseEnded: (e) => void ended.push(e),
      intervalMs: 100,
    })
    try {
      const first = await reaper.start()
      assert.ok(first.running.includes('reaped'), 'still running before its expiry')
      await waitFor(async () => (ended.length > 0 ? true : undefined), 10_000, 'the lease end')
      assert.deepEqual(
        ended.map((e) => [e.leaseId, e.cause]),
        [['reaped', 'expired']],
      )
      assert.ok(ended[0]!.endedAt >= expiresAt)
      assert.equal(await runtime.getLease('reaped'), undefined)
    } finally {
      await reaper.stop()
    }
  })

  it('removeLease removes the container and its volume and reports the end', async () => {
    const ended = await runtime.removeLease('active', 'expired')
    assert.equal(ended?.leaseId, 'active')
    assert.equal(ended?.cause, 'expired')
    assert.equal(await runtime.getLease('active'), undefined)
    await assert.rejects(new Docker().getVolume(`${runtime.namespace}-active-home`).inspect())
    assert.equal(await runtime.removeLease('active'), undefined)
  })
})

describe('docker container runtime without an engine', () => {
  it('fails with a typed, actionable error', async () => {
    const runtime = createDockerRuntime({
      networkName: 'rpib-nowhere',
      docker: new Docker({ socketPath: '/nonexistent/docker.sock' }),
    })
    await assert.rejects(runtime.ensureNetwork(), (err: unknown) => {
      assert.ok(err instanceof DockerUnavailableError)
      assert.equal(err.code, 'ERR_DOCKER_UNAVAILABLE')
      assert.match(err.message, /start dockerd/)
      return true
    })
  })
})
