/**
 * `rpib rent` start → shell, on real parts in one process (the daemon and CLI add process start-up on
 * top): offer over libp2p, 0-conf payment from a wallet on the devchain, invoice detection, container
 * provisioning, signed lease, then OpenSSH `true` with the pinned host key. Median of 5, with where the
 * time goes. Needs Docker and the rpib/busybox image (scripts/build-base-image --only busybox).
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { signRecord, type Listing } from '@rpib/protocol'
import { createDockerRuntime } from '../src/containers/index.js'
import { createDevchain } from '../src/payments/devchain/server.js'
import { createEsploraBackend } from '../src/payments/esplora.js'
import { createInvoiceService } from '../src/payments/invoice-service.js'
import { createInvoiceFileStore } from '../src/payments/invoice-store.js'
import { createWallet, openWallet } from '../src/payments/wallet.js'
import { createRentalNegotiator, requestOffer, waitForLease } from '../src/rentals/negotiation.js'
import { createLeaseManager } from '../src/rentals/provider-leases.js'
import { createRentalFileStore } from '../src/rentals/rental-store.js'
import { createSshServer } from '../src/ssh/index.js'
import { opensshClientOptions } from '../test/containers/harness.js'
import { testListingBody } from '../test/rentals/fixtures.js'
import { printTable } from './table.js'

const exec = promisify(execFile)
const RUNS = 5
const IMAGE = 'rpib/busybox:latest'
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const dir = await mkdtemp(join(tmpdir(), 'rpib-bench-rent-'))
const devchain = createDevchain({ port: 0 })
await devchain.start()
const backend = createEsploraBackend({ url: devchain.url })
const kdf = { N: 1024, r: 8, p: 1 }
const wallet = async (name: string) => {
  const home = join(dir, name)
  await createWallet({ home, network: 'regtest', passphrase: 'bench-passphrase', kdf })
  return { home, wallet: await openWallet({ home, backend, passphrase: 'bench-passphrase' }) }
}
const provider = await wallet('provider')
const renter = await wallet('renter')
await devchain.faucet((await renter.wallet.nextReceiveAddress()).address, 10_000_000)
await devchain.mine(1)

const node = (privateKey: Ed25519PrivateKey, listen: string[]) =>
  createLibp2p({
    privateKey,
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
  })
const providerKey = await generateKeyPair('Ed25519')
const renterKey = await generateKeyPair('Ed25519')
const providerNode = await node(providerKey, ['/ip4/127.0.0.1/tcp/0'])
const renterNode = await node(renterKey, [])
await renterNode.peerStore.merge(providerNode.peerId, { multiaddrs: providerNode.getMultiaddrs() })

const invoices = createInvoiceService({
  store: createInvoiceFileStore(provider.home),
  backend,
  wallet: provider.wallet,
  pollIntervalMs: 100,
  policy: { confirmationsRequired: 1, zeroConfMaxSats: 10_000_000 },
})
await invoices.start()
const runtime = createDockerRuntime({ networkName: `rpib-bench-${process.pid}` })
await runtime.ensureNetwork()
const ssh = createSshServer({
  hostKeyPath: join(dir, 'host_key'),
  runtime,
  lookupLease: (user) => manager.lookup(user),
})
await ssh.start()
const manager = createLeaseManager({
  privateKey: providerKey,
  peerId: providerNode.peerId,
  store: createRentalFileStore(join(dir, 'rentals')),
  invoices,
  runtime,
  listing: () => listing,
  sshAccess: () => ({
    endpoints: [`ssh://127.0.0.1:${ssh.port}`],
    hostKeyFingerprint: ssh.hostKeyFingerprint,
  }),
  sweepIntervalMs: 200,
})
await manager.start()
const listing: Listing = await signRecord(
  'listing',
  testListingBody({
    deviceId: 'bench',
    satsPerHour: 1000,
    maxHours: 24,
    slots: RUNS,
    images: [IMAGE],
    sshHostKey: ssh.hostKeyFingerprint,
  }),
  providerKey,
)
const negotiator = createRentalNegotiator({
  privateKey: providerKey,
  peerId: providerNode.peerId,
  listing: () => listing,
  busySlots: (d) => manager.busySlots(d),
  invoices,
  bitcoinNetwork: 'regtest',
  onOffer: (o) => manager.track(o),
  status: (id) => manager.rentalStatus(id),
})
await negotiator.start(providerNode)
const keyPath = join(dir, 'id_ed25519')
await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyPath])
const publicKey = (await exec('cat', [`${keyPath}.pub`])).stdout.trim()
const knownHosts = join(dir, 'known_hosts')
await writeFile(knownHosts, `[127.0.0.1]:${ssh.port} ${ssh.hostPublicKey}\n`)

const phases = {
  negotiate: [] as number[],
  pay: [] as number[],
  detectAndProvision: [] as number[],
  ssh: [] as number[],
  total: [] as number[],
}
try {
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now()
    const { offer } = await requestOffer({
      libp2p: renterNode,
      privateKey: renterKey,
      listing,
      durationSeconds: 3600,
      image: IMAGE,
      sshPublicKeys: [publicKey],
    })
    const t1 = performance.now()
    await renter.wallet.send({ to: offer.body.invoice.address, amountSats: offer.body.priceSats })
    const t2 = performance.now()
    const lease = await waitForLease({ libp2p: renterNode, offer, pollMs: 50, timeoutMs: 60_000 })
    const t3 = performance.now()
    await exec('ssh', [
      ...opensshClientOptions(knownHosts, keyPath),
      '-p',
      String(ssh.port),
      `${lease.body.ssh.user}@127.0.0.1`,
      'true',
    ])
    const t4 = performance.now()
    phases.negotiate.push(t1 - t0)
    phases.pay.push(t2 - t1)
    phases.detectAndProvision.push(t3 - t2)
    phases.ssh.push(t4 - t3)
    phases.total.push(t4 - t0)
  }
  printTable(`rent → shell, in-process, median of ${RUNS} (0-conf, devchain, busybox lease)`, [
    { metric: 'negotiate (RentRequest → Offer over libp2p)', value: median(phases.negotiate), unit: 'ms' },
    { metric: 'pay (wallet sync, coin selection, sign, broadcast)', value: median(phases.pay), unit: 'ms' },
    {
      metric: 'detect payment + provision + signed lease',
      value: median(phases.detectAndProvision),
      unit: 'ms',
    },
    { metric: 'OpenSSH connect + `true`', value: median(phases.ssh), unit: 'ms' },
    { metric: 'total: rent start → shell', value: median(phases.total), unit: 'ms', goal: '≤ 2000' },
  ])
} finally {
  await negotiator.stop()
  await manager.stop()
  await ssh.stop()
  await invoices.stop()
  for (const l of await runtime.listLeases()) await runtime.removeLease(l.leaseId)
  await runtime.removeNetwork()
  await renterNode.stop()
  await providerNode.stop()
  await devchain.stop()
  await rm(dir, { recursive: true, force: true })
}
