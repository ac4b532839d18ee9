import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { z } from 'zod'
import { listingKey, parseListingKey, type DeviceSpecs, type Listing } from '@rpib/protocol'
import { defineRoute } from '../api/contract.js'
import { ApiError } from '../api/problem.js'
import { ensurePrivateDir } from '../config/paths.js'
import { createDockerRuntime, type DockerRuntime } from '../containers/index.js'
import { DockerUnavailableError } from '../containers/errors.js'
import { probeDevice } from '../device/index.js'
import { RpibError } from '../errors.js'
import { logger } from '../log.js'
import type { MarketNode } from '../market/market-node.js'
import type { InvoiceService } from '../payments/invoice-service.js'
import { createRentalNegotiator, type RentalNegotiator } from '../rentals/negotiation.js'
import { createLeaseManager, type LeaseManager } from '../rentals/provider-leases.js'
import { createRentalFileStore, type ProviderRental } from '../rentals/rental-store.js'
import { createSshServer, type SshServer } from '../ssh/index.js'
import { createSshOverLibp2p, type SshOverLibp2p } from '../tunnel/ssh-protocol.js'
import { rankEndpointsForRenters, startProviderRelayRole, type ProviderRelayRole } from './provider-relays.js'
import {
  openDeviceRegistry,
  unknownDevice,
  type DeviceRegistry,
  type DeviceSpec,
  type RegisteredDevice,
} from './device-registry.js'
import {
  addDeviceRoute,
  deviceEarningsRoute,
  earningsRoute,
  listDevicesRoute,
  publishDeviceRoute,
  removeDeviceRoute,
  showDeviceRoute,
  unpublishDeviceRoute,
  DeviceRentalSchema,
  type DeviceDetail,
  type DeviceView,
  type Earnings,
  type Hosting,
} from './device-routes.js'
import type { DaemonService, ServiceContext } from './service.js'

