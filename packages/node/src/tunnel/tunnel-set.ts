import type { Ed25519PrivateKey } from '@libp2p/interface'
import type { Logger } from '../log.js'
import type { BackoffOptions } from './backoff.js'
import {
  createReverseTunnel,
  endpointId,
  type RelayEndpoint,
  type ReverseTunnel,
  type TunnelForward,
  type TunnelStatus,
} from './reverse-tunnel.js'

export interface TunnelSetInit {
  /** candidate relays, in order of preference */
  relays: RelayEndpoint[]
  identity: Ed25519PrivateKey
  forwards: TunnelForward[]
  logger: Logger
  /** how many relays to hold tunnels on at once (default 2) */
  want?: number
  keepaliveIntervalMs?: number
  keepaliveCountMax?: number
  backoff?: BackoffOptions
  /**
   * Called with the relays whose tunnel is up, whenever that set changes. The provider re-signs its
   * listing from here so renters always see where it can be reached.
   */
  onRelaysChanged?: (relays: RelayEndpoint[]) => void
}

export interface TunnelSet {
  start(): void
  stop(): Promise<void>
  /** relays whose tunnel is up now */
  upRelays(): RelayEndpoint[]
  statuses(): TunnelStatus[]
  setForwards(forwards: TunnelForward[]): void
  /** resolves when at least `count` tunnels are up, or rejects at the deadline */
  waitForUp(count: number, timeoutMs: number): Promise<RelayEndpoint[]>
}

/**
 * Keeps reverse tunnels on `want` relays out of the candidates. A relay that goes down is retried
 * with backoff; if a spare candidate exists, the spare takes its slot at once and the failed relay
 * goes to the back of the queue.
 */
export function createTunnelSet(init: TunnelSetInit): TunnelSet {
  const want = Math.max(1, init.want ?? 2)
  const spares: RelayEndpoint[] = [...init.relays.slice(want)]
  const active = new Map<string, ReverseTunnel>()
  let forwards = init.forwards
  let lastAnnounced = ''
  let started = false
  const waiters = new Set<() => void>()

  function upRelays(): RelayEndpoint[] {
    return [...active.values()].filter((t) => t.status().state === 'up').map((t) => t.status().relay)
  }

  function announce(): void {
    const up = upRelays()
    const key = up.map(endpointId).sort().join(',')
    if (key !== lastAnnounced) {
      lastAnnounced = key
      init.logger('tunnels up on %d relay(s)', up.length)
      init.onRelaysChanged?.(up)
    }
    for (const w of waiters) w()
  }

  function open(relay: RelayEndpoint): void {
    const tunnel = createReverseTunnel({
      relay,
      identity: init.identity,
      forwards,
      logger: init.logger,
      keepaliveIntervalMs: init.keepaliveIntervalMs,
      keepaliveCountMax: init.keepaliveCountMax,
      backoff: init.backoff,
    })
    active.set(endpointId(relay), tunnel)
    tunnel.onStatus((s) => {
      if (s.state === 'backoff' && spares.length > 0 && started) rotate(relay, tunnel)
      announce()
    })
    tunnel.start()
  }

  function rotate(failed: RelayEndpoint, tunnel: ReverseTunnel): void {
    const spare = spares.shift()
    if (spare == null) return
    active.delete(endpointId(failed))
    spares.push(failed)
    void tunnel.stop()
    open(spare)
  }

  return {
    start() {
      if (started) return
      started = true
      for (const relay of init.relays.slice(0, want)) open(relay)
    },
    async stop() {
      started = false
      const all = [...active.values()]
      active.clear()
      await Promise.all(all.map((t) => t.stop()))
      announce()
    },
    upRelays,
    statuses: () => [...active.values()].map((t) => t.status()),
    setForwards(next) {
      forwards = next
      for (const t of active.values()) t.setForwards(next)
    },
    waitForUp(count, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const up = upRelays()
          if (up.length >= count) {
            waiters.delete(check)
            clearTimeout(timer)
            resolve(up)
          }
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(
            new Error(`only ${upRelays().length} of ${count} relay tunnels came up within ${timeoutMs} ms`),
          )
        }, timeoutMs)
        waiters.add(check)
        check()
      })
    },
  }
}
