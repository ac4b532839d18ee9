import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import {
  BODY_SCHEMAS,
  LIMITS,
  RECORD_TYPES,
  addressMatchesNetwork,
  isNetworkId,
  listingKey,
  listingsDbName,
  offersDbName,
  offersEpoch,
  parseListingKey,
  presenceTopic,
} from '../src/index.js'
import type { RecordType } from '../src/index.js'
import { peerIdOf, sampleBodies, testKey } from './fixtures.js'

let bodies: ReturnType<typeof sampleBodies>
let provider: string

before(async () => {
  provider = await peerIdOf(await testKey(1))
  bodies = sampleBodies(provider, await peerIdOf(await testKey(2)))
})

function accepts(type: RecordType, body: unknown): boolean {
  return BODY_SCHEMAS[type].safeParse(body).success
}

describe('record body schemas', () => {
  for (const type of RECORD_TYPES) {
    it(`${type}: accepts the sample, rejects unknown fields and non-objects`, () => {
      assert.ok(accepts(type, bodies[type]))
      assert.equal(accepts(type, { ...bodies[type], unexpected: true }), false)
      assert.equal(accepts(type, null), false)
      assert.equal(accepts(type, []), false)
      assert.equal(accepts(type, 'body'), false)
    })
  }

  it('listing: bounds strings, arrays and integers', () => {
    const l = bodies.listing
    const bad: unknown[] = [
      { ...l, deviceId: 'Upper' },
      { ...l, deviceId: 'a'.repeat(65) },
      { ...l, deviceId: '-lead' },
      { ...l, version: 0 },
      { ...l, version: 1.5 },
      { ...l, name: '' },
      { ...l, name: 'x'.repeat(LIMITS.maxNameLength + 1) },
      { ...l, name: 'two\nlines' },
      { ...l, description: 'bell\u0007' },
      { ...l, description: 'rtl\u202eoverride' },
      { ...l, description: 'x'.repeat(LIMITS.maxDescriptionLength + 1) },
      { ...l, satsPerHour: 0 },
      { ...l, satsPerHour: LIMITS.maxSats + 1 },
      { ...l, minHours: 10, maxHours: 5 },
      { ...l, slots: LIMITS.maxSlots + 1 },
      { ...l, images: [] },
      { ...l, images: Array.from({ length: LIMITS.maxImages + 1 }, (_, i) => `img${i}`) },
      { ...l, images: ['has space'] },
      { ...l, relays: Array.from({ length: LIMITS.maxRelays + 1 }, () => 'ssh://r.example:22') },
      { ...l, relays: ['http://not-a-relay'] },
      { ...l, sshHostKey: 'MD5:aa:bb' },
      { ...l, status: 'hidden' },
      { ...l, bitcoinNetwork: 'litecoin' },
      { ...l, specs: { ...l.specs, cpuCores: 0 } },
      { ...l, specs: { ...l.specs, memoryMb: -1 } },
      { ...l, specs: { ...l.specs, arch: 'ARM 64' } },
      { ...l, specs: { ...l.specs, gpu: 'none' } },
      { ...l, limits: { ...l.limits, cpus: 0 } },
    ]
    bad.forEach((body, i) => assert.equal(accepts('listing', body), false, `case ${i} was accepted`))
    assert.ok(accepts('listing', { ...l, relays: [] }))
    assert.ok(accepts('listing', { ...l, relays: ['ssh://[2001:db8::1]:22'] }))
  })

  it('rent-request: requires OpenSSH public keys and a well-formed listing key', () => {
    const r = bodies['rent-request']
    assert.equal(accepts('rent-request', { ...r, sshPublicKeys: [] }), false)
    assert.equal(
      accepts('rent-request', { ...r, sshPublicKeys: ['-----BEGIN OPENSSH PRIVATE KEY-----'] }),
      false,
    )
    assert.equal(accepts('rent-request', { ...r, sshPublicKeys: ['ssh-dss AAAAB3NzaC1kc3M='] }), false)
    assert.equal(
      accepts('rent-request', { ...r, sshPublicKeys: [`${r.sshPublicKeys[0]}\nssh-rsa AAAA`] }),
      false,
    )
    assert.equal(accepts('rent-request', { ...r, listingKey: 'no-slash' }), false)
    assert.equal(accepts('rent-request', { ...r, durationSeconds: 0 }), false)
    assert.equal(accepts('rent-request', { ...r, durationSeconds: LIMITS.maxLeaseSeconds + 1 }), false)
    const { refundAddress: _omitted, ...withoutRefund } = r
    assert.ok(accepts('rent-request', withoutRefund))
  })

  it('offer and extension: invoice amount equals the price and the address matches the network', () => {
    const o = bodies.offer
    assert.equal(accepts('offer', { ...o, priceSats: o.priceSats + 1 }), false)
    assert.equal(accepts('offer', { ...o, invoice: { ...o.invoice, network: 'mainnet' } }), false)
    assert.equal(accepts('offer', { ...o, invoice: { ...o.invoice, extra: 1 } }), false)
    assert.equal(accepts('offer', { ...o, requestId: 'A'.repeat(64) }), false)
    const e = bodies['lease-extension']
    assert.equal(accepts('lease-extension', { ...e, invoice: { ...e.invoice, amountSats: 1 } }), false)
  })

  it('lease: ends after it starts and needs at least one SSH endpoint', () => {
    const l = bodies.lease
    assert.equal(accepts('lease', { ...l, expiresAt: l.startsAt }), false)
    assert.equal(accepts('lease', { ...l, ssh: { ...l.ssh, endpoints: [] } }), false)
    assert.equal(accepts('lease', { ...l, ssh: { ...l.ssh, user: 'Root;rm' } }), false)
  })

  it('lease-end and refund: known reasons, non-negative sats, txid format', () => {
    assert.equal(accepts('lease-end', { ...bodies['lease-end'], reason: 'bored' }), false)
    assert.equal(accepts('lease-end', { ...bodies['lease-end'], refundDueSats: -1 }), false)
    assert.equal(accepts('refund', { ...bodies.refund, amountSats: 0 }), false)
    assert.equal(accepts('refund', { ...bodies.refund, txid: 'F'.repeat(64) }), false)
  })

  it('presence: bounded listing ids and optional fields', () => {
    assert.ok(accepts('presence', { seq: 0 }))
    const tooMany = Array.from({ length: LIMITS.maxPresenceListings + 1 }, (_, i) => `d${i}`)
    assert.equal(accepts('presence', { seq: 0, listings: tooMany }), false)
    assert.equal(accepts('presence', { seq: -1 }), false)
    const addr = '/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWAm9svG5k8NcGBvuFvT5DFJAXQS71HYw3W9GLDXng5Z5p'
    assert.ok(accepts('presence', { seq: 1, addrs: [addr] }))
    assert.equal(accepts('presence', { seq: 1, addrs: Array(LIMITS.maxSshEndpoints + 1).fill(addr) }), false)
    assert.equal(accepts('presence', { seq: 1, addrs: ['not an address'] }), false)
  })
})

