import type { ApiRouter } from '../api/router.js'
import type { EventBus } from '../api/events.js'
import type { Config } from '../config/schema.js'
import type { NodeIdentity } from '../config/identity.js'
import type { EventLogger } from './json-log.js'

/**
 * What the daemon runs: p2p node, market, rentals, payments, provider runtime, relay … each one a
 * service built by a factory with explicit dependencies, plugged in by the composition root (daemon.ts).
 */
export interface DaemonService {
  /** short, unique, used in logs, events and `/api/node` (`p2p`, `market`, `payments` …) */
  readonly name: string
  /** acquires sockets, timers and stores; `signal` aborts a slow start when the daemon is stopped */
  start(signal: AbortSignal): Promise<void>
  /** releases everything start() acquired; must be safe to call after a failed or partial start */
  stop(): Promise<void>
  /**
   * After every service has started: bring persisted state back into agreement (leases vs containers,
   * invoices vs the chain, listings vs what this node provides). Runs in start order.
   */
  reconcile?(signal: AbortSignal): Promise<void>
  /** one line on something the owner should know (shown by /api/node and `rpib status`), if any */
  note?(): string | undefined
  /** adds this service's routes to the local API (before it listens) */
  registerRoutes?(router: ApiRouter): void
}

/** What the composition root hands to the service factories. */
export interface ServiceContext {
  home: string
  config: Config
  identity: NodeIdentity
  events: EventBus
  log: EventLogger
}

/** Builds the services for a config, in start order (they are stopped in reverse). */
export type ComposeServices = (ctx: ServiceContext) => DaemonService[] | Promise<DaemonService[]>

export type ServiceState = 'starting' | 'running' | 'stopping' | 'stopped' | 'failed'
