import assert from 'node:assert/strict'
import { test } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { parseP2pConfig } from '../../src/p2p/config.js'
import { createP2pNode } from '../../src/p2p/libp2p.js'
import { parseNetworkId, randomSandboxNetworkId } from '../../src/p2p/network-id.js'
import { RpibError } from '../../src/errors.js'

test('network ids: the four kinds are accepted, anything else is a typed error', () => {
  for (const id of ['mainnet', 'testnet', 'regtest', 'sandbox-abc1', randomSandboxNetworkId()]) {
    assert.equal(parseNetworkId(id), id)
  }
  for (const bad of ['', 'Mainnet', 'sandbox-', 'sandbox-UPPER', 'devnet', 'mainnet ']) {
    assert.throws(
      () => parseNetworkId(bad),
      (err: unknown) => err instanceof RpibError && err.code === 'ERR_NETWORK_ID',
    )
  }
})

test('p2p config: defaults turn everything on, every knob can be set, bad values are refused', () => {
  const defaults = parseP2pConfig()
  assert.equal(defaults.mdns, true)
  assert.equal(defaults.dht, true)
  assert.equal(defaults.relayClient, true)
  assert.equal(defaults.transports.websockets, true)
  const custom = parseP2pConfig({
    mdns: false,
    gossipsub: { heartbeatIntervalMs: 100 },
    connectionManager: { maxConnections: 5 },
  })
  assert.equal(custom.mdns, false)
  assert.equal(custom.gossipsub.heartbeatIntervalMs, 100)
  assert.equal(custom.gossipsub.maxMessageBytes, 1024 * 1024)
  assert.equal(custom.connectionManager.maxConnections, 5)
  assert.equal(defaults.gossipsub.ipColocationThreshold, 10)
  assert.deepEqual(
    parseP2pConfig({ gossipsub: { ipColocationWhitelist: ['127.0.0.1'] } }).gossipsub.ipColocationWhitelist,
    ['127.0.0.1'],
  )
  assert.throws(() => parseP2pConfig({ gossipsub: { invalidMessagePenalty: 5 } }))
  assert.throws(() => parseP2pConfig({ connectionManager: { maxConnections: 0 } }))
})

test('libp2p factory: refuses a config without transports, starts and stops a full-featured node on loopback', async () => {
  const privateKey = await generateKeyPair('Ed25519')
  await assert.rejects(
    createP2pNode({
      config: parseP2pConfig({ transports: { tcp: false, websockets: false }, relayClient: false }),
      networkId: 'sandbox-unit',
      privateKey,
    }),
    (err: unknown) => err instanceof RpibError && err.code === 'ERR_P2P_CONFIG',
  )
  // everything on except mDNS (multicast would leave loopback)
  const node = await createP2pNode({
    config: parseP2pConfig({ listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws'], mdns: false }),
    networkId: 'sandbox-unit',
    privateKey,
  })
  try {
    const addrs = node.getMultiaddrs().map(String)
    assert.ok(addrs.some((a) => a.includes('/tcp/') && !a.includes('/ws')))
    assert.ok(addrs.some((a) => a.includes('/ws')))
    assert.ok(node.services.dht != null)
    assert.ok(
      node.getProtocols().includes('/rpib/sandbox-unit/kad/1.0.0'),
      'the DHT is namespaced by network id',
    )
  } finally {
    await node.stop()
  }
})
