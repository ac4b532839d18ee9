/**
 * The provider daemon's relays: holds reverse SSH tunnels on up to two configured jump relays (spares take
 * over when one fails), forwards the provider's SSH name and the HTTP names of leases the renter exposed,
 * and re-signs every listing with the relays that are up whenever that set changes (debounced).
 */
import type { Ed25519PrivateKey } from '@libp2p/interface'
import type { z } from 'zod'
import type { EventBus } from '../api/events.js'
import type { ContainerRuntime } from '../containers/types.js'
import { RpibError } from '../errors.js'
import type { Logger } from '../log.js'
import { leaseUser, type LeaseManager } from '../rentals/provider-leases.js'
import { HTTP_TUNNEL_PORT } from '../relay/http-ingress.js'
import { ownerLabel, tunnelName } from '../relay/names.js'
import type { ProviderRelaySchema } from '../config/schema.js'
import type { BackoffOptions } from '../tunnel/backoff.js'
import {
  endpointId,
  type ForwardTarget,
  type RelayEndpoint,
  type TunnelForward,
} from '../tunnel/reverse-tunnel.js'
import { createTunnelSet, type TunnelSet } from '../tunnel/tunnel-set.js'

export type ProviderRelayConfig = z.output<typeof ProviderRelaySchema>

/** The label of the provider's own SSH name: renters `ssh -J jump@<relay> <lease user>@ssh.<owner>.rpib`. */
export const PROVIDER_SSH_LABEL = 'ssh'
const SSH_PORT = 22

export interface ProviderRelaysInit {
  identity: Ed25519PrivateKey
  relays: ProviderRelayConfig[]
  /** where `ssh.<owner>.rpib:22` goes: the embedded SSH server */
  sshTarget: ForwardTarget
  /** re-signs and publishes every listing with these relay endpoints */
  republish(relays: string[]): Promise<void>
  logger: Logger
  /** tunnels held at once (default 2) */
  want?: number
  /** how long the up-relay set must stay put before listings are re-signed (default 1 s) */
  debounceMs?: number
  /** how long to wait before re-signing again after a failure (default 5 s) */
  retryMs?: number
  keepaliveIntervalMs?: number
  keepaliveCountMax?: number
  backoff?: BackoffOptions
}

export interface ProviderRelays {
  start(): void
  stop(): Promise<void>
  /** `<label>.<owner>.rpib` of the provider's embedded SSH server */
  readonly sshName: string
  /** what listings carry now: `ssh://host:port` (and the configured multiaddr) of each up relay */
  endpoints(): string[]
  tunnels(): TunnelSet
  /**
   * Serves `target` as the site of `label` (`http://<label>.<owner>.<relay domain>:<http port>/`) and
   * returns its URLs on the relays that are up and run HTTP ingress.
   */
  exposeHttp(label: string, target: { host: string; port: number }): string[]
  /** stops serving the site of `label` (a no-op when it is not exposed) */
  unexposeHttp(label: string): void
  /** labels with a site, for pruning those whose lease ended */
  exposedLabels(): string[]
}

function parseHostPort(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(':')
  const host = hostPort.slice(0, i).replace(/^\[(.*)\]$/, '$1')
  const port = Number(hostPort.slice(i + 1))
  if (host === '' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RpibError('ERR_CONFIG', `provider.relays: "${hostPort}" is not host:port with a port 1-65535`)
  }
  return { host, port }
}

function toEndpoint(r: ProviderRelayConfig): RelayEndpoint {
  return {
    ...parseHostPort(r.ssh),
    ...(r.hostKeyFingerprint != null ? { hostKeyFingerprint: r.hostKeyFingerprint } : {}),
  }
}

const sshUrl = (e: RelayEndpoint): string =>
  `ssh://${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`

