/**
 * `rpib daemon --provider` as a separate process on real parts: it measures the device, publishes a signed
 * listing, and a renter (a market node of its own) finds it, gets an offer over /rpib/rent, pays from a
 * wallet on the devchain, receives the lease, runs a command in the container with OpenSSH over
 * /rpib/ssh (ProxyCommand `rpib proxy`), and sees the lease expire.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createDevchain } from '../../src/payments/devchain/server.js'
import { createEsploraBackend } from '../../src/payments/esplora.js'
import { createWallet, openWallet } from '../../src/payments/wallet.js'
import { createMarketNode } from '../../src/market/market-node.js'
import { fetchRentalStatus, requestOffer, waitForLease } from '../../src/rentals/negotiation.js'
import { DaemonStateSchema } from '../../src/daemon/state-file.js'
import {
  BUSYBOX_IMAGE,
  dockerSkipReason,
  makeRenterKey,
  removeProviderLeases,
  uniqueName,
} from '../containers/harness.js'
import { loopbackP2p } from '../market/fixtures.js'
import { runCli } from '../helpers/cli.js'
import { waitFor } from '../api/http.js'
import { spawnRpib, within } from './process.js'

const skip = await dockerSkipReason([BUSYBOX_IMAGE])
const ENV = { RPIB_WALLET_PASSPHRASE: 'provider-test-passphrase', RPIB_MDNS: 'false' }
const HOUR = 4

test('a provider daemon lists its device and serves a paid lease end to end', { skip }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rpib-provider-'))
  const home = join(dir, 'provider')
  const devchain = createDevchain({ port: 0 })
  await devchain.start()
  const network = `sandbox-${uniqueName('p').slice(-8)}`
  const dockerNetwork = uniqueName('rpib-prov')
  const created = await runCli(['--home', home, 'wallet', 'create', '--esplora-url', devchain.url], ENV)
  assert.equal(created.code, 0, created.stderr)
  const config = join(dir, 'config.json')
  await writeFile(
    config,
    JSON.stringify({
      provider: {
        devices: [
          {
            id: 'box',
            name: 'Test box',
            satsPerHour: 6000,
            maxHours: 4,
            images: [BUSYBOX_IMAGE],
            limits: { memoryMb: 64, diskMb: 16, pidsLimit: 64 },
          },
        ],
        secondsPerHour: HOUR,
        zeroConfMaxSats: 1_000_000,
        dockerNetwork,
      },
    }),
  )
  const daemon = spawnRpib(
    [
      '--home',
      home,
      'daemon',
      '--provider',
      '--config',
      config,
      '--network',
      network,
      '--api-port',
      '0',
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '--bitcoin-url',
      devchain.url,
    ],
    ENV,
  )
  let renterNode: Awaited<ReturnType<typeof createMarketNode>> | undefined
  try {
    const state = await waitFor(
      async () => {
        if (daemon.child.exitCode != null) throw new Error(`daemon exited: ${daemon.stderr()}`)
        const text = await readFile(join(home, 'daemon.json'), 'utf8').catch(() => undefined)
        return text != null ? DaemonStateSchema.parse(JSON.parse(text)) : undefined
      },
      30_000,
      'daemon.json',
    )
    const headers = { authorization: `Bearer ${(await readFile(join(home, 'api-token'), 'utf8')).trim()}` }
    const api = async (path: string) => {
      const res = await fetch(`${state.apiUrl}${path}`, { headers })
      return res.ok ? ((await res.json()) as Record<string, unknown>) : undefined
    }
    await waitFor(
      async () => (await api('/api/provider/rentals')) ?? undefined,
      60_000,
      'the provider service',
    )
    const p2p = (await api('/api/network')) as { addresses: string[] }

    // the renter: its own market node finds the listing; its own wallet pays
    const renterKey = await generateKeyPair('Ed25519')
    renterNode = await createMarketNode({
      dataDir: join(dir, 'renter'),
      networkId: network,
      privateKey: renterKey,
      p2p: loopbackP2p(p2p.addresses),
    })
    const renter = renterNode
    const entry = await waitFor(() => renter.show(`${state.peerId}/box`), 30_000, 'the listing on the renter')
    assert.equal(entry.listing.body.satsPerHour, 6000)
    const wallet = join(dir, 'renter-wallet')
    await createWallet({
      home: wallet,
      network: 'regtest',
      passphrase: 'renter-wallet',
      kdf: { N: 1024, r: 8, p: 1 },
    })
    const renterWallet = await openWallet({
      home: wallet,
      backend: createEsploraBackend({ url: devchain.url }),
      passphrase: 'renter-wallet',
    })
    await devchain.faucet((await renterWallet.nextReceiveAddress()).address, 100_000)
    await devchain.mine(1)

    const sshKey = await makeRenterKey(dir)
    const { offer } = await requestOffer({
      libp2p: renter.libp2p,
      privateKey: renterKey,
      listing: entry.listing,
      durationSeconds: 2 * HOUR,
      image: BUSYBOX_IMAGE,
      sshPublicKeys: [sshKey.publicKey],
      secondsPerHour: HOUR,
    })
    await renterWallet.send({ to: offer.body.invoice.address, amountSats: offer.body.priceSats })
    const lease = await waitForLease({ libp2p: renter.libp2p, offer, pollMs: 200, timeoutMs: 30_000 })
    assert.equal(lease.body.ssh.hostKeyFingerprint, entry.listing.body.sshHostKey)

    // SSH over libp2p with the host key pinned from the lease, through `rpib ssh` (OpenSSH + rpib proxy)
    const peer = lease.body.ssh.endpoints.find((e) => e.startsWith('/ip4/127.0.0.1'))
    assert.ok(peer !== undefined, lease.body.ssh.endpoints.join(' '))
    const shell = await runCli(
      [
        '--home',
        join(dir, 'renter-cli'),
        'ssh',
        '--peer',
        peer,
        '--host-key',
        lease.body.ssh.hostKeyFingerprint,
        '--user',
        lease.body.ssh.user,
        '-i',
        sshKey.path,
        'echo hi from the provider daemon; exit 5',
      ],
      {},
    )
    assert.equal(shell.code, 5, shell.stderr)
    assert.match(shell.stdout, /hi from the provider daemon/)

    const ended = await waitFor(
      async () => {
        const view = await fetchRentalStatus({ libp2p: renter.libp2p, offer })
        return view.end !== undefined ? view : undefined
      },
      30_000,
      'the lease to end',
    )
    assert.equal(ended.end?.body.reason, 'expired')
    const rentals = (await api('/api/provider/rentals')) as {
      rentals: { status: string; endReason?: string }[]
    }
    assert.deepEqual(
      rentals.rentals.map((r) => [r.status, r.endReason]),
      [['ended', 'expired']],
    )

    daemon.child.kill('SIGTERM')
    assert.deepEqual(await within(daemon.exited, 15_000, 'daemon exit'), { code: 0, signal: null })
  } finally {
    if (daemon.child.exitCode == null) daemon.child.kill('SIGKILL')
    await renterNode?.stop()
    await devchain.stop()
    await removeProviderLeases(dockerNetwork, join(home, 'provider', 'volumes'))
    await rm(dir, { recursive: true, force: true })
  }
})
