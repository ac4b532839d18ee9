import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import { HistoryBodySchema, encodeRecord, signRecord, verifyRecord } from '../src/index.js'
import { ID_B, NOW, peerIdOf, sampleBodies, testKey } from './fixtures.js'

let body: ReturnType<typeof sampleBodies>['history']

before(async () => {
  body = sampleBodies(await peerIdOf(await testKey(1)), await peerIdOf(await testKey(2))).history
})

const accepts = (value: unknown): boolean => HistoryBodySchema.safeParse(value).success

describe('history record (public market history)', () => {
  it('expresses every outcome, a failed refund included', () => {
    assert.ok(accepts({ ...body, kind: 'refund-failed', amountSats: 2300 }))
    assert.ok(accepts({ ...body, kind: 'lease-end', reason: 'expired', amountSats: 0, sealed: undefined }))
    assert.ok(accepts({ ...body, kind: 'outage', startsAt: NOW, endsAt: NOW + 60_000 }))
  })

  it('needs what each kind is about', () => {
    assert.equal(accepts({ ...body, kind: 'lease-end' }), false, 'a lease end without reason')
    assert.equal(accepts({ ...body, kind: 'refund-failed', amountSats: 0 }), false)
    assert.equal(accepts({ ...body, kind: 'outage', startsAt: NOW + 1, endsAt: NOW }), false)
    assert.equal(accepts({ ...body, kind: 'outage' }), false)
    assert.equal(accepts({ ...body, kind: 'rumour' }), false)
    assert.equal(accepts({ ...body, leaseId: 'not-hex' }), false)
  })

  it('bounds the sealed box', () => {
    const sealed = body.sealed!
    assert.equal(accepts({ ...body, sealed: { ...sealed, ct: 'A'.repeat(2049) } }), false)
    assert.equal(accepts({ ...body, sealed: { ...sealed, epk: 'A'.repeat(42) } }), false)
    assert.equal(accepts({ ...body, sealed: { ...sealed, nonce: '+'.repeat(16) } }), false)
    assert.equal(accepts({ ...body, sealed: { ...sealed, extra: 1 } }), false)
  })

  it('is signed and verified like every record', async () => {
    const key = await testKey(1)
    const record = await signRecord('history', { ...body, leaseId: ID_B }, key, { now: NOW })
    const checked = await verifyRecord('history', encodeRecord(record), { now: NOW })
    assert.equal(checked.ok, true)
  })
})
