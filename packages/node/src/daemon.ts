import { readFileSync } from 'node:fs'
import { createApiServer, type ApiServer } from './api/server.js'
import { createEventBus, registerEventRoutes, type EventBus } from './api/events.js'
import { registerNodeRoutes, type NodeInfo } from './api/routes/node.js'
import { loadOrCreateApiToken } from './api/token.js'
import type { Config } from './config/schema.js'
import { loadOrCreateIdentity, type NodeIdentity } from './config/identity.js'
import { ensurePrivateDir } from './config/paths.js'
import { createJsonLogger, type EventLogger } from './daemon/json-log.js'
import { acquireDaemonLock, type DaemonLock } from './daemon/lock.js'
import { createMarketService } from './daemon/market-service.js'
import { createPaymentsService } from './daemon/payments-service.js'
import { createRelayService } from './daemon/relay-service.js'
import { createRenterService } from './daemon/renter-service.js'
import type { ComposeServices, DaemonService, ServiceContext, ServiceState } from './daemon/service.js'
import { removeDaemonState, writeDaemonState } from './daemon/state-file.js'
import { RpibError } from './errors.js'
import type { ProviderRental } from './rentals/rental-store.js'

export type { DaemonService, ServiceContext, ComposeServices } from './daemon/service.js'

const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version

/**
 * The composition root's wiring: which services run for this config, built with their dependencies,
 * started in this order and stopped in reverse. Every role runs the market (libp2p + OrbitDB + presence)
 * payments (chain backend from `config.bitcoin`, wallet, invoices) and the renter's rentals. The provider role adds the
 * provider runtime and rentals on top of both; the relay role adds the circuit-relay-v2 server to the
 * market's libp2p node and runs the SSH jump server and HTTP ingress. Roles are imported only when enabled.
 */
export const composeServices: ComposeServices = async (ctx) => {
  let extraServices: Record<string, unknown> | undefined
  if (ctx.config.roles.relay) {
    const { relayLimits } = await import('./relay/limits.js')
    const { rpibCircuitRelayServer } = await import('./relay/circuit.js')
    extraServices = { relay: rpibCircuitRelayServer(relayLimits()) }
  }
  const market = createMarketService(ctx, extraServices)
  const payments = createPaymentsService(ctx)
  const renter = createRenterService(ctx, { market: market.node, wallet: payments.wallet })
  const services: DaemonService[] = [market, payments, renter]
  let provider: { leases(): { list(): ProviderRental[] } | undefined } | undefined
  if (ctx.config.roles.provider) {
    const { createProviderService } = await import('./daemon/provider-service.js')
    const service = createProviderService(ctx, { market: market.node, invoices: payments.invoices })
    provider = service
    services.push(service)
  }
  // the market's history journal: the provider's rentals and the renter's outages go into the offers log
  market.setHistorySources({
    providerRentals: () => provider?.leases()?.list(),
    renterLeases: () => renter.heldLeases(),
  })
  if (ctx.config.roles.relay) services.push(createRelayService(ctx))
  return services
}

export interface DaemonOptions {
  home: string
  config: Config
  /** the config file that was read (shown by /api/config) */
  configFile?: string
}

export interface DaemonDeps {
  log?: EventLogger
  /** the services to run (default: `composeServices`); tests pass their own */
  services?: ComposeServices
  /** a service that takes longer than this to stop is reported and left behind (default 10 s) */
  stopTimeoutMs?: number
}

export interface Daemon {
  start(): Promise<{ apiUrl: string; peerId: string }>
  /** graceful shutdown; idempotent, safe after a failed start */
  stop(reason?: string): Promise<void>
  readonly events: EventBus
  readonly apiUrl: string | undefined
}