export function createProviderRelays(init: ProviderRelaysInit): ProviderRelays {
  const log = init.logger
  const owner = ownerLabel(init.identity.publicKey.raw)
  const sshName = tunnelName(PROVIDER_SSH_LABEL, init.identity.publicKey.raw)
  const configs = new Map(init.relays.map((r) => [endpointId(toEndpoint(r)), r]))
  const sites = new Map<string, { host: string; port: number }>()
  const debounceMs = init.debounceMs ?? 1_000
  const retryMs = init.retryMs ?? 5_000
  /** the endpoints the listings carry (undefined after a failed re-sign) */
  let published: string | undefined = ''
  let timer: NodeJS.Timeout | undefined
  let running = false
  let publishing: Promise<void> = Promise.resolve()

  function forwards(): TunnelForward[] {
    return [
      { name: sshName, port: SSH_PORT, target: init.sshTarget },
      ...[...sites].map(([label, target]) => ({
        name: tunnelName(label, init.identity.publicKey.raw),
        port: HTTP_TUNNEL_PORT,
        target,
      })),
    ]
  }

  const set = createTunnelSet({
    relays: [...configs.values()].map(toEndpoint),
    identity: init.identity,
    forwards: forwards(),
    logger: log,
    ...(init.want != null ? { want: init.want } : {}),
    ...(init.keepaliveIntervalMs != null ? { keepaliveIntervalMs: init.keepaliveIntervalMs } : {}),
    ...(init.keepaliveCountMax != null ? { keepaliveCountMax: init.keepaliveCountMax } : {}),
    ...(init.backoff != null ? { backoff: init.backoff } : {}),
    onRelaysChanged: () => schedule(),
  })

  function endpoints(): string[] {
    const out: string[] = []
    for (const relay of set.upRelays()) {
      out.push(sshUrl(relay))
      const multiaddr = configs.get(endpointId(relay))?.multiaddr
      if (multiaddr != null) out.push(multiaddr)
    }
    return out
  }

  /** Re-signs once the set has been stable for `debounceMs`; publishes run one at a time, never twice. */
  function schedule(delayMs = debounceMs): void {
    if (!running) return
    if (timer != null) clearTimeout(timer)
    timer = setTimeout(fire, delayMs)
  }

  function fire(): void {
    timer = undefined
    const next = endpoints()
    const key = next.join(' ')
    if (key === published) return
    published = key
    publishing = publishing.then(async () => {
      if (!running) return
      try {
        await init.republish(next)
        log('listings re-signed with relays %o', next)
      } catch (err) {
        // forget what was published and try again later, so listings never keep naming a dead relay
        published = undefined
        log.error('re-signing listings with relays %o failed: %s', next, (err as Error).message)
        if (timer == null) schedule(retryMs)
      }
    })
  }

  return {
    sshName,
    start() {
      if (running) return
      running = true
      if (configs.size > 0) set.start()
    },
    async stop() {
      running = false
      if (timer != null) clearTimeout(timer)
      timer = undefined
      await set.stop()
      await publishing
    },
    endpoints,
    tunnels: () => set,
    exposeHttp(label, target) {
      sites.set(label, target)
      set.setForwards(forwards())
      const urls: string[] = []
      for (const relay of set.upRelays()) {
        const c = configs.get(endpointId(relay))
        if (c?.httpPort == null) continue
        urls.push(`http://${label}.${owner}.${c.httpDomain ?? relay.host}:${c.httpPort}/`)
      }
      return urls
    },
    unexposeHttp(label) {
      if (!sites.delete(label)) return
      set.setForwards(forwards())
    },
    exposedLabels: () => [...sites.keys()],
  }
}

export interface LeaseExposeDeps {
  relays: ProviderRelays
  /** the rental behind an offer id: who rents it and where it stands */
  rental(offerId: string): { renter: string; status: string } | undefined
  /** the lease container's address on the lease network */
  containerAddress(leaseUser: string): Promise<string | undefined>
  /** the SSH user (and tunnel label) of a lease */
  leaseLabel(offerId: string): string
}

/**
 * The provider's answer to a renter's `expose` request: publishes `port` of the lease container as the
 * lease's site on the relays. Only the renter of an active lease may ask; anyone else learns nothing
 * about whether the offer exists.
 */
