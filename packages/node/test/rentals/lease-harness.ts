/**
 * The provider's rental pieces in one process, on real parts, for tests and benches: a devchain with a
 * provider and a renter wallet, the provider's invoice service, a Docker runtime on its own network, a
 * lease manager over a rental file store, a signed listing and the negotiator that makes offers for it
 * (optionally an SSH server serving the leases). Tests drive the negotiator directly (`rent`) or start it on
 * a libp2p node of their own; `stop()` releases everything, including the lease containers and the network.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { signRecord, type Listing, type ListingBody } from '@rpib/protocol'
import { createDockerRuntime, type DockerRuntime } from '../../src/containers/index.js'
import { createInvoiceService, type InvoiceService } from '../../src/payments/invoice-service.js'
import type { ConfirmationPolicy } from '../../src/payments/invoice-state.js'
import { createInvoiceFileStore } from '../../src/payments/invoice-store.js'
import type { Wallet } from '../../src/payments/wallet.js'
import {
  createRentalNegotiator,
  type ProviderOffer,
  type RentalNegotiator,
} from '../../src/rentals/negotiation.js'
import {
  createLeaseManager,
  type LeaseManager,
  type LeaseManagerOptions,
} from '../../src/rentals/provider-leases.js'
import { createRentalFileStore, type ProviderRental } from '../../src/rentals/rental-store.js'
import { createSshServer, type SshServer } from '../../src/ssh/index.js'
import { BUSYBOX_IMAGE, uniqueName } from '../containers/harness.js'
import { paymentsEnv, waitFor, type PaymentsEnv } from '../payments/helpers/env.js'
import { testListingBody, TEST_SSH_KEY } from './fixtures.js'

export interface LeaseHarnessOptions {
  /** Names the temp dir and the Docker network (`rpib-<name>-<random>`). */
  name: string
  /** Seconds in a lease "hour": the test clock of the negotiator (3600 on real networks). */
  secondsPerHour: number
  /** What the listing says beyond testListingBody() (images, price, slots…). */
  listing?: Partial<ListingBody>
  /** One faucet payment to a fresh renter address per entry (default one of 1,000,000 sats). */
  renterFundingSats?: number[]
  /** Faucet payment to the provider, which pays refund fees from its own funds (default 100,000; 0: none). */
  providerFundingSats?: number
  /** The invoice service's confirmation policy (default: the service's own). */
  invoicePolicy?: ConfirmationPolicy
  /** How long an offer stays payable (default: the negotiator's). */
  offerTtlMs?: number
  /** How often the lease manager checks expiries (default 100 ms). */
  sweepIntervalMs?: number
  /** Lease-manager timing for outages and listing waits (defaults: the manager's). */
  manager?: Pick<LeaseManagerOptions, 'aliveIntervalMs' | 'outageThresholdMs' | 'listingWaitMs'>
  /** Whether the lease manager sees the device listed right now (default: always). */
  isListed?: () => boolean
  /** Serve the leases over a real SSH server on 127.0.0.1 (its host key goes into the listing). */
  sshServer?: boolean
}

export interface RentOptions {
  hours: number
  image?: string
  /** Default: a fresh address of the renter's wallet. */
  refundAddress?: string
}

export interface Rented {
  made: ProviderOffer
  refundAddress: string
}