type Phase = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped'

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(new RpibError('ERR_TIMEOUT', `${what} did not finish within ${ms} ms`)),
      ms,
    )
  })
  try {
    return await Promise.race([work, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** The daemon: the one place that wires config, identity, local API and every role's services. */
export function createDaemon(opts: DaemonOptions, deps: DaemonDeps = {}): Daemon {
  const { home, config } = opts
  const log = deps.log ?? createJsonLogger({ level: config.log.level })
  const compose = deps.services ?? composeServices
  const stopTimeoutMs = deps.stopTimeoutMs ?? 10_000
  const events = createEventBus({ onListenerError: (err) => log.error('events.listener_failed', { err }) })
  const lifetime = new AbortController()

  let phase: Phase = 'idle'
  let lock: DaemonLock | undefined
  let identity: NodeIdentity | undefined
  let api: ApiServer | undefined
  let startedAt = new Date()
  let services: DaemonService[] = []
  const states = new Map<string, ServiceState>()
  let stopping: Promise<void> | undefined

  const setState = (name: string, state: ServiceState): void => {
    states.set(name, state)
    events.publish('service.state', { service: name, state })
  }

  const info = (): NodeInfo => ({
    peerId: identity?.peerId.toString() ?? '',
    version: VERSION,
    network: config.network,
    bitcoinNetwork: config.bitcoin.network,
    roles: { renter: true, provider: config.roles.provider, relay: config.roles.relay },
    pid: process.pid,
    startedAt: startedAt.toISOString(),
    uptimeSeconds: Math.floor((Date.now() - startedAt.getTime()) / 1000),
    apiUrl: api?.url ?? '',
    services: services.map((s) => {
      const note = s.note?.()
      return { name: s.name, state: states.get(s.name) ?? 'stopped', ...(note != null ? { note } : {}) }
    }),
  })

  async function stopServices(): Promise<void> {
    for (const service of [...services].reverse()) {
      const state = states.get(service.name)
      if (state == null || state === 'stopped') continue
      setState(service.name, 'stopping')
      try {
        await withTimeout(service.stop(), stopTimeoutMs, `stopping service ${service.name}`)
        setState(service.name, 'stopped')
        log.info('service.stopped', { service: service.name })
      } catch (err) {
        setState(service.name, 'failed')
        log.error('service.stop_failed', { service: service.name, err })
      }
    }
  }

  let tearingDown: Promise<void> | undefined
  const teardown = (): Promise<void> => (tearingDown ??= releaseAll())

  async function releaseAll(): Promise<void> {
    await api?.close().catch((err: unknown) => log.error('api.close_failed', { err }))
    await stopServices()
    await removeDaemonState(home).catch((err: unknown) => log.error('daemon.state_remove_failed', { err }))
    await lock?.release().catch((err: unknown) => log.error('daemon.unlock_failed', { err }))
    lock = undefined
    phase = 'stopped'
  }

  let startPromise: Promise<{ apiUrl: string; peerId: string }> | undefined

  function start(): Promise<{ apiUrl: string; peerId: string }> {
    startPromise ??= doStart()
    return startPromise
  }

  async function doStart(): Promise<{ apiUrl: string; peerId: string }> {
    if (phase !== 'idle') throw new RpibError('ERR_DAEMON_STATE', `daemon cannot start: it is ${phase}`)
    phase = 'starting'
    startedAt = new Date()
    try {
      await ensurePrivateDir(home)
      lock = await acquireDaemonLock(home)
      identity = await loadOrCreateIdentity(home)
      const token = await loadOrCreateApiToken(home)
      const ctx: ServiceContext = { home, config, identity, events, log }
      services = await compose(ctx)
      const names = new Set<string>()
      for (const s of services) {
        if (names.has(s.name)) throw new Error(`two services are named ${s.name}`)
        names.add(s.name)
      }

      api = createApiServer({
        host: config.api.host,
        port: config.api.port,
        token,
        log: log.child('api'),
        version: VERSION,
        sseHeartbeatMs: config.api.sseHeartbeatSeconds * 1000,
      })
      registerNodeRoutes(api.router, {
        info,
        health: () => (phase === 'stopping' || phase === 'stopped' ? 'stopping' : 'ok'),
        home,
        configFile: opts.configFile,
        config,
      })
      registerEventRoutes(api.router, events)
      for (const s of services) s.registerRoutes?.(api.router)
      const apiUrl = await api.listen()
      await writeDaemonState(home, {
        pid: process.pid,
        apiUrl,
        peerId: identity.peerId.toString(),
        startedAt: startedAt.toISOString(),
        version: VERSION,
      })

      for (const s of services) {
        if (lifetime.signal.aborted)
          throw new RpibError('ERR_ABORTED', 'daemon start was cancelled by a stop')
        setState(s.name, 'starting')
        try {
          await s.start(lifetime.signal)
        } catch (err) {
          setState(s.name, 'failed')
          throw err
        }
        setState(s.name, 'running')
        log.info('service.started', { service: s.name })
      }
      for (const s of services) {
        if (s.reconcile == null) continue
        await s.reconcile(lifetime.signal)
        log.info('service.reconciled', { service: s.name })
      }
      // a stop() that arrived during start owns the shutdown from here
      if (lifetime.signal.aborted) throw new RpibError('ERR_ABORTED', 'daemon start was cancelled by a stop')
      phase = 'running'
      events.publish('daemon.started', { peerId: identity.peerId.toString(), apiUrl })
      log.info('daemon.started', {
        peerId: identity.peerId.toString(),
        apiUrl,
        network: config.network,
        roles: { provider: config.roles.provider, relay: config.roles.relay },
        services: services.map((s) => s.name),
        pid: process.pid,
        version: VERSION,
      })
      return { apiUrl, peerId: identity.peerId.toString() }
    } catch (err) {
      if (!lifetime.signal.aborted) log.error('daemon.start_failed', { err })
      phase = 'stopping'
      await teardown()
      throw err
    }
  }

  function stop(reason = 'requested'): Promise<void> {
    if (stopping != null) return stopping
    if (phase === 'idle') {
      phase = 'stopped'
      return Promise.resolve()
    }
    const wasStarting = phase === 'starting'
    phase = 'stopping'
    log.info('daemon.stopping', { reason })
    events.publish('daemon.stopping', { reason })
    lifetime.abort()
    stopping = (async () => {
      // a start in progress notices the abort at its next step, tears down and rejects
      if (wasStarting) await startPromise?.catch(() => undefined)
      await teardown()
      log.info('daemon.stopped', { reason })
    })()
    return stopping
  }

  return {
    start,
    stop,
    events,
    get apiUrl() {
      return api?.url
    },
  }
}