describe('names and keys', () => {
  it('builds and parses listing keys', () => {
    const key = listingKey(provider, 'pi-kitchen')
    assert.deepEqual(parseListingKey(key), { providerPeerId: provider, deviceId: 'pi-kitchen' })
    assert.equal(parseListingKey('nope'), undefined)
    assert.equal(parseListingKey(`${provider}/UPPER`), undefined)
  })

  it('derives topics and store names from valid network ids only', () => {
    assert.equal(presenceTopic('regtest'), '/rpib/regtest/presence/1')
    assert.equal(listingsDbName('sandbox-alice'), 'rpib-sandbox-alice-listings-v1')
    assert.equal(offersDbName('mainnet', '2026-11'), 'rpib-mainnet-offers-2026-11-v1')
    assert.equal(offersEpoch(Date.UTC(2026, 0, 31, 23, 59)), '2026-01')
    assert.ok(isNetworkId('sandbox-x1'))
    for (const bad of ['', 'Mainnet', 'sandbox-', 'sandbox-UP', 'main net', 'regtest/..']) {
      assert.equal(isNetworkId(bad), false, bad)
    }
    assert.throws(() => presenceTopic('../etc'), TypeError)
    assert.throws(() => offersDbName('mainnet', '2026-13'), TypeError)
  })

  it('matches address prefixes to Bitcoin networks', () => {
    assert.ok(addressMatchesNetwork('bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq', 'mainnet'))
    assert.ok(addressMatchesNetwork('BC1QAR0SRRR7XFKVY5L643LYDNW9RE59GTZZWF5MDQ', 'mainnet'))
    assert.ok(addressMatchesNetwork('1BoatSLRHtKNngkdXEeobR76b53LETtpyT', 'mainnet'))
    assert.ok(addressMatchesNetwork('tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx', 'testnet'))
    assert.ok(addressMatchesNetwork('bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080', 'regtest'))
    assert.equal(addressMatchesNetwork('bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080', 'mainnet'), false)
    assert.equal(addressMatchesNetwork('tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx', 'mainnet'), false)
    assert.equal(addressMatchesNetwork('1BoatSLRHtKNngkdXEeobR76b53LETtpyT', 'regtest'), false)
  })
})
