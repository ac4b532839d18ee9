/**
 * Presence beats carry the provider's signed addresses: a node that is not connected to a provider (it
 * joined through another peer, without mDNS) can still dial it once it has seen a beat.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { createMarketNode, type MarketNode } from '../../src/market/market-node.js'
import { loopbackP2p, sampleListing, waitFor } from './fixtures.js'

const networkId = `sandbox-pa${process.pid}`
let dir: string
const nodes: MarketNode[] = []

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rpib-presence-addrs-'))
})
after(async () => {
  for (const n of nodes.reverse()) await n.stop()
  await rm(dir, { recursive: true, force: true })
})

async function node(name: string, bootstrap: string[]): Promise<MarketNode> {
  const n = await createMarketNode({
    dataDir: join(dir, name),
    networkId,
    privateKey: await generateKeyPair('Ed25519'),
    p2p: loopbackP2p(bootstrap),
    market: { presenceIntervalMs: 300, offlineAfterMs: 5000 },
  })
  nodes.push(n)
  return n
}

test('a renter dials a provider it was never connected to, from the addresses in its presence beat', async () => {
  const hub = await node('hub', [])
  const provider = await node('provider', hub.addresses())
  const renter = await node('renter', hub.addresses())
  await provider.publishListing(sampleListing('pi-addr'))
  const providerId = peerIdFromString(provider.peerId)
  assert.equal(renter.libp2p.getConnections(providerId).length, 0, 'not connected at first')

  const known = await waitFor('the provider’s addresses in the renter’s peer store', async () => {
    const peer = await renter.libp2p.peerStore.get(providerId).catch(() => undefined)
    return peer != null && peer.addresses.length > 0 ? peer.addresses : undefined
  })
  assert.ok(known.some((a) => a.multiaddr.toString().startsWith('/ip4/127.0.0.1/tcp/')))
  const conn = await renter.libp2p.dial(providerId)
  assert.equal(conn.remotePeer.toString(), provider.peerId)
})
