import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import * as dagCbor from '@ipld/dag-cbor'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { toString } from 'uint8arrays'
import {
  RECORD_TYPES,
  MAX_TTL_MS,
  ReplayGuard,
  decodeRecord,
  encodeRecord,
  recordId,
  signRecord,
  signedBytes,
  verifyAnyRecord,
  verifyRecord,
} from '../src/index.js'
import type { RecordType, SignedRecord } from '../src/index.js'
import { NOW, peerIdOf, sampleBodies, testKey } from './fixtures.js'

let provider: PrivateKey
let renter: PrivateKey
let bodies: ReturnType<typeof sampleBodies>

before(async () => {
  provider = await testKey(1)
  renter = await testKey(2)
  bodies = sampleBodies(await peerIdOf(provider), await peerIdOf(renter))
})

async function signed<T extends RecordType>(type: T): Promise<SignedRecord<T>> {
  return signRecord(type, bodies[type], provider, { now: NOW })
}

describe('signRecord / verifyRecord', () => {
  for (const type of RECORD_TYPES) {
    it(`signs and verifies a ${type} record, as an object and as bytes`, async () => {
      const record = await signed(type)
      assert.equal(record.signer, peerIdFromPrivateKey(provider).toString())
      assert.equal(record.createdAt, NOW)
      assert.match(record.nonce, /^[0-9a-f]{32}$/)
      const asObject = await verifyRecord(type, JSON.parse(JSON.stringify(record)), { now: NOW })
      assert.equal(asObject.ok, true, asObject.ok ? '' : asObject.error.message)
      const asBytes = await verifyRecord(type, encodeRecord(record), { now: NOW })
      assert.ok(asBytes.ok)
      assert.deepEqual(asBytes.record, record)
      const any = await verifyAnyRecord(encodeRecord(record), { now: NOW })
      assert.ok(any.ok)
      assert.equal(any.record.type, type)
    })
  }

  it('uses a fresh random nonce per record, so identical bodies have distinct ids', async () => {
    const a = await signed('presence')
    const b = await signed('presence')
    assert.notEqual(a.nonce, b.nonce)
    assert.notEqual(recordId(a), recordId(b))
    assert.match(recordId(a), /^[0-9a-f]{64}$/)
  })

  it('refuses to sign an invalid body or with a non-Ed25519 key', async () => {
    await assert.rejects(signRecord('listing', { ...bodies.listing, satsPerHour: 0 }, provider), {
      code: 'ERR_SCHEMA',
    })
    const secp = await generateKeyPair('secp256k1')
    await assert.rejects(signRecord('presence', bodies.presence, secp), { code: 'ERR_SIGNER' })
    await assert.rejects(
      signRecord('presence', bodies.presence, provider, { ttlMs: MAX_TTL_MS.presence + 1 }),
      {
        code: 'ERR_RANGE',
      },
    )
    await assert.rejects(signRecord('presence', bodies.presence, provider, { nonce: 'xyz' }), {
      code: 'ERR_RANGE',
    })
  })

  it('rejects a record of another type with ERR_TYPE', async () => {
    const r = await verifyRecord('presence', await signed('listing'), { now: NOW })
    assert.equal(r.ok ? 'ok' : r.error.code, 'ERR_TYPE')
  })

  it('separates domains: a signature over one type never verifies as another type', async () => {
    // The provider signs these exact fields as a 'listing'; presented as a 'presence' record they must fail.
    const beat = await signed('presence')
    const unsigned = { ...beat, type: 'listing' as const }
    const forged = { ...beat, sig: toString(await provider.sign(signedBytes(unsigned)), 'base64url') }
    const r = await verifyRecord('presence', forged, { now: NOW })
    assert.equal(r.ok ? 'ok' : r.error.code, 'ERR_SIGNATURE')
  })

  it('rejects a valid signature presented under another signer', async () => {
    const record = await signed('listing')
    const other = { ...record, signer: await peerIdOf(renter) }
    const r = await verifyRecord('listing', other, { now: NOW })
    assert.equal(r.ok ? 'ok' : r.error.code, 'ERR_SIGNATURE')
  })

  it('rejects signers that are not canonical Ed25519 peer ids', async () => {
    const secp = await generateKeyPair('secp256k1')
    const record = await signed('presence')
    const secpSigner = { ...record, signer: peerIdFromPrivateKey(secp).toString() }
    const resigned = { ...secpSigner, sig: toString(await secp.sign(signedBytes(secpSigner)), 'base64url') }
    // secp256k1 signatures are not 64 bytes in libp2p (DER); either way it must fail as ERR_SIGNER or schema.
    const r = await verifyRecord('presence', resigned, { now: NOW })
    assert.equal(r.ok, false)
    const sameLength = { ...secpSigner, sig: record.sig }
    const r2 = await verifyRecord('presence', sameLength, { now: NOW })
    assert.equal(r2.ok ? 'ok' : r2.error.code, 'ERR_SIGNER')
    const garbage = await verifyRecord('presence', { ...record, signer: 'not-a-peer-id' }, { now: NOW })
    assert.equal(garbage.ok ? 'ok' : garbage.error.code, 'ERR_SIGNER')
    const cidForm = peerIdFromPrivateKey(provider).toCID().toString()
    const alt = await verifyRecord('presence', { ...record, signer: cidForm }, { now: NOW })
    assert.equal(alt.ok ? 'ok' : alt.error.code, 'ERR_SIGNER')
  })

  it('enforces the validity window with clock skew', async () => {
    const beat = await signed('presence') // ttl 90 s
    const skew = 1000
    assert.ok((await verifyRecord('presence', beat, { now: NOW - skew, clockSkewMs: skew })).ok)
    const early = await verifyRecord('presence', beat, { now: NOW - skew - 1, clockSkewMs: skew })
    assert.equal(early.ok ? 'ok' : early.error.code, 'ERR_NOT_YET_VALID')
    assert.ok((await verifyRecord('presence', beat, { now: beat.expiresAt + skew, clockSkewMs: skew })).ok)
    const late = await verifyRecord('presence', beat, { now: beat.expiresAt + skew + 1, clockSkewMs: skew })
    assert.equal(late.ok ? 'ok' : late.error.code, 'ERR_EXPIRED')
    assert.ok((await verifyRecord('presence', beat, { now: beat.expiresAt + 1e9, ignoreExpiry: true })).ok)
  })

  it('rejects records whose lifetime exceeds the type maximum, even if correctly signed', async () => {
    const beat = await signed('presence')
    const long = { ...beat, expiresAt: beat.createdAt + MAX_TTL_MS.presence + 1 }
    const resigned = { ...long, sig: toString(await provider.sign(signedBytes(long)), 'base64url') }
    const r = await verifyRecord('presence', resigned, { now: NOW })
    assert.equal(r.ok ? 'ok' : r.error.code, 'ERR_SCHEMA')
  })

  it('rejects unknown fields in the envelope and in bodies', async () => {
    const record = await signed('listing')
    const extraEnvelope = await verifyRecord('listing', { ...record, extra: 1 }, { now: NOW })
    assert.equal(extraEnvelope.ok ? 'ok' : extraEnvelope.error.code, 'ERR_SCHEMA')
    const extraBody = await verifyRecord(
      'listing',
      { ...record, body: { ...record.body, extra: 1 } },
      { now: NOW },
    )
    assert.equal(extraBody.ok ? 'ok' : extraBody.error.code, 'ERR_SCHEMA')
  })

  it('never throws, even on objects whose property access throws', async () => {
    const hostile = new Proxy(
      {},
      {
        get: () => {
          throw new Error('boom')
        },
        ownKeys: () => {
          throw new Error('boom')
        },
      },
    )
    for (const input of [hostile, undefined, null, 42, 'listing', [], new Uint8Array(0)]) {
      const r = await verifyRecord('listing', input, { now: NOW })
      assert.equal(r.ok, false)
      const any = await verifyAnyRecord(input, { now: NOW })
      assert.equal(any.ok, false)
    }
  })

  it('rejects an oversized record with ERR_TOO_LARGE before decoding it', async () => {
    const r = await verifyRecord('listing', new Uint8Array(64 * 1024), { now: NOW })
    assert.equal(r.ok ? 'ok' : r.error.code, 'ERR_TOO_LARGE')
  })

  it('detects tampering with every signed field of every record type', async () => {
    let fields = 0
    for (const type of RECORD_TYPES) {
      const record = await signed(type)
      for (const path of leafPaths(record).filter((p) => p[0] !== 'sig')) {
        for (const seed of [0, 1, 5]) {
          const tampered = setAt(record, path, mutateLeaf(getAt(record, path), seed))
          const r = await verifyRecord(type, tampered, { now: NOW })
          assert.equal(r.ok, false, `tampering ${type}.${path.join('.')} went undetected`)
        }
        fields++
      }
    }
    assert.ok(fields > 100)
  })

  it('detects tampering with any signed field (property)', async () => {
    const records = await Promise.all(RECORD_TYPES.map((t) => signed(t)))
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: records.length - 1 }),
        fc.nat(),
        fc.nat(),
        async (ri, pi, di) => {
          const record = records[ri]!
          const paths = leafPaths(record).filter((p) => p[0] !== 'sig')
          const path = paths[pi % paths.length]!
          const tampered = setAt(record, path, mutateLeaf(getAt(record, path), di))
          const r = await verifyRecord(record.type, tampered, { now: NOW })
          assert.equal(r.ok, false, `tampering ${path.join('.')} went undetected`)
        },
      ),
      { numRuns: 400 },
    )
  })

  it('round-trips encode/decode for every record type, deterministically (property)', async () => {
    const records = await Promise.all(RECORD_TYPES.map((t) => signed(t)))
    fc.assert(
      fc.property(fc.constantFrom(...records), (record) => {
        const bytes = encodeRecord(record)
        const decoded = decodeRecord(bytes)
        assert.ok(decoded.ok)
        assert.deepEqual(decoded.value, record)
        // Key order in the source object does not change the bytes.
        const reversed = Object.fromEntries(Object.entries(record).reverse())
        assert.deepEqual(encodeRecord(reversed), bytes)
      }),
    )
  })

  it('refuses non-canonical encodings of a valid record', async () => {
    const record = await signed('presence')
    const bytes = encodeRecord(record)
    assert.ok(decodeRecord(dagCbor.encode(record)).ok)
    // `v: 1` is encoded as the text key "v" (0x61 0x76) then the one-byte integer 0x01. Re-encode the
    // integer in its two-byte form (0x18 0x01): the same value, a different (non-minimal) byte form.
    const at = indexOf(bytes, [0x61, 0x76, 0x01])
    assert.ok(at >= 0)
    const patched = new Uint8Array([...bytes.subarray(0, at + 2), 0x18, 0x01, ...bytes.subarray(at + 3)])
    const r = decodeRecord(patched)
    assert.equal(r.ok ? 'ok' : r.error.code, 'ERR_DECODE')
    const v = await verifyRecord('presence', patched, { now: NOW })
    assert.equal(v.ok ? 'ok' : v.error.code, 'ERR_DECODE')
  })
})