/** A rental of one of this provider's devices: a device's rental plus its listing and any refund error. */
const RentalSummarySchema = DeviceRentalSchema.extend({
  listingKey: z.string(),
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

/** One line an owner without Docker can act on. */
export const DOCKER_INSTALL_HINT =
  'install and start Docker (Debian/Raspberry Pi OS: `sudo apt-get install docker.io`, then add your user ' +
  'to the docker group), build the base images with scripts/build-base-image, and restart the daemon'

export interface ProviderServiceDeps {
  market(): MarketNode | undefined
  invoices(): InvoiceService | undefined
}

const deviceOf = (r: ProviderRental): string => parseListingKey(r.request.body.listingKey)?.deviceId ?? ''
const refundedOf = (r: ProviderRental): number => r.refunds.reduce((sum, x) => sum + x.amountSats, 0)

/** Whether a registry entry still has the settings of a config-file device. */
function sameDevice(kept: RegisteredDevice, spec: DeviceSpec): boolean {
  const { published: _p, createdAt: _c, ...settings } = kept
  return isDeepStrictEqual(settings, spec)
}

/**
 * What a device earned, from the provider's rentals of it. `received(r)` is what arrived at the rental's
 * invoice (late payments included, which the lease state does not count but refunds do).
 */
export function deviceEarnings(
  deviceId: string,
  rentals: readonly ProviderRental[],
  received: (r: ProviderRental) => number,
): Earnings {
  let leasesServed = 0
  let paidSats = 0
  let refundedSats = 0
  let pendingRefundSats = 0
  for (const r of rentals) {
    if (deviceOf(r) !== deviceId) continue
    if (r.lease !== undefined) leasesServed++
    const refunded = refundedOf(r)
    paidSats += Math.max(r.state.paidSats, received(r))
    refundedSats += refunded
    pendingRefundSats += Math.max(0, (r.state.refundDueSats ?? 0) - refunded)
  }
  return {
    deviceId,
    leasesServed,
    paidSats,
    refundedSats,
    earnedSats: paidSats - refundedSats,
    pendingRefundSats,
  }
}

/**
 * The provider role (`rpib daemon --provider`): keeps the owner's devices (device-registry.ts) and their
 * signed listings in the market, serves `/rpib/rent` offers with invoices, provisions a hardened container
 * when an invoice is paid, lets the renter in through the embedded SSH server (over `/rpib/ssh` on the
 * market's libp2p node), and ends, wipes and refunds at expiry. Needs a wallet; without a reachable Docker
 * engine it still runs (the devices API answers) but reports `canHost: false` and lists nothing.
 */
export function createProviderService(
  ctx: ServiceContext,
  deps: ProviderServiceDeps,
): DaemonService & { leases(): LeaseManager | undefined } {
  const c = ctx.config.provider
  const log = logger('rpib:provider')
  const self = ctx.identity.peerId.toString()
  /** newest signed listing per device this run made or found (listed or unlisted) */
  const signed = new Map<string, Listing>()
  /** why a published device is not listed right now (missing images …) */
  const problems = new Map<string, string>()
  let hosting: Hosting = {
    canHost: false,
    reason: 'the provider role is still starting (measuring the device)',
    hint: 'retry in a few seconds',
  }
  let registry: DeviceRegistry | undefined
  let market: MarketNode | undefined
  let specs: DeviceSpecs | undefined
  let runtime: DockerRuntime | undefined
  let ssh: SshServer | undefined
  let sshOverP2p: SshOverLibp2p | undefined
  let manager: LeaseManager | undefined
  let negotiator: RentalNegotiator | undefined
  let invoices: InvoiceService | undefined
  /** rentals on disk when the lease manager cannot run (no Docker): still shown, still block removal */
  let storedRentals: ProviderRental[] = []
  let relayRole: ProviderRelayRole | undefined

  // device changes (API calls, start-up publishing) run one at a time
  let queue: Promise<unknown> = Promise.resolve()
  function exclusive<T>(work: () => Promise<T>): Promise<T> {
    const next = queue.then(work)
    queue = next.catch(() => undefined)
    return next
  }

  const needRegistry = (): DeviceRegistry => {
    if (registry === undefined)
      throw new ApiError(503, 'ERR_PROVIDER_NOT_RUNNING', 'the provider is not running yet; retry shortly')
    return registry
  }
  const needDevice = (id: string): RegisteredDevice => {
    const d = needRegistry().get(id)
    if (d === undefined) throw unknownDevice(id)
    return d
  }
  const needHosting = (): {
    market: MarketNode
    runtime: DockerRuntime
    ssh: SshServer
    specs: DeviceSpecs
  } => {
    if (
      !hosting.canHost ||
      runtime === undefined ||
      ssh === undefined ||
      specs === undefined ||
      market === undefined
    )
      throw new ApiError(
        503,
        'ERR_PROVIDER_CANNOT_HOST',
        `this node cannot host leases: ${hosting.reason ?? 'unknown'}; ${hosting.hint ?? 'check the daemon log'}`,
      )
    return { market, runtime, ssh, specs }
  }

  const allRentals = (): ProviderRental[] => manager?.list() ?? storedRentals
  const rentalsOf = (deviceId: string): ProviderRental[] =>
    allRentals().filter((r) => deviceOf(r) === deviceId)

  const latestListing = (deviceId: string): Listing | undefined =>
    signed.get(deviceId) ?? market?.index.latest(listingKey(self, deviceId))

  function view(d: RegisteredDevice): DeviceView {
    const latest = latestListing(d.id)
    const problem = problems.get(d.id)
    return {
      id: d.id,
      name: d.name,
      description: d.description,
      satsPerHour: d.satsPerHour,
      minHours: d.minHours,
      maxHours: d.maxHours,
      slots: d.slots,
      images: d.images,
      limits: d.limits,
      published: d.published,
      createdAt: d.createdAt,
      busySlots: manager?.busySlots(d.id) ?? 0,
      listing:
        latest === undefined
          ? null
          : { key: listingKey(self, d.id), version: latest.body.version, status: latest.body.status },
      ...(problem !== undefined ? { problem } : {}),
    }
  }

  function detail(d: RegisteredDevice): DeviceDetail {
    return {
      ...view(d),
      signedListing: latestListing(d.id) ?? null,
      rentals: rentalsOf(d.id).map(rentalSummary),
    }
  }

  /** What an owner sees of one rental of a device. */
  function rentalSummary(r: ProviderRental): z.infer<typeof DeviceRentalSchema> {
    return {
      offerId: r.offerId,
      renter: r.request.signer,
      status: r.state.status,
      priceSats: r.state.priceSats,
      paidSats: r.state.paidSats,
      ...(r.state.expiresAt !== undefined ? { expiresAt: r.state.expiresAt } : {}),
      ...(r.state.endReason !== undefined ? { endReason: r.state.endReason } : {}),
      refundedSats: refundedOf(r),
    }
  }

  /** Local images among `wanted`, asking Docker now (images may be built while the daemon runs). */
  async function missingImages(rt: DockerRuntime, wanted: readonly string[]): Promise<string[]> {
    const here = new Set((await rt.listImages()).map((i) => i.ref))
    return wanted.filter((i) => !here.has(i))
  }

  /** Signs and publishes a new listing version of a device with the images that exist here. */
  async function publish(d: RegisteredDevice): Promise<Listing> {
    const host = needHosting()
    const missing = await missingImages(host.runtime, d.images)
    const images = d.images.filter((i) => !missing.includes(i))
    if (images.length === 0) {
      throw new ApiError(
        422,
        'ERR_DEVICE_NO_IMAGE',
        `device ${d.id}: none of its images (${d.images.join(', ')}) exist here; run scripts/build-base-image`,
      )
    }
    const listing = await host.market.publishListing({
      deviceId: d.id,
      name: d.name,
      description: d.description,
      specs: host.specs,
      satsPerHour: d.satsPerHour,
      minHours: d.minHours,
      maxHours: d.maxHours,
      slots: d.slots,
      images,
      limits: d.limits,
      sshHostKey: host.ssh.hostKeyFingerprint,
      relays: relayRole?.relays.endpoints() ?? [],
      bitcoinNetwork: ctx.config.bitcoin.network,
    })
    signed.set(d.id, listing)
    problems.delete(d.id)
    ctx.log.info('provider.listed', { deviceId: d.id, version: listing.body.version })
    return listing
  }

  /** Publishes a signed "unlisted" version if the market has this device listed. */
  async function unlist(deviceId: string): Promise<void> {
    if (market === undefined || latestListing(deviceId)?.body.status !== 'listed') return
    const listing = await market.unlist(deviceId)
    signed.set(deviceId, listing)
    ctx.log.info('provider.unlisted', { deviceId, version: listing.body.version })
  }

  /** Finds out whether Docker answers; without it the role stays up but hosts nothing. */
  async function startRuntime(state: string): Promise<DockerRuntime | undefined> {
    const rt = createDockerRuntime({
      networkName: c.dockerNetwork,
      stateDir: join(state, 'volumes'),
      logger: log,
    })
    try {
      await rt.ensureNetwork()
      return rt
    } catch (err) {
      if (!(err instanceof DockerUnavailableError)) throw err
      hosting = { canHost: false, reason: err.message, hint: DOCKER_INSTALL_HINT }
      ctx.log.warn('provider.cannot_host', { reason: err.message, hint: DOCKER_INSTALL_HINT })
      return undefined
    }
  }

  return {
    name: 'provider',
    /** the lease manager while the role runs (the history journal reads its rentals) */
    leases: () => manager,
    note: () => (hosting.canHost ? undefined : `cannot host leases: ${hosting.reason ?? 'unknown'}`),
    async start(signal) {
      market = deps.market()
      invoices = deps.invoices()
      if (market == null)
        throw new RpibError('ERR_PROVIDER_DEPS', 'the provider role needs the market running')
      if (invoices == null) {
        throw new RpibError(
          'ERR_PROVIDER_NO_WALLET',
          `the provider role needs a wallet for its invoices: run \`rpib --home ${ctx.home} wallet create\``,
        )
      }
      const node = market
      const wallet = invoices
      const state = await ensurePrivateDir(join(ctx.home, 'provider'))
      registry = await openDeviceRegistry({ dir: state, seed: c.devices })
      if (registry.list().length === 0)
        ctx.log.warn('provider.no_devices', { hint: 'add one with `rpib device add --name … --price …`' })
      for (const d of c.devices) {
        const kept = registry.get(d.id)
        if (kept !== undefined && !sameDevice(kept, d)) {
          ctx.log.warn('provider.config_device_ignored', {
            deviceId: d.id,
            hint: `the registry (${registry.path}) keeps the settings it imported; \`rpib device remove ${d.id}\` and add it again to change them`,
          })
        }
      }

      const store = createRentalFileStore(state)
      runtime = await startRuntime(state)
      if (runtime === undefined) {
        storedRentals = await store.load()
        return
      }
      const rt = runtime
      const leases = createLeaseManager({
        privateKey: ctx.identity.privateKey,
        peerId: ctx.identity.peerId,
        store,
        invoices: wallet,
        runtime: rt,
        // an unpublished device's paid offers are still provisioned, from its newest signed listing
        listing: latestListing,
        sshAccess: () => ({
          endpoints: rankEndpointsForRenters(node.addresses()),
          hostKeyFingerprint: ssh?.hostKeyFingerprint ?? '',
          ...(ssh != null ? { hostPublicKey: ssh.hostPublicKey } : {}),
        }),
        onChange: (r) => ctx.events.publish('lease.updated', { offerId: r.offerId, status: r.state.status }),
        logger: log,
      })
      manager = leases
      ssh = createSshServer({
        hostKeyPath: join(state, 'ssh_host_ed25519_key'),
        runtime: rt,
        lookupLease: (user) => leases.lookup(user),
        port: c.sshPort,
        logger: log,
      })
      await ssh.start()
      const server = ssh
      relayRole = startProviderRelayRole({
        identity: ctx.identity.privateKey,
        relays: c.relays,
        sshTarget: { serve: (stream, source) => server.injectSocket(stream, source) },
        events: ctx.events,
        leases,
        runtime: rt,
        logger: log,
        // a changed set of relays re-signs every listed device
        republish: () =>
          exclusive(async () => {
            for (const d of registry?.list() ?? [])
              if (d.published && signed.get(d.id)?.body.status === 'listed') await publish(d)
          }),
      })
      sshOverP2p = createSshOverLibp2p({
        libp2p: node.libp2p,
        target: { serve: (stream, source) => server.injectSocket(stream, source) },
        logger: log,
      })
      await sshOverP2p.start()
      await leases.start()

      specs = await probeDevice({ scratchDir: state, signal })
      hosting = { canHost: true }
      const owned = registry
      await exclusive(async () => {
        for (const d of owned.list()) {
          if (!d.published) continue
          try {
            await publish(d)
          } catch (err) {
            if (!(err instanceof RpibError)) throw err
            problems.set(d.id, err.message)
            ctx.log.error('provider.not_listed', { deviceId: d.id, reason: err.message })
          }
        }
      })
      negotiator = createRentalNegotiator({
        privateKey: ctx.identity.privateKey,
        peerId: ctx.identity.peerId,
        // an unpublished device answers with its "unlisted" version, which the negotiator refuses
        listing: (deviceId) => signed.get(deviceId),
        busySlots: (deviceId) => leases.busySlots(deviceId),
        invoices: wallet,
        bitcoinNetwork: ctx.config.bitcoin.network,
        secondsPerHour: c.secondsPerHour,
        onOffer: (o) => leases.track(o),
        status: (offerId) => leases.rentalStatus(offerId),
        extend: (offerId, addSeconds, price) => leases.extend(offerId, addSeconds, price),
        cancel: (offerId) => leases.cancel(offerId),
        expose: (offerId, port, renter) => {
          if (relayRole === undefined)
            throw new RpibError('ERR_PROVIDER_NOT_RUNNING', 'the provider is stopping')
          return relayRole.expose(offerId, port, renter)
        },
        logger: log,
      })
      await negotiator.start(node.libp2p)
    },
    async stop() {
      await queue
      await negotiator?.stop()
      await sshOverP2p?.stop()
      await manager?.stop()
      await relayRole?.stop()
      relayRole = undefined
      await ssh?.stop()
      negotiator = undefined
      sshOverP2p = undefined
      manager = undefined
      ssh = undefined
      runtime = undefined
      market = undefined
      hosting = { canHost: false, reason: 'the provider role is stopped' }
    },
    registerRoutes(router) {
      router.route(providerRentalsRoute, () => {
        if (manager == null) {
          if (registry !== undefined) needHosting()
          throw new ApiError(503, 'ERR_PROVIDER_NOT_RUNNING', 'the provider is not running yet')
        }
        return {
          rentals: manager.list().map((r) => ({
            ...rentalSummary(r),
            listingKey: r.request.body.listingKey,
            ...(r.refundError !== undefined ? { refundError: r.refundError } : {}),
          })),
        }
      })

      router.route(listDevicesRoute, () => ({ ...hosting, devices: needRegistry().list().map(view) }))

      router.route(addDeviceRoute, ({ body }) =>
        exclusive(async () => {
          const reg = needRegistry()
          const host = needHosting()
          const { publish: listNow, ...device } = body
          if (reg.get(device.id) !== undefined) {
            throw new ApiError(
              409,
              'ERR_DEVICE_EXISTS',
              `a device with id ${device.id} exists already; pick another id or remove it first`,
            )
          }
          const missing = await missingImages(host.runtime, device.images)
          if (missing.length > 0) {
            throw new ApiError(
              422,
              'ERR_DEVICE_UNKNOWN_IMAGE',
              `image ${missing.join(', ')} is not on this device; build it (scripts/build-base-image) or pick one of \`docker images 'rpib/*'\``,
            )
          }
          const added = await reg.add(device, listNow)
          if (listNow) await publish(added)
          return detail(added)
        }),
      )

      router.route(showDeviceRoute, ({ params }) => detail(needDevice(params.id)))

      router.route(publishDeviceRoute, ({ params }) =>
        exclusive(async () => {
          const d = needDevice(params.id)
          needHosting()
          await publish(d)
          return detail(await needRegistry().setPublished(d.id, true))
        }),
      )

      router.route(unpublishDeviceRoute, ({ params }) =>
        exclusive(async () => {
          const d = needDevice(params.id)
          await unlist(d.id)
          problems.delete(d.id)
          return detail(await needRegistry().setPublished(d.id, false))
        }),
      )

      router.route(removeDeviceRoute, ({ params }) =>
        exclusive(async () => {
          const d = needDevice(params.id)
          const running = rentalsOf(d.id).filter((r) => r.state.status !== 'ended')
          if (running.length > 0) {
            const which = running.map((r) => `${r.offerId.slice(0, 12)} (${r.state.status})`).join(', ')
            throw new ApiError(
              409,
              'ERR_DEVICE_BUSY',
              `device ${d.id} has rentals in progress: ${which}; unpublish it and remove it once they end`,
            )
          }
          await unlist(d.id)
          await needRegistry().remove(d.id)
          signed.delete(d.id)
          problems.delete(d.id)
          ctx.log.info('provider.device_removed', { deviceId: d.id })
          return { removed: d.id }
        }),
      )

      const received = (r: ProviderRental): number => {
        try {
          const inv = invoices?.get(r.invoiceId)
          return inv === undefined ? 0 : inv.receivedSats + inv.lateSats
        } catch {
          return 0 // an invoice the wallet no longer knows: the lease state's paidSats stands
        }
      }

      router.route(deviceEarningsRoute, ({ params }) => {
        const d = needDevice(params.id)
        return deviceEarnings(d.id, allRentals(), received)
      })

      router.route(earningsRoute, () => {
        const rentals = allRentals()
        const ids = new Set([
          ...needRegistry()
            .list()
            .map((d) => d.id),
          ...rentals.map(deviceOf),
        ])
        const devices = [...ids].sort().map((id) => deviceEarnings(id, rentals, received))
        const sum = (k: keyof Omit<Earnings, 'deviceId'>): number => devices.reduce((s, e) => s + e[k], 0)
        return {
          devices,
          total: {
            leasesServed: sum('leasesServed'),
            paidSats: sum('paidSats'),
            refundedSats: sum('refundedSats'),
            earnedSats: sum('earnedSats'),
            pendingRefundSats: sum('pendingRefundSats'),
          },
        }
      })
    },
  }
}
