/**
 * Fuzz: ≥ 10,000 random and mutated byte strings (and hostile decoded values) go through every decoder
 * and verifier. The only outcome allowed is `{ ok: false }` with a typed ProtocolError — never a throw,
 * never an accepted record.
 */
import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  ProtocolError,
  RECORD_TYPES,
  canonicalEncode,
  decodeRecord,
  encodeRecord,
  signRecord,
  verifyAnyRecord,
  verifyRecord,
} from '../src/index.js'
import type { ProtocolErrorCode, SignedRecord } from '../src/index.js'
import { NOW, peerIdOf, sampleBodies, testKey } from './fixtures.js'

const VALIDATION_CODES = new Set<ProtocolErrorCode>([
  'ERR_DECODE',
  'ERR_TOO_LARGE',
  'ERR_SCHEMA',
  'ERR_TYPE',
  'ERR_SIGNER',
  'ERR_SIGNATURE',
  'ERR_EXPIRED',
  'ERR_NOT_YET_VALID',
])

let records: SignedRecord[]
let encoded: Uint8Array[]

before(async () => {
  const provider = await testKey(1)
  const bodies = sampleBodies(await peerIdOf(provider), await peerIdOf(await testKey(2)))
  records = await Promise.all(RECORD_TYPES.map((t) => signRecord(t, bodies[t], provider, { now: NOW })))
  encoded = records.map((r) => encodeRecord(r))
})

function assertRejected(result: { ok: boolean; error?: unknown }, what: string): void {
  assert.equal(result.ok, false, `${what} was accepted`)
  assert.ok(result.error instanceof ProtocolError, `${what}: error is not a ProtocolError`)
  assert.ok(VALIDATION_CODES.has(result.error.code), `${what}: unexpected code ${result.error.code}`)
  seenCodes.add(result.error.code)
}

const seenCodes = new Set<ProtocolErrorCode>()

let checked = 0
async function checkBytes(bytes: Uint8Array): Promise<void> {
  checked++
  const decoded = decodeRecord(bytes)
  if (decoded.ok) assert.equal(typeof decoded.value, 'object')
  else assertRejected(decoded, 'decodeRecord')
  assertRejected(await verifyAnyRecord(bytes, { now: NOW }), 'verifyAnyRecord')
  for (const type of RECORD_TYPES)
    assertRejected(await verifyRecord(type, bytes, { now: NOW }), `verifyRecord(${type})`)
}

/** A mutation of a valid encoding that is guaranteed to differ from it. */
const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), pos: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), pos: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), pos: fc.nat() }),
  fc.record({
    kind: fc.constant('insert' as const),
    pos: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
  fc.record({ kind: fc.constant('delete' as const), pos: fc.nat(), len: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ kind: fc.constant('splice' as const), pos: fc.nat(), other: fc.nat(), from: fc.nat() }),
)
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never

function mutate(src: Uint8Array, m: Mutation): Uint8Array {
  const pos = m.pos % src.length
  switch (m.kind) {
    case 'flip': {
      const out = src.slice()
      out[pos] = out[pos]! ^ (1 << m.bit)
      return out
    }
    case 'set': {
      const out = src.slice()
      out[pos] = out[pos] === m.byte ? (m.byte + 1) % 256 : m.byte
      return out
    }
    case 'truncate':
      return src.slice(0, pos)
    case 'insert':
      return new Uint8Array([...src.subarray(0, pos), ...m.bytes, ...src.subarray(pos)])
    case 'delete':
      return new Uint8Array([...src.subarray(0, pos), ...src.subarray(pos + m.len)])
    case 'splice': {
      const other = encoded[m.other % encoded.length]!
      const from = m.from % other.length
      const out = new Uint8Array([...src.subarray(0, pos), ...other.subarray(from)])
      return out.length === src.length && out.every((b, i) => b === src[i]) ? src.slice(0, pos) : out
    }
  }
}

describe('fuzz: decoders and verifiers reject hostile input with typed errors only', () => {
  it('random byte strings (4,000)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 2048 }), (bytes) => checkBytes(bytes)),
      { numRuns: 4000 },
    )
  })

  it('mutated valid records (7,000), including chains of mutations', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.array(mutation, { minLength: 1, maxLength: 4 }), async (which, ms) => {
        const src = encoded[which % encoded.length]!
        let bytes = src
        for (const m of ms) bytes = bytes.length === 0 ? bytes : mutate(bytes, m)
        // mutations that cancel out, or splice one valid record into another, give a valid record back
        if (encoded.some((e) => e.length === bytes.length && e.every((b, i) => b === bytes[i]))) return
        await checkBytes(bytes)
      }),
      { numRuns: 7000 },
    )
  })

  it('well-formed CBOR of hostile values (1,500)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 6 }), async (value) => {
        await checkBytes(canonicalEncode(value))
      }),
      { numRuns: 1500 },
    )
  })

  it('valid records with one field replaced by an arbitrary value, as objects (1,500)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(),
        fc.constantFrom(
          'type',
          'v',
          'signer',
          'createdAt',
          'expiresAt',
          'nonce',
          'body',
          'sig',
          '__proto__',
          'extra',
        ),
        fc.anything({ maxDepth: 3 }),
        async (which, field, value) => {
          const record = records[which % records.length]!
          const hostile: Record<string, unknown> = { ...record }
          Object.defineProperty(hostile, field, {
            value,
            enumerable: true,
            configurable: true,
            writable: true,
          })
          if (field in record && isDeepEqual(value, record[field as keyof SignedRecord])) return
          checked++
          assertRejected(await verifyAnyRecord(hostile, { now: NOW }), `verifyAnyRecord(${field})`)
          assertRejected(await verifyRecord(record.type, hostile, { now: NOW }), `verifyRecord(${field})`)
        },
      ),
      { numRuns: 1500 },
    )
  })

  it('fed at least 10,000 inputs in total', () => {
    assert.ok(checked >= 10_000, `only ${checked} inputs were checked`)
    // The mutations reach past the decoder: schema, type and signature checks all rejected something.
    for (const code of ['ERR_DECODE', 'ERR_SCHEMA', 'ERR_TYPE', 'ERR_SIGNATURE'] as const) {
      assert.ok(seenCodes.has(code), `no input was rejected with ${code}`)
    }
  })
})

function isDeepEqual(a: unknown, b: unknown): boolean {
  try {
    assert.deepStrictEqual(a, b)
    return true
  } catch {
    return false
  }
}
