/**
 * Replay guard: remembers (signer, type, nonce) of accepted records until they expire, so the same
 * record is accepted once inside its validity window (verifyRecord already refuses it outside). Memory
 * is bounded: when full, the entries closest to expiry are dropped first (they are replayable for the
 * shortest time anyway).
 */
import { TIMEOUTS } from './constants.js'
import { ProtocolError } from './errors.js'
import type { SignedRecord } from './envelope.js'

export interface ReplayGuardOptions {
  /** Most remembered records; default 100,000. */
  maxEntries?: number
  clockSkewMs?: number
}

export class ReplayGuard {
  readonly #seen = new Map<string, number>()
  readonly #maxEntries: number
  readonly #skew: number

  constructor(opts: ReplayGuardOptions = {}) {
    this.#maxEntries = opts.maxEntries ?? 100_000
    this.#skew = opts.clockSkewMs ?? TIMEOUTS.clockSkewMs
  }

  get size(): number {
    return this.#seen.size
  }

  /** Records `record` as seen; returns ERR_REPLAY if it was already seen and has not expired. */
  check(record: SignedRecord, now: number = Date.now()): ProtocolError | undefined {
    const key = `${record.signer}\0${record.type}\0${record.nonce}`
    const forgetAt = this.#seen.get(key)
    if (forgetAt !== undefined && forgetAt >= now) {
      return new ProtocolError(
        'ERR_REPLAY',
        `${record.type} record from ${record.signer} was already received`,
      )
    }
    if (this.#seen.size >= this.#maxEntries) this.#prune(now)
    this.#seen.set(key, record.expiresAt + this.#skew)
    return undefined
  }

  #prune(now: number): void {
    for (const [key, forgetAt] of this.#seen) if (forgetAt < now) this.#seen.delete(key)
    if (this.#seen.size < this.#maxEntries) return
    const byExpiry = [...this.#seen].sort((a, b) => a[1] - b[1])
    const excess = this.#seen.size - this.#maxEntries + Math.ceil(this.#maxEntries / 10)
    for (let i = 0; i < excess && i < byExpiry.length; i++) this.#seen.delete(byExpiry[i]![0])
  }
}