export interface LeaseHarness {
  env: PaymentsEnv
  /** The rental store's directory (a restarted manager reads it back). */
  storeDir: string
  providerKey: Ed25519PrivateKey
  renterKey: Ed25519PrivateKey
  providerWallet: Wallet
  renterWallet: Wallet
  invoices: InvoiceService
  runtime: DockerRuntime
  listing: Listing
  negotiator: RentalNegotiator
  /** Present with `sshServer: true`. */
  ssh: SshServer | undefined
  /** The running lease manager; throws while it is down (see restartManager). */
  readonly manager: LeaseManager
  /**
   * Stops the lease manager (containers left running, as a provider that goes down), waits `downMs` and
   * starts a new one over the same store. Returns when serving stopped and when the new manager was made.
   */
  restartManager(downMs?: number): Promise<{ downFrom: number; backAt: number }>
  /** The manager's rental of an offer; throws for an unknown offer. */
  rental(offerId: string): ProviderRental
  /** Polls the rental until `ok` holds (default deadline 20 s) and returns it. */
  until(
    offerId: string,
    what: string,
    ok: (r: ProviderRental) => boolean,
    ms?: number,
  ): Promise<ProviderRental>
  /** Sats in the unspent outputs the chain backend reports for an address. */
  received(address: string): Promise<number>
  /** Asks the negotiator for an offer as the renter (nothing paid). */
  rent(opts: RentOptions): Promise<Rented>
  /** Pays an offer from the renter's wallet (default: its price) and mines a block. */
  pay(made: ProviderOffer, amountSats?: number): Promise<void>
  /** Rents, pays in full and waits until the lease is active. */
  activeLease(opts: RentOptions): Promise<Rented>
  stop(): Promise<void>
}

/** Starts every piece in order; if one fails, what was started is released before the error is thrown. */
export async function startLeaseHarness(options: LeaseHarnessOptions): Promise<LeaseHarness> {
  const cleanups: (() => Promise<void>)[] = []
  const stop = async (): Promise<void> => {
    // release everything even if one part fails, then report the first failure
    let failure: unknown
    for (let cleanup = cleanups.pop(); cleanup !== undefined; cleanup = cleanups.pop()) {
      try {
        await cleanup()
      } catch (err) {
        failure ??= err
      }
    }
    if (failure !== undefined) throw failure
  }
  try {
    return await start(options, cleanups, stop)
  } catch (err) {
    await stop().catch(() => undefined)
    throw err
  }
}

