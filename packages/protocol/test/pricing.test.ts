import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { LIMITS, MAX_SATS, earnedSats, priceSats, refundSats } from '../src/index.js'

describe('priceSats', () => {
  it('charges price × duration, rounding a started sat up', () => {
    assert.equal(priceSats(100, 3600), 100)
    assert.equal(priceSats(100, 24 * 3600), 2400)
    assert.equal(priceSats(100, 1), 1) // 0.0277… sats → 1
    assert.equal(priceSats(1, 3601), 2)
    assert.equal(priceSats(3600, 1), 1)
    assert.equal(priceSats(0, 3600), 0)
  })

  it('does not overflow at the limits and refuses results beyond the bitcoin supply', () => {
    assert.equal(priceSats(1_000_000_000, LIMITS.maxLeaseSeconds), 1_000_000_000 * LIMITS.maxHours)
    assert.throws(() => priceSats(MAX_SATS, LIMITS.maxLeaseSeconds), { code: 'ERR_RANGE' })
  })

  it('refuses non-integer or negative inputs with ERR_RANGE', () => {
    for (const [rate, secs] of [
      [1.5, 10],
      [-1, 10],
      [1, -1],
      [1, Number.NaN],
      [Number.POSITIVE_INFINITY, 1],
    ] as const) {
      assert.throws(() => priceSats(rate, secs), { code: 'ERR_RANGE' })
    }
  })

  it('is at least the exact price and less than one sat above it (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10_000_000 }),
        fc.integer({ min: 0, max: LIMITS.maxLeaseSeconds }),
        (r, s) => {
          const p = BigInt(priceSats(r, s))
          const exact = BigInt(r) * BigInt(s)
          assert.ok(p * 3600n >= exact && (p - 1n) * 3600n < exact)
        },
      ),
    )
  })
})

describe('refundSats', () => {
  it('refunds the unserved share, pro-rata to the second, rounded down', () => {
    assert.equal(refundSats(2400, 86_400, 0), 2400)
    assert.equal(refundSats(2400, 86_400, 86_400), 0)
    assert.equal(refundSats(2400, 86_400, 3600), 2300)
    assert.equal(refundSats(100, 3600, 1), 99) // 99.97 → 99
    assert.equal(refundSats(1, 3, 1), 0) // 0.67 → 0
  })

  it('refuses served time outside the lease', () => {
    assert.throws(() => refundSats(100, 3600, 3601), { code: 'ERR_RANGE' })
    assert.throws(() => refundSats(100, 0, 0), { code: 'ERR_RANGE' })
    assert.throws(() => refundSats(-1, 10, 0), { code: 'ERR_RANGE' })
  })

  it('served + refunded = paid, and refunds never grow with served time (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: MAX_SATS }),
        fc.integer({ min: 1, max: 2 * LIMITS.maxLeaseSeconds }),
        fc.nat(),
        fc.nat(),
        (paid, duration, a, b) => {
          const s1 = a % (duration + 1)
          const s2 = Math.max(s1, b % (duration + 1))
          const refund = refundSats(paid, duration, s1)
          assert.equal(earnedSats(paid, duration, s1) + refund, paid)
          assert.ok(refund >= 0 && refund <= paid)
          assert.ok(refundSats(paid, duration, s2) <= refund)
        },
      ),
    )
  })
})

it('a test network fast clock scales the price: an "hour" of 10 s costs satsPerHour', () => {
  assert.equal(priceSats(1000, 10, 10), 1000)
  assert.equal(priceSats(1000, 25, 10), 2500)
  assert.equal(priceSats(1000, 1, 7), 143) // ceil(1000 / 7)
  assert.equal(priceSats(1000, 3600), priceSats(1000, 3600, 3600))
  assert.throws(() => priceSats(1000, 10, 0), /secondsPerHour/)
  assert.throws(() => priceSats(1000, 10, 3601), /secondsPerHour/)
})
