import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { LIMITS, RentRpcRequestSchema, RentRpcResponseSchema } from '../src/index.js'

const ID = 'ab'.repeat(32)

describe('rent rpc requests', () => {
  it('accepts extend, cancel and expose for an offer id', () => {
    assert.deepEqual(RentRpcRequestSchema.parse({ op: 'extend', offerId: ID, addSeconds: 3600 }), {
      op: 'extend',
      offerId: ID,
      addSeconds: 3600,
    })
    assert.equal(RentRpcRequestSchema.parse({ op: 'cancel', offerId: ID }).op, 'cancel')
    assert.equal(RentRpcRequestSchema.parse({ op: 'expose', offerId: ID, port: 8080 }).op, 'expose')
  })

  it('refuses extensions outside 1..maxLeaseSeconds and ports outside 1..65535', () => {
    for (const addSeconds of [0, -1, 1.5, LIMITS.maxLeaseSeconds + 1, '60']) {
      assert.equal(
        RentRpcRequestSchema.safeParse({ op: 'extend', offerId: ID, addSeconds }).success,
        false,
        String(addSeconds),
      )
    }
    for (const port of [0, 65536, 80.5, '22']) {
      assert.equal(RentRpcRequestSchema.safeParse({ op: 'expose', offerId: ID, port }).success, false)
    }
  })

  it('refuses a malformed offer id, unknown ops and extra fields', () => {
    assert.equal(RentRpcRequestSchema.safeParse({ op: 'cancel', offerId: ID.toUpperCase() }).success, false)
    assert.equal(RentRpcRequestSchema.safeParse({ op: 'cancel', offerId: ID.slice(2) }).success, false)
    assert.equal(RentRpcRequestSchema.safeParse({ op: 'refund', offerId: ID }).success, false)
    assert.equal(RentRpcRequestSchema.safeParse({ op: 'cancel', offerId: ID, force: true }).success, false)
  })

  it('never throws on arbitrary input', () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        RentRpcRequestSchema.safeParse(value)
        RentRpcResponseSchema.safeParse(value)
      }),
    )
  })
})

describe('rent rpc responses', () => {
  it('tells the extension, cancellation and expose answers apart from status', () => {
    const ext = RentRpcResponseSchema.parse({ ok: true, extension: { any: 1 } })
    assert.ok('extension' in ext)
    const end = RentRpcResponseSchema.parse({ ok: true, cancelled: { any: 1 } })
    assert.ok('cancelled' in end && !('status' in end))
    const urls = RentRpcResponseSchema.parse({ ok: true, urls: ['https://a.example/'] })
    assert.ok('urls' in urls)
    const status = RentRpcResponseSchema.parse({ ok: true, status: 'ended', paidSats: 5, end: {} })
    assert.ok('status' in status)
  })

  it('refuses an expose answer without URLs and an answer mixing two kinds', () => {
    assert.equal(RentRpcResponseSchema.safeParse({ ok: true, urls: [] }).success, false)
    assert.equal(RentRpcResponseSchema.safeParse({ ok: true, extension: {}, cancelled: {} }).success, false)
  })
})
