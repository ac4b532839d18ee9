import { join } from 'node:path'
import { z } from 'zod'
import type { Listing } from '@rpib/protocol'
import { defineRoute } from '../api/contract.js'
import { ApiError } from '../api/problem.js'
import { ensurePrivateDir } from '../config/paths.js'
import { createDockerRuntime, type DockerRuntime } from '../containers/index.js'
import { probeDevice } from '../device/index.js'
import { RpibError } from '../errors.js'
import { logger } from '../log.js'
import type { MarketNode } from '../market/market-node.js'
import type { InvoiceService } from '../payments/invoice-service.js'
import { createRentalNegotiator, type RentalNegotiator } from '../rentals/negotiation.js'
import { createLeaseManager, type LeaseManager } from '../rentals/provider-leases.js'
import { createRentalFileStore } from '../rentals/rental-store.js'
import { createSshServer, type SshServer } from '../ssh/index.js'
import { createSshOverLibp2p, type SshOverLibp2p } from '../tunnel/ssh-protocol.js'
import type { DaemonService, ServiceContext } from './service.js'

const RentalSummarySchema = z.object({
  offerId: z.string(),
  listingKey: z.string(),
  renter: z.string(),
  status: z.string(),
  priceSats: z.number().int(),
  paidSats: z.number().int(),
  expiresAt: z.number().int().optional(),
  endReason: z.string().optional(),
  refundedSats: z.number().int(),
  refundError: z.string().optional(),
})

export const providerRentalsRoute = defineRoute({
  id: 'listProviderRentals',
  method: 'GET',
  path: '/api/provider/rentals',
  tag: 'provider',
  auth: 'token',
  summary: 'Rentals of this provider’s devices: offers, active leases, ended leases and refunds',
  response: z.object({ rentals: z.array(RentalSummarySchema) }),
})

export interface ProviderServiceDeps {
  market(): MarketNode | undefined
  invoices(): InvoiceService | undefined
}

/**
 * The provider role (`rpib daemon --provider`): measures the device, signs and publishes a listing per
 * configured device, serves `/rpib/rent` offers with invoices, provisions a hardened container when an
 * invoice is paid, lets the renter in through the embedded SSH server (over `/rpib/ssh` on the market's
 * libp2p node), and ends, wipes and refunds at expiry. Needs Docker and a wallet.
 */
export function createProviderService(ctx: ServiceContext, deps: ProviderServiceDeps): DaemonService {
  const c = ctx.config.provider
  const log = logger('rpib:provider')
  const listings = new Map<string, Listing>()
  let runtime: DockerRuntime | undefined
  let ssh: SshServer | undefined
  let sshOverP2p: SshOverLibp2p | undefined
  let manager: LeaseManager | undefined
  let negotiator: RentalNegotiator | undefined

  return {
    name: 'provider',
    async start(signal) {
      const market = deps.market()
      const invoices = deps.invoices()
      if (market == null)
        throw new RpibError('ERR_PROVIDER_DEPS', 'the provider role needs the market running')
      if (invoices == null) {
        throw new RpibError(
          'ERR_PROVIDER_NO_WALLET',
          `the provider role needs a wallet for its invoices: run \`rpib --home ${ctx.home} wallet create\``,
        )
      }
      if (c.devices.length === 0)
        ctx.log.warn('provider.no_devices', { hint: 'add provider.devices to config.json' })
      const state = await ensurePrivateDir(join(ctx.home, 'provider'))
      runtime = createDockerRuntime({
        networkName: c.dockerNetwork,
        stateDir: join(state, 'volumes'),
        logger: log,
      })
      await runtime.ensureNetwork()
      const available = new Set((await runtime.listImages()).map((i) => i.ref))
      const store = createRentalFileStore(state)
      const leases = createLeaseManager({
        privateKey: ctx.identity.privateKey,
        peerId: ctx.identity.peerId,
        store,
        invoices,
        runtime,
        listing: (deviceId) => listings.get(deviceId),
        sshAccess: () => ({
          endpoints: market.addresses(),
          hostKeyFingerprint: ssh?.hostKeyFingerprint ?? '',
        }),
        onChange: (r) => ctx.events.publish('lease.updated', { offerId: r.offerId, status: r.state.status }),
        logger: log,
      })
      manager = leases
      ssh = createSshServer({
        hostKeyPath: join(state, 'ssh_host_ed25519_key'),
        runtime,
        lookupLease: (user) => leases.lookup(user),
        port: c.sshPort,
        logger: log,
      })
      await ssh.start()
      const server = ssh
      sshOverP2p = createSshOverLibp2p({
        libp2p: market.libp2p,
        target: { serve: (stream, source) => server.injectSocket(stream, source) },
        logger: log,
      })
      await sshOverP2p.start()
      await leases.start()

      const specs = await probeDevice({ scratchDir: state, signal })
      for (const d of c.devices) {
        const images = d.images.filter((i) => available.has(i))
        if (images.length === 0) {
          throw new RpibError(
            'ERR_PROVIDER_NO_IMAGE',
            `device ${d.id}: none of its images (${d.images.join(', ')}) exist here; run scripts/build-base-image`,
          )
        }
        const listing = await market.publishListing({
          deviceId: d.id,
          name: d.name,
          description: d.description,
          specs,
          satsPerHour: d.satsPerHour,
          minHours: d.minHours,
          maxHours: d.maxHours,
          slots: d.slots,
          images,
          limits: d.limits,
          sshHostKey: server.hostKeyFingerprint,
          relays: [],
          bitcoinNetwork: ctx.config.bitcoin.network,
        })
        listings.set(d.id, listing)
        ctx.log.info('provider.listed', { deviceId: d.id, version: listing.body.version })
      }
      negotiator = createRentalNegotiator({
        privateKey: ctx.identity.privateKey,
        peerId: ctx.identity.peerId,
        listing: (deviceId) => listings.get(deviceId),
        busySlots: (deviceId) => leases.busySlots(deviceId),
        invoices,
        bitcoinNetwork: ctx.config.bitcoin.network,
        secondsPerHour: c.secondsPerHour,
        onOffer: (o) => leases.track(o),
        status: (offerId) => leases.rentalStatus(offerId),
        logger: log,
      })
      await negotiator.start(market.libp2p)
    },
    async stop() {
      await negotiator?.stop()
      await sshOverP2p?.stop()
      await manager?.stop()
      await ssh?.stop()
      negotiator = undefined
      sshOverP2p = undefined
      manager = undefined
      ssh = undefined
      runtime = undefined
    },
    registerRoutes(router) {
      router.route(providerRentalsRoute, () => {
        if (manager == null)
          throw new ApiError(503, 'ERR_PROVIDER_NOT_RUNNING', 'the provider is not running yet')
        return {
          rentals: manager.list().map((r) => ({
            offerId: r.offerId,
            listingKey: r.request.body.listingKey,
            renter: r.request.signer,
            status: r.state.status,
            priceSats: r.state.priceSats,
            paidSats: r.state.paidSats,
            ...(r.state.expiresAt !== undefined ? { expiresAt: r.state.expiresAt } : {}),
            ...(r.state.endReason !== undefined ? { endReason: r.state.endReason } : {}),
            refundedSats: r.refunds.reduce((sum, x) => sum + x.amountSats, 0),
            ...(r.refundError !== undefined ? { refundError: r.refundError } : {}),
          })),
        }
      })
    },
  }
}
