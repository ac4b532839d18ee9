import assert from 'node:assert/strict'
import { createPrivateKey, createPublicKey } from 'node:crypto'
import { test } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { encodeRecord, offersEpoch, signRecord, verifyRecord, type HistoryRecord } from '@rpib/protocol'
import { RpibError } from '../../src/errors.js'
import { checkHistoryPayload, openHistory, signHistory } from '../../src/market/offers-log.js'
import { ed25519PublicToX25519, ed25519SeedToX25519, open, seal } from '../../src/market/seal.js'

const REFUND_ADDRESS = 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080'
const TXID = '9f'.repeat(32)
const ENDPOINT = '/ip4/127.0.0.1/tcp/40123/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'
const context = new TextEncoder().encode('test-context')

const isSealError = (e: unknown): boolean => e instanceof RpibError && e.code === 'ERR_SEAL_OPEN'

async function parties() {
  const provider = await generateKeyPair('Ed25519')
  const renter = await generateKeyPair('Ed25519')
  const stranger = await generateKeyPair('Ed25519')
  return {
    provider,
    renter,
    stranger,
    providerId: peerIdFromPrivateKey(provider).toString(),
    renterId: peerIdFromPrivateKey(renter).toString(),
  }
}

test('the X25519 key derived from an Ed25519 seed matches the one derived from its public key', async () => {
  const key = await generateKeyPair('Ed25519')
  const secret = ed25519SeedToX25519(key.raw)
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), secret])
  const derivedPublic = createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }))
    .export({ format: 'der', type: 'spki' })
    .subarray(12)
  assert.deepEqual(new Uint8Array(derivedPublic), ed25519PublicToX25519(key.publicKey.raw))
})

test('a sealed box opens for its recipient only, and any change makes it fail', async () => {
  const { renter, stranger, renterId } = await parties()
  const plaintext = new TextEncoder().encode('refund to ' + REFUND_ADDRESS)
  const box = seal(plaintext, renterId, context)
  assert.equal(box.to, renterId)
  assert.ok(!Buffer.from(box.ct, 'base64url').toString('latin1').includes(REFUND_ADDRESS))
  assert.deepEqual(new Uint8Array(open(box, renter, context)), plaintext)

  assert.throws(() => open(box, stranger, context), isSealError)
  assert.throws(() => open(box, renter, new TextEncoder().encode('other-entry')), isSealError)
  const ct = Buffer.from(box.ct, 'base64url')
  ct[3]! ^= 1
  assert.throws(() => open({ ...box, ct: ct.toString('base64url') }, renter, context), isSealError)
  const nonce = Buffer.from(box.nonce, 'base64url')
  nonce[0]! ^= 1
  assert.throws(() => open({ ...box, nonce: nonce.toString('base64url') }, renter, context), isSealError)
  const other = seal(plaintext, renterId, context)
  assert.throws(() => open({ ...box, epk: other.epk }, renter, context), isSealError)
  assert.throws(() => open({ ...box, ct: 'AAAA' }, renter, context), isSealError)
})

