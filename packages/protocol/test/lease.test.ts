import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { IllegalTransitionError, LEASE_STATUSES, createLeaseState, leaseReducer } from '../src/index.js'
import type { LeaseEvent, LeaseState, LeaseStatus } from '../src/index.js'

const T0 = 1_800_000_000_000
const HOUR = 3600

function run(events: LeaseEvent[], start: LeaseState = createLeaseState(T0, 24 * HOUR)): LeaseState {
  return events.reduce(leaseReducer, start)
}

const offer = (at = T0 + 1, priceSats = 2400): LeaseEvent => ({
  type: 'offer',
  at,
  priceSats,
  durationSeconds: 24 * HOUR,
  invoiceExpiresAt: at + 1_800_000,
})
const toActive: LeaseEvent[] = [
  offer(),
  { type: 'accept', at: T0 + 2 },
  { type: 'payment', at: T0 + 3, amountSats: 2400 },
  { type: 'provision-start', at: T0 + 4 },
  { type: 'activate', at: T0 + 5 },
]

/** One reachable state per status, for the illegal-transition table. */
function stateIn(status: LeaseStatus): LeaseState {
  const prefix: Record<LeaseStatus, number> = {
    requested: 0,
    offered: 1,
    'awaiting-payment': 2,
    paid: 3,
    provisioning: 4,
    active: 5,
    ended: 5,
  }
  const s = run(toActive.slice(0, prefix[status]))
  return status === 'ended' ? leaseReducer(s, { type: 'cancel', at: T0 + 10 }) : s
}

describe('leaseReducer: happy path', () => {
  it('goes requested → offered → awaiting-payment → paid → provisioning → active → ended(expired)', () => {
    const seen: LeaseStatus[] = []
    let s = createLeaseState(T0, 24 * HOUR)
    seen.push(s.status)
    for (const e of toActive) {
      s = leaseReducer(s, e)
      seen.push(s.status)
    }
    assert.deepEqual(seen, ['requested', 'offered', 'awaiting-payment', 'paid', 'provisioning', 'active'])
    assert.equal(s.startedAt, T0 + 5)
    assert.equal(s.expiresAt, T0 + 5 + 24 * HOUR * 1000)
    assert.throws(() => leaseReducer(s, { type: 'expire', at: s.expiresAt! - 1 }), IllegalTransitionError)
    const ended = leaseReducer(s, { type: 'expire', at: s.expiresAt! })
    assert.equal(ended.status, 'ended')
    assert.equal(ended.endReason, 'expired')
    assert.equal(ended.servedSeconds, 24 * HOUR)
    assert.equal(ended.refundDueSats, 0)
    assert.equal(ended.earnedSats, 2400)
  })

  it('does not mutate the input state', () => {
    const s = createLeaseState(T0, 60)
    const copy = structuredClone(s)
    leaseReducer(s, offer())
    assert.deepEqual(s, copy)
  })

  it('adds up partial payments and refunds overpayment', () => {
    let s = run([offer(), { type: 'accept', at: T0 + 2 }, { type: 'payment', at: T0 + 3, amountSats: 1000 }])
    assert.equal(s.status, 'awaiting-payment')
    s = leaseReducer(s, { type: 'payment', at: T0 + 4, amountSats: 1500 })
    assert.equal(s.status, 'paid')
    assert.equal(s.paidSats, 2500)
    const ended = run(
      [
        { type: 'provision-start', at: T0 + 5 },
        { type: 'activate', at: T0 + 6 },
      ],
      s,
    )
    const done = leaseReducer(ended, { type: 'expire', at: ended.expiresAt! })
    assert.equal(done.refundDueSats, 100)
    assert.equal(done.earnedSats, 2400)
  })

  it('accepts payment straight from offered (external wallet, no explicit accept)', () => {
    const s = run([offer(), { type: 'payment', at: T0 + 2, amountSats: 2400 }])
    assert.equal(s.status, 'paid')
  })
})

