import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Listing } from '@rpib/protocol'
import { MarketIndex, MarketQuerySchema } from '../../src/market/market-index.js'
import { keyOfListing, signListing } from '../../src/market/records.js'
import { sampleListing } from './fixtures.js'

const keys = await Promise.all([0, 1, 2].map(() => generateKeyPair('Ed25519')))
const T0 = 1_800_000_000_000

async function listing(
  providerIndex: number,
  deviceId: string,
  overrides: Record<string, unknown> = {},
  version = 1,
  now = T0,
): Promise<Listing> {
  const base = sampleListing(deviceId)
  const body = { ...base, ...overrides, version, status: 'listed' as const }
  return (await signListing(body as Parameters<typeof signListing>[0], keys[providerIndex]!, { now })).record
}

describe('market index', () => {
  test('keeps the newest version per key and hides unlisted listings', async () => {
    let now = T0
    const index = new MarketIndex({ offlineAfterMs: 1000, now: () => now })
    const v1 = await listing(0, 'pi-1', {}, 1)
    const v2 = await listing(0, 'pi-1', { satsPerHour: 300 }, 2)
    const key = keyOfListing(v1)
    assert.equal(index.upsert(key, v2), true)
    assert.equal(index.upsert(key, v1), false, 'an older version never replaces a newer one')
    assert.equal(index.latest(key)?.body.satsPerHour, 300)
    const unlisted = await signListing({ ...v2.body, version: 3, status: 'unlisted' }, keys[0]!, { now })
    assert.equal(index.upsert(key, unlisted.record), true)
    assert.equal(index.entry(key), undefined)
    assert.equal(index.query({ presence: 'any' }).total, 0)
    now += 1
  })

  test('joins presence: online within the threshold, hidden by default once offline', async () => {
    let now = T0
    const index = new MarketIndex({ offlineAfterMs: 1000, now: () => now })
    const a = await listing(0, 'pi-a')
    const b = await listing(1, 'pi-b')
    index.upsert(keyOfListing(a), a)
    index.upsert(keyOfListing(b), b)
    index.markSeen(a.signer, now)
    assert.deepEqual(
      index.query().entries.map((e) => e.deviceId),
      ['pi-a'],
    )
    assert.equal(index.query({ presence: 'offline' }).entries[0]?.deviceId, 'pi-b')
    now += 1001
    assert.equal(index.query().total, 0, 'no beat for longer than offlineAfterMs: offline')
    assert.equal(index.query({ presence: 'any' }).total, 2)
    // a beat naming other devices does not make this one online
    index.markSeen(a.signer, now, ['pi-other'])
    assert.equal(index.query().total, 0)
    index.markSeen(a.signer, now, ['pi-a'])
    assert.equal(index.query().total, 1)
    // an older beat never rolls presence back
    index.markSeen(a.signer, now - 5000)
    assert.equal(index.entry(keyOfListing(a))?.lastSeenAt, now)
  })

  test('hides expired listings', async () => {
    let now = T0
    const index = new MarketIndex({ offlineAfterMs: 1000, now: () => now })
    const a = await listing(0, 'pi-a')
    index.upsert(keyOfListing(a), a)
    assert.equal(index.query({ presence: 'any' }).total, 1)
    now = a.expiresAt + 1
    assert.equal(index.query({ presence: 'any' }).total, 0)
  })

  test('rejects malformed queries', () => {
    const index = new MarketIndex({ offlineAfterMs: 1000 })
    assert.throws(() => index.query({ sort: 'bogus' } as never))
    assert.throws(() => index.query({ limit: 0 }))
    assert.throws(() => index.query({ minMemoryMb: -1 }))
  })

  test('every result matches the filters and comes sorted (property)', async () => {
    const pool: Listing[] = []
    const archs = ['arm64', 'amd64', 'armhf']
    for (let i = 0; i < 60; i++) {
      pool.push(
        await listing(i % 3, `d-${i}`, {
          satsPerHour: 1 + ((i * 37) % 500),
          specs: {
            ...sampleListing('x').specs,
            arch: archs[i % 3],
            cpuCores: 1 + (i % 8),
            cpuScore: (i * 13) % 300,
            memoryMb: 256 * (1 + (i % 16)),
            diskFreeMb: 1000 * (i % 40),
          },
        }),
      )
    }
    const index = new MarketIndex({
      offlineAfterMs: 1000,
      now: () => T0,
      reputation: (p) => (p === pool[0]!.signer ? 5 : undefined),
    })
    for (const l of pool) index.upsert(keyOfListing(l), l)
    await fc.assert(
      fc.asyncProperty(
        fc.record(
          {
            arch: fc.constantFrom('arm64', 'amd64', 'armhf'),
            minCpuCores: fc.integer({ min: 0, max: 9 }),
            minMemoryMb: fc.integer({ min: 0, max: 5000 }),
            minDiskMb: fc.integer({ min: 0, max: 40_000 }),
            maxSatsPerHour: fc.integer({ min: 0, max: 600 }),
            minReputation: fc.integer({ min: 0, max: 6 }),
            sort: fc.constantFrom('price', 'cpuScore', 'memory', 'disk', 'newest', 'reputation'),
            order: fc.constantFrom('asc', 'desc'),
          },
          { requiredKeys: ['sort'] },
        ),
        async (q) => {
          const query = MarketQuerySchema.parse({ ...q, presence: 'any', limit: 1000 })
          const result = index.query(query)
          const expected = pool.filter(
            (l) =>
              (q.arch == null || l.body.specs.arch === q.arch) &&
              (q.minCpuCores == null || l.body.specs.cpuCores >= q.minCpuCores) &&
              (q.minMemoryMb == null || l.body.specs.memoryMb >= q.minMemoryMb) &&
              (q.minDiskMb == null || l.body.specs.diskFreeMb >= q.minDiskMb) &&
              (q.maxSatsPerHour == null || l.body.satsPerHour <= q.maxSatsPerHour) &&
              (q.minReputation == null || (l.signer === pool[0]!.signer ? 5 : 0) >= q.minReputation),
          )
          assert.equal(result.total, expected.length)
          const value = (l: Listing): number =>
            ({
              price: l.body.satsPerHour,
              cpuScore: l.body.specs.cpuScore,
              memory: l.body.specs.memoryMb,
              disk: l.body.specs.diskFreeMb,
              newest: l.createdAt,
              reputation: l.signer === pool[0]!.signer ? 5 : -Infinity,
            })[q.sort]
          const values = result.entries.map((e) => value(e.listing))
          const dir = (q.order ?? (q.sort === 'price' ? 'asc' : 'desc')) === 'asc' ? 1 : -1
          for (let i = 1; i < values.length; i++)
            assert.ok(dir * (values[i]! - values[i - 1]!) >= 0 || Number.isNaN(values[i]! - values[i - 1]!))
        },
      ),
      { numRuns: 200 },
    )
  })
})