function indexOf(haystack: Uint8Array, needle: number[]): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer
    return i
  }
  return -1
}

describe('ReplayGuard', () => {
  it('accepts a record once inside its window and again only after it expired', async () => {
    const guard = new ReplayGuard({ clockSkewMs: 0 })
    const beat = await signed('presence')
    assert.equal(guard.check(beat, NOW), undefined)
    assert.equal(guard.check(beat, NOW + 1)?.code, 'ERR_REPLAY')
    assert.equal(guard.check(beat, beat.expiresAt + 1), undefined)
  })

  it('stays within its memory bound', async () => {
    const guard = new ReplayGuard({ maxEntries: 50, clockSkewMs: 0 })
    const beat = await signed('presence')
    for (let i = 0; i < 500; i++) guard.check({ ...beat, nonce: i.toString(16).padStart(32, '0') }, NOW)
    assert.ok(guard.size <= 50)
  })
})

type Path = (string | number)[]

function leafPaths(value: unknown, prefix: Path = []): Path[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => leafPaths(v, [...prefix, i]))
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) => leafPaths(v, [...prefix, k]))
  }
  return [prefix]
}

function getAt(value: unknown, path: Path): unknown {
  return path.reduce<unknown>((v, k) => (v as Record<string | number, unknown>)[k], value)
}

function setAt(value: unknown, path: Path, leaf: unknown): unknown {
  if (path.length === 0) return leaf
  const [head, ...rest] = path
  if (Array.isArray(value)) return value.map((v, i) => (i === head ? setAt(v, rest, leaf) : v))
  const obj = value as Record<string, unknown>
  return { ...obj, [head!]: setAt(obj[head as string], rest, leaf) }
}

/** A different value of the same kind (so the change is not caught only by the schema). */
function mutateLeaf(leaf: unknown, seed: number): unknown {
  if (typeof leaf === 'number') return leaf + 1 + (seed % 7)
  if (typeof leaf === 'string') {
    if (leaf.length === 0) return 'x'
    const i = seed % leaf.length
    const c = leaf[i]!
    const replacement = c === 'a' ? 'b' : c === '1' ? '2' : c === 'A' ? 'B' : 'a'
    return leaf.slice(0, i) + replacement + leaf.slice(i + 1)
  }
  if (typeof leaf === 'boolean') return !leaf
  return 'tampered'
}