describe('leaseReducer: failure branches', () => {
  it('offer expires unpaid → ended(offer-expired), nothing to refund', () => {
    const s = run([offer()])
    assert.throws(
      () => leaseReducer(s, { type: 'invoice-expired', at: s.offerExpiresAt! - 1 }),
      IllegalTransitionError,
    )
    const e = leaseReducer(s, { type: 'invoice-expired', at: s.offerExpiresAt! })
    assert.equal(e.endReason, 'offer-expired')
    assert.equal(e.refundDueSats, 0)
  })

  it('offer expires underpaid → ended(underpaid), everything refunded', () => {
    const s = run([offer(), { type: 'payment', at: T0 + 2, amountSats: 700 }])
    const e = leaseReducer(s, { type: 'invoice-expired', at: s.offerExpiresAt! })
    assert.equal(e.endReason, 'underpaid')
    assert.equal(e.refundDueSats, 700)
    assert.equal(e.earnedSats, 0)
  })

  it('provision failure → ended(provision-failed), full refund', () => {
    for (const n of [3, 4]) {
      const e = leaseReducer(run(toActive.slice(0, n)), { type: 'provision-failed', at: T0 + 9 })
      assert.equal(e.endReason, 'provision-failed')
      assert.equal(e.refundDueSats, 2400)
    }
  })

  it('provider offline while active → pro-rata refund to the second', () => {
    const s = run(toActive)
    const e = leaseReducer(s, { type: 'provider-offline', at: s.startedAt! + HOUR * 1000 + 999 })
    assert.equal(e.endReason, 'provider-offline')
    assert.equal(e.servedSeconds, HOUR)
    assert.equal(e.refundDueSats, 2300)
    assert.equal(e.earnedSats, 100)
  })

  it('renter cancels while active → pro-rata refund; before payment → nothing due', () => {
    const s = run(toActive)
    const e = leaseReducer(s, { type: 'cancel', at: s.startedAt! + 6 * HOUR * 1000 })
    assert.equal(e.refundDueSats, 1800)
    const early = leaseReducer(run([offer()]), { type: 'cancel', at: T0 + 9 })
    assert.equal(early.endReason, 'cancelled')
    assert.equal(early.refundDueSats, 0)
  })
})

describe('leaseReducer: provider outage mid-lease', () => {
  const active = () => run(toActive)
  const startedAt = T0 + 5

  it('refunds the down time pro-rata at once and keeps the lease running until the same expiry', () => {
    const s = leaseReducer(active(), { type: 'outage', at: startedAt + 7_200_000, downSeconds: 3 * HOUR })
    assert.equal(s.status, 'active')
    assert.equal(s.outageRefundSats, 300) // 2400 sats × 3 h / 24 h
    assert.equal(s.downSeconds, 3 * HOUR)
    assert.equal(s.durationSeconds, 21 * HOUR)
    assert.equal(s.priceSats, 2100)
    assert.equal(s.expiresAt, startedAt + 24 * HOUR * 1000)
    const ended = leaseReducer(s, { type: 'expire', at: s.expiresAt! })
    assert.equal(ended.servedSeconds, 21 * HOUR)
    assert.equal(ended.refundDueSats, 300)
    assert.equal(ended.earnedSats, 2100)
  })

  it('a cancel after an outage refunds the outage plus the unserved rest, never the down time twice', () => {
    let s = leaseReducer(active(), { type: 'outage', at: startedAt + 4 * HOUR * 1000, downSeconds: 2 * HOUR })
    // 4 h elapsed, 2 h of it down: 2 h served; 22 h bought remain of which 20 h are unserved
    s = leaseReducer(s, { type: 'cancel', at: startedAt + 4 * HOUR * 1000 })
    assert.equal(s.servedSeconds, 2 * HOUR)
    assert.equal(s.refundDueSats, 200 + Math.floor((2200 * 20) / 22))
    assert.equal(s.earnedSats! + s.refundDueSats!, 2400)
  })

  it('rounds the outage refund down and keeps at least one second bought', () => {
    const s = leaseReducer(active(), { type: 'outage', at: startedAt + 1000, downSeconds: 1 })
    assert.equal(s.outageRefundSats, Math.floor(2400 / (24 * HOUR)))
    const all = leaseReducer(active(), { type: 'outage', at: startedAt + 1000, downSeconds: 99 * HOUR })
    assert.equal(all.durationSeconds, 1)
    assert.equal(all.outageRefundSats, Math.floor((2400 * (24 * HOUR - 1)) / (24 * HOUR)))
  })

  it('refuses an outage after the expiry (that lease ends with provider-offline) and bad values', () => {
    const s = active()
    assert.throws(
      () => leaseReducer(s, { type: 'outage', at: s.expiresAt!, downSeconds: 10 }),
      IllegalTransitionError,
    )
    assert.throws(() => leaseReducer(s, { type: 'outage', at: startedAt + 10, downSeconds: 0 }), {
      code: 'ERR_RANGE',
    })
    assert.throws(() => leaseReducer(s, { type: 'outage', at: startedAt + 10, downSeconds: 1.5 }), {
      code: 'ERR_RANGE',
    })
    const offline = leaseReducer(s, { type: 'provider-offline', at: startedAt + HOUR * 1000 })
    assert.equal(offline.endReason, 'provider-offline')
    assert.equal(offline.refundDueSats, 2300)
  })
})

