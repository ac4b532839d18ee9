import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { createMarketNode, type MarketNode } from '../../src/market/market-node.js'
import { randomSandboxNetworkId } from '../../src/p2p/network-id.js'
import { runCli } from '../helpers/cli.js'
import { loopbackP2p, sampleListing } from './fixtures.js'

describe('rpib market list|show', { timeout: 120_000 }, () => {
  let dir: string
  let home: string
  let provider: MarketNode
  const networkId = randomSandboxNetworkId()

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rpib-market-cli-'))
    home = join(dir, 'renter')
    provider = await createMarketNode({
      dataDir: join(dir, 'provider'),
      networkId,
      p2p: loopbackP2p(),
      market: { presenceIntervalMs: 200, offlineAfterMs: 2000 },
    })
    await provider.publishListing(sampleListing('pi-cli', { satsPerHour: 42 }))
    await provider.publishListing(
      sampleListing('pi-x86', { specs: { ...sampleListing('x').specs, arch: 'amd64' } }),
    )
    // loopback only: no mDNS multicast, no DHT, no relays
    const { listen, transports, mdns, dht, relayClient, dcutr, autonat } = loopbackP2p()
    await import('node:fs/promises').then((fs) => fs.mkdir(home, { recursive: true }))
    await writeFile(
      join(home, 'config.json'),
      JSON.stringify({
        network: networkId,
        p2p: { listen, transports, mdns, dht, relayClient, dcutr, autonat },
      }),
    )
  })

  after(async () => {
    await provider?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  test('list syncs from a bootstrap peer and prints the index as JSON', async () => {
    const res = await runCli([
      '--home',
      home,
      '--json',
      'market',
      'list',
      '--bootstrap',
      provider.addresses()[0]!,
      '--wait',
      '2',
    ])
    assert.equal(res.code, 0, res.stderr)
    const out = JSON.parse(res.stdout) as {
      networkId: string
      total: number
      entries: Array<{ key: string; online: boolean; listing: { body: { satsPerHour: number } } }>
    }
    assert.equal(out.networkId, networkId)
    assert.equal(out.total, 2)
    assert.equal(out.entries[0]!.key, `${provider.peerId}/pi-cli`, 'cheapest first')
    assert.equal(out.entries[0]!.listing.body.satsPerHour, 42)
    assert.equal(out.entries[0]!.online, true, 'beats seen while syncing')
  })

  test('list answers from the persisted replica without any peer, with filters and a table', async () => {
    const res = await runCli(['--home', home, 'market', 'list', '--wait', '0', '--arch', 'amd64'])
    assert.equal(res.code, 0, res.stderr)
    assert.match(res.stdout, /LISTING\s+ARCH/)
    assert.match(res.stdout, /pi-x86\s+amd64/)
    assert.doesNotMatch(res.stdout, /pi-cli/)
    assert.match(res.stdout, /\(1 of 1 on sandbox-/)
  })

  test('show prints one listing; unknown keys and bad arguments are clear errors', async () => {
    const key = `${provider.peerId}/pi-cli`
    const shown = await runCli(['--home', home, 'market', 'show', key, '--wait', '0'])
    assert.equal(shown.code, 0, shown.stderr)
    assert.match(shown.stdout, /price 42 sats\/hour/)

    const [missing, badKey, badWait, badNetwork] = await Promise.all([
      runCli(['--home', home, '--json', 'market', 'show', `${provider.peerId}/pi-none`, '--wait', '0']),
      runCli(['--home', home, 'market', 'show', 'not-a-key', '--wait', '0']),
      runCli(['--home', home, 'market', 'list', '--wait', 'soon']),
      runCli(['--home', home, 'market', 'list', '--wait', '0', '--network', 'Main Net']),
    ])
    assert.equal(missing.code, 1)
    assert.equal(
      (JSON.parse(missing.stdout) as { error: { code: string } }).error.code,
      'ERR_LISTING_NOT_FOUND',
    )
    assert.equal(badKey.code, 1)
    assert.match(badKey.stderr, /not a listing key/)
    assert.equal(badWait.code, 1)
    assert.match(badWait.stderr, /--wait must be a number/)
    assert.equal(badNetwork.code, 1)
    assert.match(badNetwork.stderr, /invalid market network id/)
  })
})
