/**
 * The rental core end to end on real parts: a renter asks a provider for an offer over libp2p, pays the
 * invoice from its wallet on the devchain, waits for the signed Lease over libp2p, and runs a command in
 * the lease container with the OpenSSH client, pinning the host key from the lease; the lease then expires
 * and the renter sees its signed end. (The daemon, API and CLI on top of this come with issue 7.)
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Ed25519PrivateKey, Libp2p } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { signRecord, type Listing } from '@rpib/protocol'
import { createDockerRuntime, type DockerRuntime } from '../../src/containers/index.js'
import { createInvoiceService, type InvoiceService } from '../../src/payments/invoice-service.js'
import { createInvoiceFileStore } from '../../src/payments/invoice-store.js'
import {
  createRentalNegotiator,
  fetchRentalStatus,
  requestOffer,
  waitForLease,
  type RentalNegotiator,
} from '../../src/rentals/negotiation.js'
import { createLeaseManager, type LeaseManager } from '../../src/rentals/provider-leases.js'
import { createRentalFileStore } from '../../src/rentals/rental-store.js'
import { createSshServer, type SshServer } from '../../src/ssh/index.js'
import {
  BUSYBOX_IMAGE,
  dockerSkipReason,
  makeRenterKey,
  opensshClientOptions,
  runProcess,
  uniqueName,
  type RenterKey,
} from '../containers/harness.js'
import { testListingBody } from './fixtures.js'
import { paymentsEnv, waitFor, type PaymentsEnv } from '../payments/helpers/env.js'

const HOUR = 4 // fast test clock: an "hour" lasts 4 s
const skip = await dockerSkipReason([BUSYBOX_IMAGE])

const p2p = (privateKey: Ed25519PrivateKey, listen: string[]) =>
  createLibp2p({
    privateKey,
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
  })

describe('rent over libp2p, pay on the devchain, SSH into the lease with OpenSSH', { skip }, () => {
  let env: PaymentsEnv
  let dir: string
  let providerKey: Ed25519PrivateKey
  let renterKey: Ed25519PrivateKey
  let provider: Libp2p
  let renter: Libp2p
  let stranger: Libp2p
  let invoices: InvoiceService
  let runtime: DockerRuntime
  let ssh: SshServer
  let manager: LeaseManager
  let negotiator: RentalNegotiator
  let listing: Listing
  let renterSsh: RenterKey

  before(async () => {
    env = await paymentsEnv()
    dir = await mkdtemp(join(tmpdir(), 'rpib-rent-e2e-'))
    providerKey = await generateKeyPair('Ed25519')
    provider = await p2p(providerKey, ['/ip4/127.0.0.1/tcp/0'])
    renterKey = await generateKeyPair('Ed25519')
    renter = await p2p(renterKey, [])
    stranger = await p2p(await generateKeyPair('Ed25519'), [])
    for (const node of [renter, stranger]) {
      await node.peerStore.merge(provider.peerId, { multiaddrs: provider.getMultiaddrs() })
    }
    const p = await env.newWallet('provider')
    invoices = createInvoiceService({
      store: createInvoiceFileStore(p.home),
      backend: env.backend,
      wallet: p.wallet,
      pollIntervalMs: 100,
      // small rentals are accepted from the mempool, as the sandbox does
      policy: { confirmationsRequired: 1, zeroConfMaxSats: 100_000 },
    })
    await invoices.start()
    runtime = createDockerRuntime({ networkName: uniqueName('rpib-e2e') })
    await runtime.ensureNetwork()
    manager = createLeaseManager({
      privateKey: providerKey,
      peerId: provider.peerId,
      store: createRentalFileStore(join(dir, 'provider')),
      invoices,
      runtime,
      listing: () => listing,
      sshAccess: () => ({
        endpoints: [`ssh://127.0.0.1:${ssh.port}`],
        hostKeyFingerprint: ssh.hostKeyFingerprint,
      }),
      sweepIntervalMs: 100,
    })
    ssh = createSshServer({
      hostKeyPath: join(dir, 'ssh_host_ed25519_key'),
      runtime,
      lookupLease: (user) => manager.lookup(user),
    })
    await ssh.start()
    listing = await signRecord(
      'listing',
      testListingBody({
        deviceId: 'e2e',
        satsPerHour: 5_000,
        maxHours: 8,
        slots: 1,
        sshHostKey: ssh.hostKeyFingerprint,
      }),
      providerKey,
    )
    await manager.start()
    negotiator = createRentalNegotiator({
      privateKey: providerKey,
      peerId: provider.peerId,
      listing: () => listing,
      busySlots: (d) => manager.busySlots(d),
      invoices,
      bitcoinNetwork: 'regtest',
      secondsPerHour: HOUR,
      onOffer: (o) => manager.track(o),
      status: (offerId) => manager.rentalStatus(offerId),
    })
    await negotiator.start(provider)
    renterSsh = await makeRenterKey(dir)
  })

  after(async () => {
    await negotiator?.stop()
    await manager?.stop()
    await ssh?.stop()
    await invoices?.stop()
    for (const node of [renter, stranger, provider]) await node?.stop()
    for (const l of (await runtime?.listLeases()) ?? []) await runtime.removeLease(l.leaseId)
    await runtime?.removeNetwork()
    await env?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('list → offer → pay → lease → ssh → expire, with the host key pinned from the lease', async () => {
    const renterWallet = (await env.newWallet('renter')).wallet
    await env.devchain.faucet((await renterWallet.nextReceiveAddress()).address, 200_000)
    await env.devchain.mine(1)

    const { offer } = await requestOffer({
      libp2p: renter,
      privateKey: renterKey,
      listing,
      durationSeconds: 2 * HOUR,
      image: BUSYBOX_IMAGE,
      sshPublicKeys: [renterSsh.publicKey],
      secondsPerHour: HOUR,
    })
    assert.equal(offer.body.priceSats, 10_000)
    await renterWallet.send({ to: offer.body.invoice.address, amountSats: offer.body.priceSats })

    const statuses: string[] = []
    const lease = await waitForLease({
      libp2p: renter,
      offer,
      pollMs: 100,
      timeoutMs: 20_000,
      onStatus: (v) => statuses.push(v.status),
    })
    assert.ok(statuses.includes('active'))
    assert.equal(lease.body.ssh.hostKeyFingerprint, listing.body.sshHostKey)

    // the renter pins the provider's host key: known_hosts comes from what the lease promised
    assert.equal(ssh.hostKeyFingerprint, lease.body.ssh.hostKeyFingerprint)
    const knownHosts = join(dir, 'known_hosts')
    await writeFile(knownHosts, `[127.0.0.1]:${ssh.port} ${ssh.hostPublicKey}\n`)
    const result = await runProcess('ssh', [
      ...opensshClientOptions(knownHosts, renterSsh.path),
      '-p',
      String(ssh.port),
      `${lease.body.ssh.user}@127.0.0.1`,
      'echo hello from the lease; exit 3',
    ])
    assert.equal(result.code, 3, result.stderr)
    assert.match(result.stdout, /hello from the lease/)

    const ended = await waitFor(
      async () => {
        const view = await fetchRentalStatus({ libp2p: renter, offer })
        return view.end !== undefined ? view : undefined
      },
      'the lease to end',
      20_000,
    )
    assert.equal(ended.status, 'ended')
    assert.equal(ended.end?.body.reason, 'expired')
    assert.equal(await runtime.getLease(lease.body.ssh.user), undefined)
  })

  it('a stranger cannot read another renter’s rental', async () => {
    const offer = manager.list()[0]?.offer
    assert.ok(offer !== undefined)
    await assert.rejects(fetchRentalStatus({ libp2p: stranger, offer }), { code: 'ERR_RENT_UNKNOWN_OFFER' })
  })
})
