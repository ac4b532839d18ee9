import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { HistoryBody, HistoryRecord } from '@rpib/protocol'
import fc from 'fast-check'
import { MarketIndex } from '../../src/market/market-index.js'
import { signHistory } from '../../src/market/offers-log.js'
import { ReputationBook } from '../../src/market/reputation-book.js'
import {
  presenceUptime,
  providerReputation,
  reputationScore,
  summarizeHistory,
} from '../../src/market/reputation.js'

const T0 = Date.UTC(2026, 10, 1)
const HOUR = 3_600_000
const lease = (n: number): string => n.toString(16).padStart(64, '0')

interface Party {
  key: Ed25519PrivateKey
  id: string
}

async function party(): Promise<Party> {
  const key = await generateKeyPair('Ed25519')
  return { key, id: peerIdFromPrivateKey(key).toString() }
}

describe('reputation from the market history', () => {
  let provider: Party
  let renter: Party
  let stranger: Party
  let history: HistoryRecord[]

  const entry = (signer: Party, body: Partial<HistoryBody> & Pick<HistoryBody, 'kind' | 'leaseId'>) =>
    signHistory(
      { listingKey: `${provider.id}/pi`, provider: provider.id, renter: renter.id, ...body },
      undefined,
      signer.key,
      signer.id,
      { now: T0 },
    )

  before(async () => {
    provider = await party()
    renter = await party()
    stranger = await party()
    history = [
      // lease 1: ran to the end
      await entry(provider, { kind: 'offer', leaseId: lease(1), amountSats: 100 }),
      await entry(provider, { kind: 'lease', leaseId: lease(1), startsAt: T0, endsAt: T0 + HOUR }),
      await entry(provider, { kind: 'lease-end', leaseId: lease(1), reason: 'expired', endsAt: T0 + HOUR }),
      // lease 2: failed to provision, refund made
      await entry(provider, { kind: 'lease', leaseId: lease(2), startsAt: T0, endsAt: T0 + HOUR }),
      await entry(provider, {
        kind: 'lease-end',
        leaseId: lease(2),
        reason: 'provision-failed',
        amountSats: 500,
      }),
      await entry(provider, { kind: 'refund', leaseId: lease(2), amountSats: 500, seq: 0 }),
      // lease 3: the renter saw a 10-minute outage; the refund due failed
      await entry(provider, { kind: 'lease', leaseId: lease(3), startsAt: T0, endsAt: T0 + 2 * HOUR }),
      await entry(renter, {
        kind: 'outage',
        leaseId: lease(3),
        startsAt: T0 + HOUR,
        endsAt: T0 + HOUR + 600_000,
      }),
      await entry(provider, { kind: 'lease-end', leaseId: lease(3), reason: 'expired', amountSats: 300 }),
      await entry(provider, { kind: 'refund-failed', leaseId: lease(3), amountSats: 300, seq: 0 }),
      await entry(provider, { kind: 'lease', leaseId: lease(4), startsAt: T0, endsAt: T0 + HOUR }),
      await entry(provider, { kind: 'lease-end', leaseId: lease(4), reason: 'expired' }),
    ]
  })

  test('counts completed and failed leases, refunds, failed refunds and outages', () => {
    const s = summarizeHistory(history).get(provider.id)
    assert.ok(s)
    assert.equal(s.leases, 4)
    assert.equal(s.completedLeases, 3)
    assert.equal(s.failedLeases, 1)
    assert.equal(s.refunds, 1)
    assert.equal(s.refundedSats, 500)
    assert.equal(s.failedRefunds, 1)
    assert.equal(s.failedRefundSats, 300)
    assert.equal(s.outages, 1)
    assert.equal(s.outageSeconds, 600)
    // 3 completed − 1 failed lease − 1 outage − 3 × 1 unpaid refund
    assert.equal(providerReputation(s, undefined).score, -2)
    assert.equal(reputationScore(s, 0.5), -3.5)
  })

  test('a failed refund made good later no longer counts', async () => {
    const paid = await entry(provider, { kind: 'refund', leaseId: lease(3), amountSats: 300, seq: 1 })
    const s = summarizeHistory([...history, paid]).get(provider.id)
    assert.equal(s?.failedRefunds, 0)
    assert.equal(s?.refunds, 2)
  })

  test('records signed by someone other than the party they speak for are ignored', async () => {
    const forged = [
      // a renter claims the provider's lease ended well / a stranger files outages
      await entry(renter, { kind: 'lease-end', leaseId: lease(9), reason: 'expired' }),
      await entry(stranger, { kind: 'outage', leaseId: lease(1), startsAt: T0, endsAt: T0 + HOUR }),
      // an outage by someone who is a real renter, but not of this lease (the lease names `renter`)
      await signHistory(
        {
          kind: 'outage',
          leaseId: lease(1),
          listingKey: `${provider.id}/pi`,
          provider: provider.id,
          renter: stranger.id,
          startsAt: T0,
          endsAt: T0 + HOUR,
        },
        undefined,
        stranger.key,
        stranger.id,
        { now: T0 },
      ),
      // an outage report for a lease the provider never reported
      await entry(renter, { kind: 'outage', leaseId: lease(8), startsAt: T0, endsAt: T0 + HOUR }),
    ]
    assert.deepEqual(
      summarizeHistory([...history, ...forged]).get(provider.id),
      summarizeHistory(history).get(provider.id),
    )
  })

  test('duplicates count once', () => {
    assert.deepEqual(
      summarizeHistory([...history, ...history]).get(provider.id),
      summarizeHistory(history).get(provider.id),
    )
  })

  test('the score does not depend on the order records arrive in (property)', () => {
    const expected = summarizeHistory(history).get(provider.id)
    fc.assert(
      fc.property(
        fc.shuffledSubarray(history, { minLength: history.length, maxLength: history.length }),
        fc.array(fc.integer({ min: 0, max: history.length - 1 }), { maxLength: 5 }),
        (shuffled, repeats) => {
          const input = [...shuffled, ...repeats.map((i) => history[i]!)]
          assert.deepEqual(summarizeHistory(input).get(provider.id), expected)
        },
      ),
      { numRuns: 200 },
    )
  })
})