export function createLeaseExposer(
  deps: LeaseExposeDeps,
): (offerId: string, port: number, renter: string) => Promise<{ urls: string[] }> {
  return async (offerId, port, renter) => {
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new RpibError('ERR_EXPOSE_PORT', `port ${port} is not 1-65535`)
    const rental = deps.rental(offerId)
    if (rental == null || rental.renter !== renter)
      throw new RpibError('ERR_EXPOSE_UNKNOWN', 'no rental of yours with that offer id on this provider')
    if (rental.status !== 'active')
      throw new RpibError(
        'ERR_EXPOSE_NOT_ACTIVE',
        `the lease is ${rental.status}; only an active lease can be exposed`,
      )
    const label = deps.leaseLabel(offerId)
    const address = await deps.containerAddress(label)
    if (address == null)
      throw new RpibError('ERR_EXPOSE_NO_CONTAINER', 'the lease container has no address; ask the provider')
    const urls = deps.relays.exposeHttp(label, { host: address, port })
    if (urls.length === 0) {
      deps.relays.unexposeHttp(label)
      throw new RpibError(
        'ERR_EXPOSE_NO_RELAY',
        'this provider has no relay with HTTP ingress up right now; retry later or use ssh -L',
      )
    }
    return { urls }
  }
}

/** Drops the sites of leases that are no longer active (call on every lease change). */
export function pruneExposed(relays: ProviderRelays, isActive: (label: string) => boolean): void {
  for (const label of relays.exposedLabels()) if (!isActive(label)) relays.unexposeHttp(label)
}

export interface ProviderRelayRoleInit {
  identity: Ed25519PrivateKey
  relays: ProviderRelayConfig[]
  sshTarget: ForwardTarget
  /** lease changes arrive here; `provider.relays` is published after each re-sign */
  events: Pick<EventBus, 'subscribe' | 'publish'>
  leases: Pick<LeaseManager, 'get'>
  runtime: Pick<ContainerRuntime, 'getLease'>
  republish(relays: string[]): Promise<void>
  logger: Logger
  debounceMs?: number
}

export interface ProviderRelayRole {
  relays: ProviderRelays
  /** the negotiator's `expose` callback */
  expose(offerId: string, port: number, renter: string): Promise<{ urls: string[] }>
  stop(): Promise<void>
}

/**
 * Everything the provider service needs for relays in one call: starts the tunnels, answers `expose`, and
 * drops a lease's site as soon as the lease stops being active.
 */
export function startProviderRelayRole(init: ProviderRelayRoleInit): ProviderRelayRole {
  const relays = createProviderRelays({
    identity: init.identity,
    relays: init.relays,
    sshTarget: init.sshTarget,
    republish: async (endpoints) => {
      await init.republish(endpoints)
      init.events.publish('provider.relays', { relays: endpoints })
    },
    logger: init.logger,
    ...(init.debounceMs != null ? { debounceMs: init.debounceMs } : {}),
  })
  const rental = (offerId: string): { renter: string; status: string } | undefined => {
    const r = init.leases.get(offerId)
    return r == null ? undefined : { renter: r.request.signer, status: r.state.status }
  }
  const unsubscribe = init.events.subscribe((event) => {
    if (event.type !== 'lease.updated') return
    const data = event.data as { offerId?: unknown; status?: unknown }
    if (typeof data.offerId !== 'string' || data.status === 'active') return
    const label = leaseUser(data.offerId)
    pruneExposed(relays, (l) => l !== label)
  })
  relays.start()
  return {
    relays,
    expose: createLeaseExposer({
      relays,
      rental,
      leaseLabel: leaseUser,
      containerAddress: async (user) => (await init.runtime.getLease(user))?.ipAddress,
    }),
    async stop() {
      unsubscribe()
      await relays.stop()
    },
  }
}

export { rankEndpointsForRenters } from '../p2p/addresses.js'
