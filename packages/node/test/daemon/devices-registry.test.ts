/**
 * The provider's device registry (`<home>/provider/devices.json`): persisted privately, config devices
 * imported once (so a removal sticks), typed errors for duplicates, unknown ids, the per-provider limit
 * and a damaged file.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ApiError } from '../../src/api/problem.js'
import { MAX_DEVICES, openDeviceRegistry, type DeviceSpec } from '../../src/daemon/device-registry.js'
import { RpibError } from '../../src/errors.js'

const spec = (id: string, satsPerHour = 100): DeviceSpec => ({
  id,
  name: `Device ${id}`,
  description: '',
  satsPerHour,
  minHours: 1,
  maxHours: 720,
  slots: 1,
  images: ['rpib/base:bookworm'],
  limits: { cpus: 1000, memoryMb: 512, diskMb: 2048, pidsLimit: 256 },
})

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'rpib-registry-'))
  try {
    await body(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

test('config devices are imported once, published; a removal sticks across restarts', () =>
  withDir(async (dir) => {
    let clock = 1_000
    const now = () => clock++
    const first = await openDeviceRegistry({ dir, seed: [spec('a'), spec('b')], now })
    assert.deepEqual(
      first.list().map((d) => [d.id, d.published, d.createdAt]),
      [
        ['a', true, 1_000],
        ['b', true, 1_001],
      ],
    )
    assert.equal((await stat(first.path)).mode & 0o777, 0o600)
    await first.remove('a')
    await first.setPublished('b', false)

    const again = await openDeviceRegistry({ dir, seed: [spec('a'), spec('b', 999), spec('c')], now })
    assert.deepEqual(
      again.list().map((d) => [d.id, d.published, d.satsPerHour]),
      [
        ['b', false, 100],
        ['c', true, 100],
      ],
      'a stays removed, b keeps the owner’s choices, c is new in the config',
    )
  }))

test('add, duplicate ids, unknown ids and the device limit give typed errors and change nothing', () =>
  withDir(async (dir) => {
    const reg = await openDeviceRegistry({ dir })
    const added = await reg.add(spec('pi'), false)
    assert.equal(added.published, false)
    await assert.rejects(
      reg.add(spec('pi', 5), true),
      (err: unknown) => err instanceof ApiError && err.status === 409 && err.code === 'ERR_DEVICE_EXISTS',
    )
    await assert.rejects(
      reg.setPublished('nope', true),
      (err: unknown) => err instanceof ApiError && err.status === 404 && /no device nope/.test(err.message),
    )
    await assert.rejects(reg.remove('nope'), { code: 'ERR_DEVICE_UNKNOWN' })
    for (let i = 1; i < MAX_DEVICES; i++) await reg.add(spec(`d${i}`), true)
    await assert.rejects(reg.add(spec('one-too-many'), true), { code: 'ERR_DEVICE_LIMIT' })
    const reopened = await openDeviceRegistry({ dir })
    assert.equal(reopened.list().length, MAX_DEVICES)
    assert.deepEqual(reopened.get('pi'), added)
  }))

test('a damaged registry file is refused with its path, never overwritten', () =>
  withDir(async (dir) => {
    const path = join(dir, 'devices.json')
    await writeFile(path, '{ not json')
    await assert.rejects(
      openDeviceRegistry({ dir, seed: [spec('a')] }),
      (err: unknown) =>
        err instanceof RpibError && err.code === 'ERR_DEVICES_CORRUPT' && err.message.includes(path),
    )
    assert.equal(await readFile(path, 'utf8'), '{ not json')
    await writeFile(path, JSON.stringify({ version: 1, devices: [{ id: 'BAD ID' }] }))
    await assert.rejects(openDeviceRegistry({ dir }), /devices\.json is invalid at devices\.0\./)
  }))