async function start(
  options: LeaseHarnessOptions,
  cleanups: (() => Promise<void>)[],
  stop: () => Promise<void>,
): Promise<LeaseHarness> {
  const { secondsPerHour } = options
  const env = await paymentsEnv()
  cleanups.push(() => env.close())
  const storeDir = await mkdtemp(join(tmpdir(), `rpib-${options.name}-`))
  cleanups.push(() => rm(storeDir, { recursive: true, force: true }))

  const providerKey = await generateKeyPair('Ed25519')
  const renterKey = await generateKeyPair('Ed25519')
  const providerPeerId = peerIdFromPrivateKey(providerKey)
  const provider = await env.newWallet('provider')
  const renterWallet = (await env.newWallet('renter')).wallet
  for (const sats of options.renterFundingSats ?? [1_000_000])
    await env.devchain.faucet((await renterWallet.nextReceiveAddress()).address, sats)
  const providerFunding = options.providerFundingSats ?? 100_000
  if (providerFunding > 0)
    await env.devchain.faucet((await provider.wallet.nextReceiveAddress()).address, providerFunding)
  await env.devchain.mine(1)

  const runtime = createDockerRuntime({ networkName: uniqueName(`rpib-${options.name}`) })
  cleanups.push(async () => {
    // every lease container is an orphan now: reconcile removes them and their volumes
    await runtime.reconcile(Date.now(), [])
    await runtime.removeNetwork()
  })
  await runtime.ensureNetwork()

  const invoices = createInvoiceService({
    store: createInvoiceFileStore(provider.home),
    backend: env.backend,
    wallet: provider.wallet,
    pollIntervalMs: 100,
    ...(options.invoicePolicy !== undefined ? { policy: options.invoicePolicy } : {}),
  })
  cleanups.push(() => invoices.stop())
  await invoices.start()

  let current: LeaseManager | undefined
  const running = (): LeaseManager => {
    if (current === undefined) throw new Error('the lease manager is not running')
    return current
  }

  let ssh: SshServer | undefined
  if (options.sshServer === true) {
    const server = createSshServer({
      hostKeyPath: join(storeDir, 'ssh_host_ed25519_key'),
      runtime,
      lookupLease: (user) => current?.lookup(user),
    })
    cleanups.push(() => server.stop())
    await server.start()
    ssh = server
  }

  const listing = await signRecord(
    'listing',
    testListingBody({
      ...(ssh !== undefined ? { sshHostKey: ssh.hostKeyFingerprint } : {}),
      ...options.listing,
    }),
    providerKey,
  )
  const isListed = options.isListed ?? (() => true)
  const sshAccess = (): { endpoints: string[]; hostKeyFingerprint: string } =>
    ssh !== undefined
      ? { endpoints: [`ssh://127.0.0.1:${ssh.port}`], hostKeyFingerprint: ssh.hostKeyFingerprint }
      : { endpoints: ['/ip4/127.0.0.1/tcp/4001'], hostKeyFingerprint: listing.body.sshHostKey }
  const newManager = (): LeaseManager =>
    createLeaseManager({
      privateKey: providerKey,
      peerId: providerPeerId,
      store: createRentalFileStore(storeDir),
      invoices,
      runtime,
      listing: () => (isListed() ? listing : undefined),
      sshAccess,
      sweepIntervalMs: options.sweepIntervalMs ?? 100,
      ...options.manager,
    })
  cleanups.push(async () => {
    await current?.stop()
    current = undefined
  })
  const first = newManager()
  await first.start()
  current = first

  const negotiator = createRentalNegotiator({
    privateKey: providerKey,
    peerId: providerPeerId,
    listing: () => listing,
    busySlots: (deviceId) => current?.busySlots(deviceId) ?? 0,
    invoices,
    bitcoinNetwork: 'regtest',
    secondsPerHour,
    ...(options.offerTtlMs !== undefined ? { offerTtlMs: options.offerTtlMs } : {}),
    onOffer: (offer) => running().track(offer),
    status: (offerId) => current?.rentalStatus(offerId),
  })
  cleanups.push(() => negotiator.stop())

  const rental = (offerId: string): ProviderRental => {
    const found = running().get(offerId)
    if (found === undefined) throw new Error(`no rental for offer ${offerId}`)
    return found
  }
  const rent = async (opts: RentOptions): Promise<Rented> => {
    const refundAddress = opts.refundAddress ?? (await renterWallet.nextReceiveAddress()).address
    const request = await signRecord(
      'rent-request',
      {
        listingKey: `${listing.signer}/${listing.body.deviceId}`,
        listingVersion: listing.body.version,
        durationSeconds: opts.hours * secondsPerHour,
        image: opts.image ?? BUSYBOX_IMAGE,
        sshPublicKeys: [TEST_SSH_KEY],
        refundAddress,
      },
      renterKey,
    )
    const made = await negotiator.answer(peerIdFromPrivateKey(renterKey).toString(), request)
    return { made, refundAddress }
  }
  const pay = async (made: ProviderOffer, amountSats = made.offer.body.priceSats): Promise<void> => {
    await renterWallet.send({ to: made.offer.body.invoice.address, amountSats })
    await env.devchain.mine(1)
  }
  const until = (offerId: string, what: string, ok: (r: ProviderRental) => boolean, ms = 20_000) =>
    waitFor(() => (ok(rental(offerId)) ? rental(offerId) : undefined), what, ms)

  return {
    env,
    storeDir,
    providerKey,
    renterKey,
    providerWallet: provider.wallet,
    renterWallet,
    invoices,
    runtime,
    listing,
    negotiator,
    ssh,
    get manager() {
      return running()
    },
    async restartManager(downMs = 0) {
      await running().stop()
      current = undefined
      const downFrom = Date.now()
      // the provider is down: a real gap the outage logic measures, not a wait for an event
      await new Promise((resolve) => setTimeout(resolve, downMs))
      const next = newManager()
      const backAt = Date.now()
      await next.start()
      current = next
      return { downFrom, backAt }
    },
    rental,
    until,
    async received(address) {
      return (await env.backend.addressUtxos(address)).reduce((sum, u) => sum + u.valueSats, 0)
    },
    rent,
    pay,
    async activeLease(opts) {
      const rented = await rent(opts)
      await pay(rented.made)
      await until(rented.made.offerId, 'lease active', (r) => r.state.status === 'active')
      return rented
    },
    stop,
  }
}
