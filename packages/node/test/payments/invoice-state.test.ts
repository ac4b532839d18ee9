import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { evaluateInvoice, type InvoicePayment } from '../../src/payments/invoice-state.js'

const MAX = 21_000_000 * 100_000_000
const payment = fc.record({
  txid: fc.stringMatching(/^[0-9a-f]{64}$/),
  vout: fc.nat({ max: 10 }),
  valueSats: fc.integer({ min: 1, max: 5_000_000_000 }),
  confirmations: fc.nat({ max: 10 }),
  seenAt: fc.integer({ min: 0, max: 2_000_000 }),
})
const scenario = fc.record({
  amountSats: fc.integer({ min: 1, max: 10_000_000_000 }),
  expiresAt: fc.integer({ min: 0, max: 2_000_000 }),
  now: fc.integer({ min: 0, max: 3_000_000 }),
  confirmationsRequired: fc.integer({ min: 0, max: 6 }),
  zeroConfMaxSats: fc.integer({ min: 0, max: 10_000_000_000 }),
  payments: fc.array(payment, { maxLength: 12 }),
})

type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never

function run(s: Scenario, payments: InvoicePayment[] = s.payments) {
  return evaluateInvoice(
    { amountSats: s.amountSats, expiresAt: s.expiresAt },
    payments,
    { confirmationsRequired: s.confirmationsRequired, zeroConfMaxSats: s.zeroConfMaxSats },
    s.now,
  )
}

test('no satoshi is created or lost: every payment is counted once, as on-time or late', () => {
  fc.assert(
    fc.property(scenario, (s) => {
      const e = run(s)
      const total = s.payments.reduce((a, p) => a + BigInt(p.valueSats), 0n)
      assert.equal(BigInt(e.receivedSats) + BigInt(e.lateSats), total)
      const onTime = s.payments.filter((p) => p.seenAt <= s.expiresAt).reduce((a, p) => a + p.valueSats, 0)
      assert.equal(e.receivedSats, onTime)
      assert.equal(s.amountSats - e.shortfallSats + e.excessSats, e.receivedSats)
      assert.ok(e.shortfallSats === 0 || e.excessSats === 0)
      assert.ok(e.settledSats <= e.receivedSats)
      for (const v of [e.receivedSats, e.lateSats, e.shortfallSats, e.excessSats, e.settledSats]) {
        assert.ok(Number.isSafeInteger(v) && v >= 0 && v <= MAX * 2)
      }
    }),
    { numRuns: 2000 },
  )
})

test('the status agrees with the arithmetic for any sequence of payments', () => {
  fc.assert(
    fc.property(scenario, (s) => {
      const e = run(s)
      const expired = s.now > s.expiresAt
      assert.equal(e.paid, e.status === 'confirmed' || e.status === 'overpaid')
      switch (e.status) {
        case 'awaiting':
          assert.ok(!expired && e.receivedSats === 0 && e.lateSats === 0)
          break
        case 'expired':
          assert.ok(expired && e.receivedSats === 0 && e.lateSats === 0)
          break
        case 'paid-late':
          assert.ok(e.receivedSats === 0 && e.lateSats > 0)
          break
        case 'underpaid':
          assert.ok(expired && e.receivedSats > 0 && e.shortfallSats > 0)
          break
        case 'seen':
          assert.ok(e.receivedSats > 0 && !e.paid)
          assert.ok(e.shortfallSats === 0 || !expired)
          break
        case 'confirmed':
          assert.ok(e.receivedSats === s.amountSats && e.settledSats === s.amountSats)
          break
        case 'overpaid':
          assert.ok(e.excessSats > 0 && e.settledSats >= s.amountSats)
          break
      }
    }),
    { numRuns: 2000 },
  )
})

test('the order payments arrive in does not change the result', () => {
  fc.assert(
    fc.property(scenario, fc.nat(), (s, seed) => {
      const shuffled = [...s.payments].sort((a, b) => ((a.valueSats ^ seed) % 7) - ((b.valueSats ^ seed) % 7))
      assert.deepEqual(run(s, shuffled), run(s))
    }),
  )
})

test('more confirmations never un-pay an invoice; fewer (a reorg) never pay it', () => {
  fc.assert(
    fc.property(scenario, fc.nat({ max: 5 }), (s, extra) => {
      const before = run(s)
      const deeper = run(
        s,
        s.payments.map((p) => ({ ...p, confirmations: p.confirmations + extra })),
      )
      if (before.paid) assert.ok(deeper.paid)
      const shallower = run(
        s,
        s.payments.map((p) => ({ ...p, confirmations: 0 })),
      )
      if (shallower.paid) assert.ok(before.paid)
    }),
  )
})

test('worked examples: exact amount, shortfall, excess, 0-conf limit', () => {
  const terms = { amountSats: 10_000, expiresAt: 1000 }
  const p = (valueSats: number, confirmations: number, seenAt = 10): InvoicePayment => ({
    txid: 'a'.repeat(64),
    vout: 0,
    valueSats,
    confirmations,
    seenAt,
  })
  const policy = { confirmationsRequired: 2, zeroConfMaxSats: 0 }
  assert.equal(evaluateInvoice(terms, [], policy, 0).status, 'awaiting')
  assert.equal(evaluateInvoice(terms, [p(10_000, 1)], policy, 0).status, 'seen')
  assert.equal(evaluateInvoice(terms, [p(10_000, 2)], policy, 0).status, 'confirmed')
  const under = evaluateInvoice(terms, [p(4_000, 3), p(2_500, 3)], policy, 2000)
  assert.deepEqual([under.status, under.shortfallSats], ['underpaid', 3_500])
  const over = evaluateInvoice(terms, [p(12_000, 2)], policy, 0)
  assert.deepEqual([over.status, over.excessSats, over.paid], ['overpaid', 2_000, true])
  assert.equal(evaluateInvoice(terms, [p(10_000, 0, 1001)], policy, 2000).status, 'paid-late')
  assert.equal(evaluateInvoice(terms, [], policy, 1001).status, 'expired')
  assert.equal(
    evaluateInvoice(terms, [p(10_000, 0)], { confirmationsRequired: 2, zeroConfMaxSats: 10_000 }, 0).status,
    'confirmed',
  )
  assert.equal(
    evaluateInvoice(terms, [p(10_000, 0)], { confirmationsRequired: 2, zeroConfMaxSats: 9_999 }, 0).status,
    'seen',
  )
})
