import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { matchLeasePrefix } from '../../src/cli/lease.js'
import { RpibError } from '../../src/errors.js'
import { autoExtendLeadMs } from '../../src/daemon/renter-service.js'

const A = 'abcdef01' + '0'.repeat(56)
const B = 'abcdef02' + '1'.repeat(56)
const C = '12345678' + '2'.repeat(56)

const code = (fn: () => unknown): string => {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof RpibError)
    return err.code
  }
  return 'no error'
}

describe('lease id prefixes', () => {
  it('resolves a full id and any unique prefix of at least 6 hex digits, case-insensitively', () => {
    assert.equal(matchLeasePrefix([A, B, C], A), A)
    assert.equal(matchLeasePrefix([A, B, C], '123456'), C)
    assert.equal(matchLeasePrefix([A, B, C], 'ABCDEF02'), B)
  })

  it('calls a prefix of two leases ambiguous and names both', () => {
    assert.equal(
      code(() => matchLeasePrefix([A, B, C], 'abcdef')),
      'ERR_AMBIGUOUS_LEASE',
    )
    assert.throws(
      () => matchLeasePrefix([A, B], 'abcdef0'),
      /matches 2 leases \(abcdef010000, abcdef021111\)/,
    )
  })

  it('refuses short or non-hex prefixes as usage errors and unknown ones as ERR_UNKNOWN_LEASE', () => {
    for (const bad of ['abcde', '', 'abcdeg', 'abc def', A + '0', '../etc'])
      assert.equal(
        code(() => matchLeasePrefix([A], bad)),
        'ERR_USAGE',
        bad,
      )
    assert.equal(
      code(() => matchLeasePrefix([A, B], 'ffffff')),
      'ERR_UNKNOWN_LEASE',
    )
    assert.equal(
      code(() => matchLeasePrefix([], 'abcdef')),
      'ERR_UNKNOWN_LEASE',
    )
  })

  it('returns an id that starts with the prefix, or throws a typed error, for any input', () => {
    const hex = fc.stringMatching(/^[0-9a-f]{64}$/)
    fc.assert(
      fc.property(fc.array(hex, { maxLength: 8 }), fc.string({ maxLength: 70 }), (ids, prefix) => {
        try {
          const id = matchLeasePrefix(ids, prefix)
          assert.ok(id.startsWith(prefix.toLowerCase()))
          assert.equal(ids.filter((x) => x.startsWith(prefix.toLowerCase())).length, 1)
        } catch (err) {
          assert.ok(err instanceof RpibError)
        }
      }),
    )
  })
})

describe('auto-extend timing', () => {
  it('renews 20% of the period or 60 s before expiry, whichever is less', () => {
    assert.equal(autoExtendLeadMs(20), 4000)
    assert.equal(autoExtendLeadMs(300), 60_000)
    assert.equal(autoExtendLeadMs(3600), 60_000)
  })
})