test('sealing to something that is not an Ed25519 peer id is a typed error', () => {
  assert.throws(
    () => seal(new Uint8Array(1), 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N', context),
    (e: unknown) => e instanceof RpibError && e.code === 'ERR_SEAL_KEY',
  )
  assert.throws(
    () => seal(new Uint8Array(1), 'not-a-peer-id', context),
    (e: unknown) => e instanceof RpibError && e.code === 'ERR_SEAL_KEY',
  )
})

test('a public history entry hides its private fields from everyone but the counterparty', async () => {
  const { provider, renter, stranger, providerId, renterId } = await parties()
  const record = await signHistory(
    {
      kind: 'refund',
      leaseId: 'cd'.repeat(32),
      listingKey: `${providerId}/pi-seal`,
      provider: providerId,
      renter: renterId,
      amountSats: 1200,
      seq: 0,
    },
    {
      refundAddress: REFUND_ADDRESS,
      txid: TXID,
      ssh: { user: 'lease1', endpoints: [ENDPOINT], hostKeyFingerprint: 'SHA256:' + 'B'.repeat(43) },
    },
    provider,
    providerId,
  )
  const bytes = encodeRecord(record)
  const visible = Buffer.from(bytes).toString('latin1')
  for (const secret of [REFUND_ADDRESS, TXID, ENDPOINT, 'lease1'])
    assert.ok(!visible.includes(secret), `${secret} is in the public bytes`)
  // the public part stays readable by anyone
  assert.ok(visible.includes(renterId))
  const check = await checkHistoryPayload(
    { op: 'ADD', value: { record: bytes } },
    offersEpoch(record.createdAt),
  )
  assert.equal(check.ok, true)

  const opened = openHistory(record, renter)
  assert.equal(opened.refundAddress, REFUND_ADDRESS)
  assert.equal(opened.txid, TXID)
  assert.deepEqual(opened.ssh?.endpoints, [ENDPOINT])
  assert.throws(() => openHistory(record, provider), isSealError)
  assert.throws(() => openHistory(record, stranger), isSealError)

  // moving the box into another (re-signed) entry fails: it is bound to signer, kind, lease and recipient
  const { sealed, ...publicBody } = record.body
  const moved = await signHistory({ ...publicBody, seq: 1 }, undefined, provider, providerId)
  const withStolenBox = { ...moved, body: { ...moved.body, sealed } } as HistoryRecord
  assert.throws(() => openHistory(withStolenBox, renter), isSealError)

  // tampering with the sealed bytes breaks the signature before anyone tries to open it
  const ct = Buffer.from(record.body.sealed!.ct, 'base64url')
  ct[0]! ^= 0xff
  const tampered = {
    ...record,
    body: { ...record.body, sealed: { ...record.body.sealed!, ct: ct.toString('base64url') } },
  }
  const verified = await verifyRecord('history', encodeRecord(tampered))
  assert.equal(verified.ok, false)
  assert.throws(() => openHistory(tampered, renter), isSealError)
})

test('history entries speak only for their signer: forged and mis-sealed entries are refused', async () => {
  const { provider, renter, stranger, providerId, renterId } = await parties()
  const base = {
    leaseId: 'ef'.repeat(32),
    listingKey: `${providerId}/pi-seal`,
    provider: providerId,
    renter: renterId,
  }
  const epoch = offersEpoch(Date.now())
  const payload = (r: HistoryRecord) => ({ op: 'ADD', value: { record: encodeRecord(r) } })

  // a renter (or anyone) cannot sign the provider's lease end
  const forgedEnd = await signHistory(
    { ...base, kind: 'lease-end', reason: 'expired' },
    undefined,
    renter,
    renterId,
  )
  const forged = await checkHistoryPayload(payload(forgedEnd), epoch)
  assert.equal(forged.ok, false)
  assert.match(forged.ok ? '' : forged.detail, /must be signed by/)

  // an outage report must come from the lease's renter
  const outage = { ...base, kind: 'outage' as const, startsAt: 1000, endsAt: 5000 }
  const strangerId = peerIdFromPrivateKey(stranger).toString()
  const fake = await signHistory(outage, undefined, stranger, strangerId)
  assert.equal((await checkHistoryPayload(payload(fake), epoch)).ok, false)
  const real = await signHistory(outage, undefined, renter, renterId)
  assert.equal((await checkHistoryPayload(payload(real), epoch)).ok, true)

  // private fields sealed to a third party are refused (they would leak to someone outside the lease)
  const leak = await signHistory({ ...base, kind: 'offer', amountSats: 10 }, undefined, provider, providerId)
  const box = seal(new Uint8Array(4), strangerId, context)
  const resigned = await signRecord('history', { ...leak.body, sealed: box }, provider)
  const refused = await checkHistoryPayload(payload(resigned), epoch)
  assert.equal(refused.ok, false)
  assert.match(refused.ok ? '' : refused.detail, /sealed to someone other/)
})
