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
import { fetchRentalStatus, requestOffer, waitForLease } from '../../src/rentals/negotiation.js'
import type { SshServer } from '../../src/ssh/index.js'
import {
  BUSYBOX_IMAGE,
  dockerSkipReason,
  makeRenterKey,
  opensshClientOptions,
  runProcess,
  type RenterKey,
} from '../containers/harness.js'
import { waitFor } from '../payments/helpers/env.js'
import { startLeaseHarness, type LeaseHarness } from './lease-harness.js'

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
  let h: LeaseHarness
  /** the renter's files: its SSH key and known_hosts */
  let dir: string
  let provider: Libp2p
  let renter: Libp2p
  let stranger: Libp2p
  let ssh: SshServer
  let renterSsh: RenterKey

  before(async () => {
    h = await startLeaseHarness({
      name: 'e2e',
      secondsPerHour: HOUR,
      listing: { deviceId: 'e2e', satsPerHour: 5_000, maxHours: 8, slots: 1 },
      renterFundingSats: [200_000],
      providerFundingSats: 0,
      // small rentals are accepted from the mempool, as the sandbox does
      invoicePolicy: { confirmationsRequired: 1, zeroConfMaxSats: 100_000 },
      sshServer: true,
    })
    assert.ok(h.ssh, 'the harness serves the leases over SSH')
    ssh = h.ssh
    dir = await mkdtemp(join(tmpdir(), 'rpib-rent-e2e-'))
    provider = await p2p(h.providerKey, ['/ip4/127.0.0.1/tcp/0'])
    renter = await p2p(h.renterKey, [])
    stranger = await p2p(await generateKeyPair('Ed25519'), [])
    for (const node of [renter, stranger]) {
      await node.peerStore.merge(provider.peerId, { multiaddrs: provider.getMultiaddrs() })
    }
    await h.negotiator.start(provider)
    renterSsh = await makeRenterKey(dir)
  })

  after(async () => {
    await h?.stop()
    for (const node of [renter, stranger, provider]) await node?.stop()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it('list → offer → pay → lease → ssh → expire, with the host key pinned from the lease', async () => {
    const { offer } = await requestOffer({
      libp2p: renter,
      privateKey: h.renterKey,
      listing: h.listing,
      durationSeconds: 2 * HOUR,
      image: BUSYBOX_IMAGE,
      sshPublicKeys: [renterSsh.publicKey],
      secondsPerHour: HOUR,
    })
    assert.equal(offer.body.priceSats, 10_000)
    await h.renterWallet.send({ to: offer.body.invoice.address, amountSats: offer.body.priceSats })

    const statuses: string[] = []
    const lease = await waitForLease({
      libp2p: renter,
      offer,
      pollMs: 100,
      timeoutMs: 20_000,
      onStatus: (v) => statuses.push(v.status),
    })
    assert.ok(statuses.includes('active'))
    assert.equal(lease.body.ssh.hostKeyFingerprint, h.listing.body.sshHostKey)

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
    assert.equal(await h.runtime.getLease(lease.body.ssh.user), undefined)
  })

  it('a stranger cannot read another renter’s rental', async () => {
    const offer = h.manager.list()[0]?.offer
    assert.ok(offer !== undefined)
    await assert.rejects(fetchRentalStatus({ libp2p: stranger, offer }), { code: 'ERR_RENT_UNKNOWN_OFFER' })
  })
})
