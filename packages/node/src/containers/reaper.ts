import { logger as namedLogger, type Logger } from '../log.js'
import type { ContainerRuntime, KnownLease, LeaseEnded, ReconcileReport } from './types.js'

export interface LeaseReaperOptions {
  runtime: Pick<ContainerRuntime, 'reconcile'>
  /** The leases the rental flow currently knows (active or not); anything else is an orphan. */
  knownLeases: () => readonly KnownLease[] | Promise<readonly KnownLease[]>
  /** Called once per ended lease (expired or orphaned), e.g. to sign and publish the lease end. */
  onLeaseEnded: (ended: LeaseEnded) => void | Promise<void>
  intervalMs?: number
  now?: () => number
  logger?: Logger
}

export interface LeaseReaper {
  /** Reconciles at once, then every interval. */
  start(): Promise<ReconcileReport>
  stop(): Promise<void>
  /** One pass now (also what the timer runs); passes never overlap. */
  runOnce(): Promise<ReconcileReport>
}

/** Enforces expiry: periodically reconciles Docker with the known leases and reports each lease end. */
export function createLeaseReaper(options: LeaseReaperOptions): LeaseReaper {
  const log = options.logger ?? namedLogger('rpib:containers:reaper')
  const now = options.now ?? Date.now
  let timer: NodeJS.Timeout | undefined
  let running: Promise<ReconcileReport> | undefined

  async function pass(): Promise<ReconcileReport> {
    const report = await options.runtime.reconcile(now(), await options.knownLeases())
    for (const ended of report.ended) {
      try {
        await options.onLeaseEnded(ended)
      } catch (err) {
        log.error('reporting the end of lease %s failed: %s', ended.leaseId, (err as Error).message)
      }
    }
    return report
  }

  function runOnce(): Promise<ReconcileReport> {
    running ??= pass().finally(() => {
      running = undefined
    })
    return running
  }

  return {
    async start() {
      const first = await runOnce()
      timer = setInterval(() => {
        runOnce().catch((err: unknown) => log.error('reconcile failed: %s', (err as Error).message))
      }, options.intervalMs ?? 10_000)
      return first
    },
    async stop() {
      if (timer != null) clearInterval(timer)
      timer = undefined
      await running?.catch(() => undefined)
    },
    runOnce,
  }
}