describe('leaseReducer: extension', () => {
  it('extends the lease once the extension is paid in full', () => {
    let s = run(toActive)
    const before = s.expiresAt!
    s = leaseReducer(s, {
      type: 'extension-offered',
      at: T0 + 10,
      addSeconds: HOUR,
      priceSats: 100,
      invoiceExpiresAt: T0 + 1e6,
    })
    assert.throws(
      () =>
        leaseReducer(s, {
          type: 'extension-offered',
          at: T0 + 11,
          addSeconds: 1,
          priceSats: 1,
          invoiceExpiresAt: T0 + 1e6,
        }),
      IllegalTransitionError,
    )
    s = leaseReducer(s, { type: 'extension-payment', at: T0 + 12, amountSats: 40 })
    assert.equal(s.expiresAt, before)
    s = leaseReducer(s, { type: 'extension-payment', at: T0 + 13, amountSats: 60 })
    assert.equal(s.pendingExtension, undefined)
    assert.equal(s.expiresAt, before + HOUR * 1000)
    assert.equal(s.durationSeconds, 25 * HOUR)
    assert.equal(s.priceSats, 2500)
    const e = leaseReducer(s, { type: 'expire', at: s.expiresAt! })
    assert.equal(e.earnedSats, 2500)
  })

  it('an expired, partly paid extension is refunded at the end', () => {
    let s = run(toActive)
    s = leaseReducer(s, {
      type: 'extension-offered',
      at: T0 + 10,
      addSeconds: HOUR,
      priceSats: 100,
      invoiceExpiresAt: T0 + 1000,
    })
    s = leaseReducer(s, { type: 'extension-payment', at: T0 + 12, amountSats: 40 })
    assert.throws(() => leaseReducer(s, { type: 'extension-expired', at: T0 + 999 }), IllegalTransitionError)
    s = leaseReducer(s, { type: 'extension-expired', at: T0 + 1000 })
    const e = leaseReducer(s, { type: 'expire', at: s.expiresAt! })
    assert.equal(e.refundDueSats, 40)
    assert.equal(e.earnedSats, 2400)
  })
})

describe('leaseReducer: illegal transitions', () => {
  const events: LeaseEvent[] = [
    offer(T0 + 20),
    { type: 'accept', at: T0 + 20 },
    { type: 'invoice-expired', at: T0 + 1e12 },
    { type: 'provision-start', at: T0 + 20 },
    { type: 'provision-failed', at: T0 + 20 },
    { type: 'activate', at: T0 + 20 },
    { type: 'extension-payment', at: T0 + 20, amountSats: 1 },
    { type: 'extension-expired', at: T0 + 20 },
    { type: 'expire', at: T0 + 1e12 },
    { type: 'provider-offline', at: T0 + 20 },
    { type: 'outage', at: T0 + 20, downSeconds: 60 },
  ]
  const allowed: Record<LeaseStatus, string[]> = {
    requested: ['offer'],
    offered: ['accept', 'invoice-expired'],
    'awaiting-payment': ['invoice-expired'],
    paid: ['provision-start', 'provision-failed', 'provider-offline'],
    provisioning: ['provision-failed', 'activate', 'provider-offline'],
    active: ['expire', 'provider-offline', 'outage'],
    ended: [],
  }
  for (const status of LEASE_STATUSES) {
    it(`in ${status}: only ${allowed[status].join(', ') || 'nothing'} is allowed, the rest throws ERR_ILLEGAL_TRANSITION`, () => {
      const s = stateIn(status)
      assert.equal(s.status, status)
      for (const e of events) {
        if (allowed[status].includes(e.type)) {
          assert.doesNotThrow(() => leaseReducer(s, e), `${e.type} in ${status}`)
        } else {
          assert.throws(
            () => leaseReducer(s, e),
            (err: unknown) =>
              err instanceof IllegalTransitionError &&
              err.code === 'ERR_ILLEGAL_TRANSITION' &&
              err.from === status &&
              err.event === e.type,
            `${e.type} in ${status}`,
          )
        }
      }
    })
  }

  it('refuses events older than the state and malformed amounts', () => {
    const s = run([offer()])
    assert.throws(() => leaseReducer(s, { type: 'accept', at: T0 }), IllegalTransitionError)
    assert.throws(() => leaseReducer(s, { type: 'payment', at: T0 + 5, amountSats: 0 }), {
      code: 'ERR_RANGE',
    })
    assert.throws(() => leaseReducer(s, { type: 'payment', at: T0 + 5, amountSats: 1.5 }), {
      code: 'ERR_RANGE',
    })
  })
})

