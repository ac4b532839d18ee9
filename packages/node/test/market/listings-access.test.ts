import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { OrbitEntry } from '@orbitdb/core'
import { encodeRecord } from '@rpib/protocol'
import {
  ListingLedger,
  checkListingPayload,
  listingsAccessAddress,
  listingsAccessController,
  type RefusalReason,
} from '../../src/market/listings-access.js'
import { signListing, keyOfListing } from '../../src/market/records.js'
import { sampleListing } from './fixtures.js'

const provider = await generateKeyPair('Ed25519')
const stranger = await generateKeyPair('Ed25519')

async function signed(deviceId: string, version: number, key = provider) {
  return signListing({ ...sampleListing(deviceId), version, status: 'listed' }, key)
}

function entry(payload: unknown, clockTime: number, hash = `h${clockTime}`): OrbitEntry {
  return {
    id: 'log',
    hash,
    payload,
    next: [],
    refs: [],
    clock: { id: 'c', time: clockTime },
    identity: 'i',
    key: 'k',
    sig: 's',
    v: 2,
  }
}

describe('listing payload check (shared by writers and readers)', () => {
  test('accepts a PUT of a listing signed by the provider in its key', async () => {
    const { record, bytes } = await signed('pi-1', 1)
    const key = keyOfListing(record)
    const result = await checkListingPayload({ op: 'PUT', key, value: { _id: key, record: bytes } })
    assert.equal(result.ok, true)
  })

  test('refuses DEL, odd shapes, forged signers, tampered fields and oversized records', async () => {
    const { record, bytes } = await signed('pi-1', 1)
    const key = keyOfListing(record)
    const alien = await signed('pi-1', 1, stranger)
    const tampered = encodeRecord({ ...record, body: { ...record.body, satsPerHour: 1 } })
    const cases: Array<[unknown, RefusalReason]> = [
      [{ op: 'DEL', key, value: null }, 'op'],
      [{ op: 'PUT', key, value: { _id: key, record: bytes, extra: 1 } }, 'shape'],
      [{ op: 'PUT', key, value: { _id: 'other/pi-1', record: bytes } }, 'shape'],
      [{ op: 'PUT', key, value: { _id: key, record: 'not bytes' } }, 'shape'],
      [null, 'shape'],
      [{ op: 'PUT', key, value: { _id: key, record: alien.bytes } }, 'key'],
      [{ op: 'PUT', key, value: { _id: key, record: tampered } }, 'record'],
      [{ op: 'PUT', key, value: { _id: key, record: new Uint8Array(9000) } }, 'record'],
      [{ op: 'PUT', key, value: { _id: key, record: new Uint8Array([0xa1, 0x01]) } }, 'record'],
    ]
    for (const [payload, reason] of cases) {
      const result = await checkListingPayload(payload)
      assert.equal(result.ok, false, JSON.stringify(payload)?.slice(0, 80))
      if (!result.ok) assert.equal(result.reason, reason)
    }
  })
})

describe('listings access controller', () => {
  async function controller(maxListingsPerProvider = 2) {
    const ledger = new ListingLedger()
    const refused: RefusalReason[] = []
    const accepted: string[] = []
    const ac = await listingsAccessController({
      networkId: 'sandbox-unit',
      ledger,
      maxListingsPerProvider,
      onRefused: (reason) => refused.push(reason),
      onAccepted: (_e, key) => accepted.push(key),
    })({ orbitdb: { open: null, identity: { id: 'me' }, ipfs: null }, identities: null })
    return { ac, ledger, refused, accepted }
  }

  test('has one deterministic address per network, so every node opens the same store', async () => {
    const { ac } = await controller()
    assert.equal(ac.address, await listingsAccessAddress('sandbox-unit'))
    assert.notEqual(ac.address, await listingsAccessAddress('sandbox-other'))
    assert.deepEqual(ac.write, ['*'])
  })

  test('refuses a replayed older version that tries to win, keeps late honest history', async () => {
    const { ac, ledger, refused } = await controller()
    const v1 = await signed('pi-1', 1)
    const v2 = await signed('pi-1', 2)
    const key = keyOfListing(v1.record)
    const put = (s: typeof v1) => ({ op: 'PUT', key, value: { _id: key, record: s.bytes } })
    assert.equal(await ac.canAppend(entry(put(v2), 5)), true)
    ledger.record(key, v2.record.signer, v2.record, 5)
    // replay: the old version in a newer entry
    assert.equal(await ac.canAppend(entry(put(v1), 6)), false)
    assert.deepEqual(refused, ['stale'])
    // the old version as it was written originally (older clock): history, not a replay
    assert.equal(await ac.canAppend(entry(put(v1), 4)), true)
    // same version, different signature: equivocation
    const v2b = await signed('pi-1', 2)
    assert.equal(await ac.canAppend(entry(put(v2b), 7)), false)
    // a newer version is fine
    const v3 = await signed('pi-1', 3)
    assert.equal(await ac.canAppend(entry(put(v3), 8)), true)
  })

  test('enforces the per-provider listing quota on new keys only', async () => {
    const { ac, ledger, refused } = await controller(2)
    for (const device of ['pi-1', 'pi-2']) {
      const s = await signed(device, 1)
      const key = keyOfListing(s.record)
      assert.equal(
        await ac.canAppend(entry({ op: 'PUT', key, value: { _id: key, record: s.bytes } }, 1)),
        true,
      )
      ledger.record(key, s.record.signer, s.record, 1)
    }
    const third = await signed('pi-3', 1)
    const key3 = keyOfListing(third.record)
    assert.equal(
      await ac.canAppend(entry({ op: 'PUT', key: key3, value: { _id: key3, record: third.bytes } }, 2)),
      false,
    )
    assert.deepEqual(refused, ['quota'])
    const update = await signed('pi-1', 2)
    const key1 = keyOfListing(update.record)
    assert.equal(
      await ac.canAppend(entry({ op: 'PUT', key: key1, value: { _id: key1, record: update.bytes } }, 3)),
      true,
    )
    // another provider is not affected
    const other = await signed('pi-1', 1, stranger)
    const keyO = keyOfListing(other.record)
    assert.equal(
      await ac.canAppend(entry({ op: 'PUT', key: keyO, value: { _id: keyO, record: other.bytes } }, 4)),
      true,
    )
  })
})
