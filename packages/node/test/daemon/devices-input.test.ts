/**
 * `rpib device add` flags → API body, and the earnings arithmetic (late payments, refunds pending).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { addBody, deviceIdFromName, parseCpus, parseSizeMb } from '../../src/cli/device.js'
import { AddDeviceBodySchema } from '../../src/daemon/device-routes.js'
import { deviceEarnings } from '../../src/daemon/provider-service.js'
import type { ProviderRental } from '../../src/rentals/rental-store.js'
import { UsageError } from '../../src/errors.js'

test('sizes and CPU counts parse to the listing units; nonsense is a usage error', () => {
  assert.equal(parseSizeMb('512m', '--memory'), 512)
  assert.equal(parseSizeMb('2g', '--disk'), 2048)
  assert.equal(parseSizeMb('1.5G', '--disk'), 1536)
  assert.equal(parseSizeMb('300', '--memory'), 300)
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 100_000 }), (n) => parseSizeMb(`${n}g`, '--disk') === n * 1024),
  )
  for (const bad of ['', 'lots', '-1m', '2x', '0m', '1..5g'])
    assert.throws(() => parseSizeMb(bad, '--memory'), UsageError, bad)
  assert.equal(parseCpus('1'), 1000)
  assert.equal(parseCpus('0.5'), 500)
  for (const bad of ['0', 'two', '1.2345', '-1']) assert.throws(() => parseCpus(bad), UsageError, bad)
})

test('device ids come from names; flags become a body the daemon accepts', () => {
  assert.equal(deviceIdFromName('Kitchen Pi 4!'), 'kitchen-pi-4')
  assert.equal(deviceIdFromName('  --Old   Laptop--'), 'old-laptop')
  assert.throws(() => deviceIdFromName('★★★'), /pass --id/)
  const body = addBody({
    name: 'Kitchen Pi',
    price: '3000',
    image: ['rpib/busybox:latest', 'rpib/base:bookworm'],
    memory: '64m',
    cpus: '0.5',
    maxHours: '4',
    publish: false,
  })
  assert.deepEqual(AddDeviceBodySchema.parse(body), {
    id: 'kitchen-pi',
    name: 'Kitchen Pi',
    description: '',
    satsPerHour: 3000,
    minHours: 1,
    maxHours: 4,
    slots: 1,
    images: ['rpib/busybox:latest', 'rpib/base:bookworm'],
    limits: { cpus: 500, memoryMb: 64, diskMb: 2048, pidsLimit: 256 },
    publish: false,
  })
  assert.throws(
    () => addBody({ name: 'x', price: '1.5', image: [], publish: true }),
    /--price must be a whole/,
  )
  assert.throws(() => addBody({ name: 'x', price: '5', slots: '0', image: [], publish: true }), /--slots/)
})

test('earnings: paid − refunded per device, late payments counted, unsent refunds pending', async () => {
  const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  let n = 0
  const rental = (
    deviceId: string,
    state: { paidSats: number; refundDueSats?: number },
    refunds: number[],
    leased: boolean,
  ): ProviderRental =>
    ({
      offerId: String(n++).padStart(64, '0'),
      invoiceId: String(n).padStart(32, '0'),
      request: { body: { listingKey: `${peer}/${deviceId}` } },
      state: { status: 'ended', ...state },
      refunds: refunds.map((amountSats) => ({ txid: 'f'.repeat(64), amountSats, at: 0 })),
      ...(leased ? { lease: {} } : {}),
    }) as unknown as ProviderRental
  const late = rental('pi', { paidSats: 0, refundDueSats: 0 }, [700], false)
  const rentals = [
    rental('pi', { paidSats: 6000 }, [], true),
    rental('pi', { paidSats: 4000, refundDueSats: 1500 }, [1000], true),
    late,
    rental('other', { paidSats: 999 }, [], true),
  ]
  const received = (r: ProviderRental) => (r === late ? 700 : 0)
  assert.deepEqual(deviceEarnings('pi', rentals, received), {
    deviceId: 'pi',
    leasesServed: 2,
    paidSats: 10_700,
    refundedSats: 1700,
    earnedSats: 9000,
    pendingRefundSats: 500,
  })
  assert.equal(deviceEarnings('none', rentals, received).paidSats, 0)
})