describe('leaseReducer: money invariant (property)', () => {
  it('served + refunded = paid for any schedule of payments, extensions and endings', () => {
    const step = fc.record({
      kind: fc.constantFrom('payment', 'ext-offer', 'ext-pay', 'ext-expire', 'wait', 'outage'),
      amount: fc.integer({ min: 1, max: 50_000 }),
      seconds: fc.integer({ min: 1, max: 48 * HOUR }),
    })
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.integer({ min: 1, max: 30 * 24 * HOUR }),
        fc.array(step, { maxLength: 12 }),
        fc.constantFrom('expire', 'cancel', 'provider-offline', 'provision-failed', 'invoice-expired'),
        fc.integer({ min: 0, max: 60 * 24 * HOUR }),
        (price, duration, steps, ending, endOffsetS) => {
          let at = T0
          const tick = (ms: number) => (at += ms)
          let s = createLeaseState(at, duration)
          s = leaseReducer(s, {
            type: 'offer',
            at: tick(1),
            priceSats: price,
            durationSeconds: duration,
            invoiceExpiresAt: at + 1e7,
          })
          let received = 0
          const apply = (e: LeaseEvent) => {
            try {
              s = leaseReducer(s, e)
              return true
            } catch (err) {
              assert.ok(err instanceof IllegalTransitionError, String(err))
              return false
            }
          }
          const pay = (type: 'payment' | 'extension-payment', amount: number) => {
            if (apply({ type, at: tick(1), amountSats: amount })) received += amount
          }
          const firstPay = steps.length > 0 && steps[0]!.kind === 'payment' ? steps[0]!.amount : price
          pay('payment', ending === 'invoice-expired' ? Math.max(1, Math.floor(firstPay / 2)) : firstPay)
          if (ending !== 'invoice-expired') {
            apply({ type: 'provision-start', at: tick(1) })
            if (ending !== 'provision-failed') apply({ type: 'activate', at: tick(1) })
          }
          for (const st of steps) {
            if (st.kind === 'payment') pay('payment', st.amount)
            else if (st.kind === 'ext-pay') pay('extension-payment', st.amount)
            else if (st.kind === 'ext-offer')
              apply({
                type: 'extension-offered',
                at: tick(1),
                addSeconds: st.seconds,
                priceSats: st.amount,
                invoiceExpiresAt: at + 60_000,
              })
            else if (st.kind === 'ext-expire') apply({ type: 'extension-expired', at: tick(60_000) })
            else if (st.kind === 'outage') {
              const credited = s.outageRefundSats ?? 0
              if (apply({ type: 'outage', at: tick(st.seconds * 1000), downSeconds: st.seconds }))
                assert.ok((s.outageRefundSats ?? 0) >= credited, 'outage credits only grow')
            } else tick(st.seconds * 1000)
          }
          if (s.status === 'ended') return
          const endAt =
            ending === 'expire'
              ? Math.max(at, s.expiresAt ?? at)
              : ending === 'invoice-expired'
                ? Math.max(at, s.offerExpiresAt ?? at)
                : at + endOffsetS * 1000
          if (!apply({ type: ending, at: endAt })) apply({ type: 'cancel', at: endAt })
          assert.equal(s.status, 'ended')
          assert.equal(s.paidSats, received)
          assert.equal(s.earnedSats! + s.refundDueSats!, s.paidSats)
          assert.ok(s.refundDueSats! >= 0 && s.earnedSats! >= 0)
          assert.ok(s.servedSeconds! <= s.durationSeconds)
          // What an outage refunded mid-lease is part of the final refund, never taken back.
          assert.ok(s.refundDueSats! >= (s.outageRefundSats ?? 0))
          // A provider never earns more than the price of what it was asked to serve.
          assert.ok(s.earnedSats! <= s.priceSats)
        },
      ),
      { numRuns: 500 },
    )
  })
})
