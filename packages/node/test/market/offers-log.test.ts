import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { encodeRecord, offersEpoch, signRecord } from '@rpib/protocol'
import { RpibError } from '../../src/errors.js'
import { logger } from '../../src/log.js'
import { createMarketNode, type MarketNode } from '../../src/market/market-node.js'
import { OffersLog, retainedEpochs, signHistory } from '../../src/market/offers-log.js'
import { ReputationBook } from '../../src/market/reputation-book.js'
import { randomSandboxNetworkId } from '../../src/p2p/network-id.js'
import { loopbackP2p, sampleListing, waitFor } from './fixtures.js'

const LEASE_ID = 'ab'.repeat(32)

async function leaseEnd(key: Ed25519PrivateKey, now = Date.now(), renter?: string): Promise<Uint8Array> {
  const provider = peerIdFromPrivateKey(key).toString()
  const record = await signHistory(
    {
      kind: 'lease-end',
      leaseId: LEASE_ID,
      listingKey: `${provider}/pi-rep`,
      provider,
      renter: renter ?? provider,
      reason: 'expired',
      endsAt: now,
      amountSats: 0,
    },
    undefined,
    key,
    provider,
    { now },
  )
  return encodeRecord(record)
}

test('retention keeps the current month and the ones before it', () => {
  assert.deepEqual(retainedEpochs(Date.UTC(2026, 0, 15), 3), ['2026-01', '2025-12', '2025-11'])
  assert.deepEqual(retainedEpochs(Date.UTC(2026, 2, 1), 1), ['2026-03'])
})

describe('offers log (signed market history, one OrbitDB log per month)', { timeout: 60_000 }, () => {
  let dir: string
  let a: MarketNode
  let b: MarketNode
  let providerKey: Ed25519PrivateKey
  const networkId = randomSandboxNetworkId()

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rpib-offers-'))
    providerKey = await generateKeyPair('Ed25519')
    a = await createMarketNode({
      dataDir: join(dir, 'a'),
      networkId,
      privateKey: providerKey,
      p2p: loopbackP2p(),
    })
    b = await createMarketNode({ dataDir: join(dir, 'b'), networkId, p2p: loopbackP2p(a.addresses()) })
  })

  after(async () => {
    await b?.stop()
    await a?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  test('a lease outcome is appended, replicated, and counts towards the provider reputation', async () => {
    await a.publishListing(sampleListing('pi-rep'))
    const epoch = offersEpoch(Date.now())
    assert.equal(a.offers.epochs()[0], epoch)
    const book = new ReputationBook({ offers: a.offers, index: a.index })
    await book.start()
    try {
      await a.offers.append(await leaseEnd(providerKey))
      const mine = await a.offers.records(epoch)
      assert.equal(mine.length, 1)
      assert.equal(mine[0]!.body.kind, 'lease-end')
      assert.equal(a.show(`${a.peerId}/pi-rep`)?.reputation, 1)
    } finally {
      book.stop()
    }
    const theirs = await waitFor('record replicated to b', async () => {
      const records = await b.offers.records(epoch)
      return records.length === 1 ? records : undefined
    })
    assert.equal(theirs[0]!.signer, a.peerId)
  })

  test('refuses what is not signed history or not of a kept epoch', async () => {
    const stranger = await generateKeyPair('Ed25519')
    const listing = encodeRecord(
      await signRecord('listing', { ...sampleListing('pi-x'), version: 1, status: 'listed' }, stranger),
    )
    await assert.rejects(
      a.offers.append(listing),
      (e: unknown) => e instanceof RpibError && e.code === 'ERR_HISTORY_INVALID',
    )
    const plainLeaseEnd = encodeRecord(
      await signRecord(
        'lease-end',
        { leaseId: LEASE_ID, reason: 'expired', endedAt: Date.now(), servedSeconds: 60, refundDueSats: 0 },
        stranger,
      ),
    )
    await assert.rejects(
      a.offers.append(plainLeaseEnd),
      (e: unknown) => e instanceof RpibError && /not history/.test(e.message),
    )
    const tampered = new Uint8Array(await leaseEnd(stranger))
    tampered[tampered.length - 5]! ^= 1
    await assert.rejects(
      a.offers.append(tampered),
      (e: unknown) => e instanceof RpibError && e.code === 'ERR_HISTORY_INVALID',
    )
    const old = await leaseEnd(stranger, Date.UTC(2020, 0, 10))
    await assert.rejects(
      a.offers.append(old),
      (e: unknown) => e instanceof RpibError && e.code === 'ERR_HISTORY_EPOCH',
    )
  })

  test('rotates to a new month and drops epochs past retention', async () => {
    let now = Date.UTC(2026, 0, 20)
    const offers = new OffersLog({
      orbitdb: a.orbitdb,
      networkId: randomSandboxNetworkId(),
      keepEpochs: 2,
      log: logger('rpib:test'),
      now: () => now,
    })
    await offers.start()
    try {
      assert.deepEqual(offers.epochs(), ['2026-01', '2025-12'])
      await offers.append(await leaseEnd(providerKey, Date.UTC(2026, 0, 19)))
      now = Date.UTC(2026, 2, 2)
      await offers.rotate()
      assert.deepEqual(offers.epochs(), ['2026-03', '2026-02'])
      assert.deepEqual(await offers.records('2026-01'), [])
    } finally {
      await offers.stop()
    }
  })
})
