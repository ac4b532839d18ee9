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
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { requestOffer, waitForLease } from '../src/rentals/negotiation.js'
import { makeRenterKey, opensshClientOptions } from '../test/containers/harness.js'
import { startLeaseHarness } from '../test/rentals/lease-harness.js'
import { printTable } from './table.js'

const exec = promisify(execFile)
const RUNS = 5
const IMAGE = 'rpib/busybox:latest'
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const h = await startLeaseHarness({
  name: 'bench',
  secondsPerHour: 3600,
  listing: { deviceId: 'bench', satsPerHour: 1000, maxHours: 24, slots: RUNS, images: [IMAGE] },
  renterFundingSats: [10_000_000],
  providerFundingSats: 0,
  invoicePolicy: { confirmationsRequired: 1, zeroConfMaxSats: 10_000_000 },
  sweepIntervalMs: 200,
  sshServer: true,
})
const ssh = h.ssh!
const { listing } = h
/** the renter's side: its SSH key and known_hosts */
const dir = await mkdtemp(join(tmpdir(), 'rpib-bench-rent-'))

const node = (privateKey: Ed25519PrivateKey, listen: string[]) =>
  createLibp2p({
    privateKey,
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
  })
const providerNode = await node(h.providerKey, ['/ip4/127.0.0.1/tcp/0'])
const renterNode = await node(h.renterKey, [])
await renterNode.peerStore.merge(providerNode.peerId, { multiaddrs: providerNode.getMultiaddrs() })
await h.negotiator.start(providerNode)
const { path: keyPath, publicKey } = await makeRenterKey(dir)
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
      privateKey: h.renterKey,
      listing,
      durationSeconds: 3600,
      image: IMAGE,
      sshPublicKeys: [publicKey],
    })
    const t1 = performance.now()
    await h.renterWallet.send({ to: offer.body.invoice.address, amountSats: offer.body.priceSats })
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
  await h.stop()
  await renterNode.stop()
  await providerNode.stop()
  await rm(dir, { recursive: true, force: true })
}