describe('presence uptime', () => {
  test('is the covered share of the observed window, overlaps counted once', () => {
    const window = { observedSince: 0, windowStart: -1, now: 100 }
    assert.equal(presenceUptime([], window), 0)
    assert.equal(presenceUptime([{ from: 0, to: 50 }], window), 0.5)
    assert.equal(
      presenceUptime(
        [
          { from: 10, to: 40 },
          { from: 30, to: 60 },
          { from: 90, to: 200 },
        ],
        window,
      ),
      0.6,
    )
    // only the part inside the window counts; an empty window is unknown
    assert.equal(presenceUptime([{ from: 0, to: 100 }], { observedSince: 50, windowStart: 0, now: 100 }), 1)
    assert.equal(
      presenceUptime([{ from: 0, to: 100 }], { observedSince: 100, windowStart: 0, now: 100 }),
      undefined,
    )
  })

  test('never leaves 0..1 whatever the intervals (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: -1000, max: 2000 }), fc.integer({ min: 0, max: 500 }))),
        (pairs) => {
          const u = presenceUptime(
            pairs.map(([from, len]) => ({ from, to: from + len })),
            { observedSince: 0, windowStart: 0, now: 1000 },
          )
          assert.ok(u !== undefined && u >= 0 && u <= 1)
        },
      ),
    )
  })
})

describe('presence history in the market index feeds uptime', () => {
  test('beats become merged intervals; the book judges uptime only after watching long enough', () => {
    let now = 1_000_000
    const index = new MarketIndex({ offlineAfterMs: 1000, now: () => now })
    const offers = { epochs: () => [], records: async () => [], watch: () => () => undefined }
    const book = new ReputationBook({ offers, index, minObservedMs: 10_000, now: () => now })
    index.markSeen('P', now + 100)
    index.markSeen('P', now + 900) // within the previous beat's cover: same interval
    index.markSeen('P', now + 5000) // after a gap: a new interval
    assert.deepEqual(index.presenceIntervals('P'), [
      { from: now + 100, to: now + 1900 },
      { from: now + 5000, to: now + 6000 },
    ])
    now += 6000
    assert.equal(book.get('P').uptime, undefined, 'not watched for long enough yet')
    now += 4000 // 10 s watched: 1.8 s + 1 s of presence
    const rep = book.get('P')
    assert.equal(rep.uptime, 0.28)
    assert.equal(rep.score, 0)
    assert.equal(book.get('nobody').uptime, 0)
  })
})
