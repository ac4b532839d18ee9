import type { Duplex } from 'node:stream'

/**
 * A token bucket shared by every channel of one provider. `consume(n)` returns how long the caller
 * should pause before reading more so the long-run rate stays at `bytesPerSecond`.
 */
export class TokenBucket {
  private tokens: number
  private last = Date.now()
  constructor(
    private readonly bytesPerSecond: number,
    private readonly burst = Math.max(bytesPerSecond / 4, 64 * 1024),
  ) {
    this.tokens = this.burst
  }

  consume(bytes: number): number {
    const now = Date.now()
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.bytesPerSecond) / 1000)
    this.last = now
    this.tokens -= bytes
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.bytesPerSecond)
  }
}

/** Copies `src` into `dst` with back-pressure and an optional shared rate limit. */
function pump(src: Duplex, dst: Duplex, bucket: TokenBucket | undefined, count: (n: number) => void): void {
  src.on('data', (chunk: Buffer) => {
    count(chunk.length)
    const flushed = dst.writable ? dst.write(chunk) : true
    const waitMs = bucket?.consume(chunk.length) ?? 0
    if (flushed && waitMs === 0) return
    src.pause()
    let pending = (flushed ? 0 : 1) + (waitMs > 0 ? 1 : 0)
    const resume = (): void => {
      if (--pending === 0) src.resume()
    }
    if (!flushed) dst.once('drain', resume)
    if (waitMs > 0) setTimeout(resume, waitMs).unref()
  })
  src.on('end', () => {
    if (dst.writable) dst.end()
  })
  // a caller may have paused src while it set things up (HTTP ingress reads the head first)
  src.resume()
}

export interface BridgeCounters {
  /** bytes copied a → b */
  aToB: (n: number) => void
  /** bytes copied b → a */
  bToA: (n: number) => void
}

/**
 * Joins two byte streams (SSH channels, sockets): data both ways, half-close passed on, and when
 * one side closes the other is ended (then destroyed if it lingers). Resolves when both are closed.
 */
export function bridge(a: Duplex, b: Duplex, counters: BridgeCounters, bucket?: TokenBucket): Promise<void> {
  pump(a, b, bucket, counters.aToB)
  pump(b, a, bucket, counters.bToA)
  const closed = (s: Duplex): Promise<void> =>
    new Promise((resolve) => {
      if (s.destroyed) resolve()
      else s.once('close', () => resolve())
    })
  const finish = (other: Duplex) => () => {
    if (other.destroyed) return
    if (other.writable) other.end()
    setTimeout(() => other.destroy(), 5_000).unref()
  }
  a.once('close', finish(b))
  b.once('close', finish(a))
  a.on('error', () => a.destroy())
  b.on('error', () => b.destroy())
  return Promise.all([closed(a), closed(b)]).then(() => undefined)
}
