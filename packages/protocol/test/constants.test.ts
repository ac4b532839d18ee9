import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  DEFAULT_TTL_MS,
  LIMITS,
  MAX_RECORD_BYTES,
  MAX_TTL_MS,
  PROTOCOLS,
  RECORD_TYPES,
  TIMEOUTS,
  domainTag,
} from '../src/index.js'

describe('constants', () => {
  it('gives every record type a distinct domain tag, a default TTL within its maximum, and a size limit', () => {
    const tags = new Set(RECORD_TYPES.map(domainTag))
    assert.equal(tags.size, RECORD_TYPES.length)
    for (const type of RECORD_TYPES) {
      assert.match(domainTag(type), /^rpib\/v1\/[a-z-]+\0$/)
      assert.ok(DEFAULT_TTL_MS[type] > 0 && DEFAULT_TTL_MS[type] <= MAX_TTL_MS[type], type)
      assert.ok(MAX_RECORD_BYTES[type] <= LIMITS.maxRecordBytes, type)
    }
  })

  it('keeps presence timing coherent: a device is offline only after several missed beats', () => {
    assert.ok(TIMEOUTS.presenceOfflineAfterMs >= 2 * TIMEOUTS.presenceIntervalMs)
    assert.ok(DEFAULT_TTL_MS.presence >= TIMEOUTS.presenceIntervalMs)
    assert.deepEqual(PROTOCOLS, { rent: '/rpib/rent/1.0.0', ssh: '/rpib/ssh/1.0.0' })
  })
})
