import { timingSafeEqual } from 'node:crypto'
import ssh2, { type ParsedKey, type PublicKeyAuthContext } from 'ssh2'

const { utils } = ssh2

/** What the SSH server needs to know about a lease; the rental flow provides it (LeaseStore-agnostic). */
export interface LeaseAccess {
  leaseId: string
  /** Unix milliseconds; the lease authenticates only before this moment. */
  expiresAt: number
  /** The renter's public keys in OpenSSH format (`ssh-ed25519 AAAA… comment`). */
  authorizedKeys: readonly string[]
}

/** Looks a lease up by SSH user name (= lease id); undefined when there is no such lease. */
export type LookupLease = (user: string) => LeaseAccess | undefined | Promise<LeaseAccess | undefined>

function parsePublicKeys(keys: readonly string[]): ParsedKey[] {
  const parsed: ParsedKey[] = []
  for (const line of keys) {
    const key = utils.parseKey(line)
    if (key instanceof Error) continue
    if (Array.isArray(key)) parsed.push(...key)
    else parsed.push(key)
  }
  return parsed
}

/**
 * Decides a public-key attempt: the key must be one of the lease's keys (compared in constant time) and,
 * when the client signed, the signature must verify. Returns the matching key or undefined.
 */
export function matchPublicKey(
  ctx: PublicKeyAuthContext,
  authorizedKeys: readonly string[],
): ParsedKey | undefined {
  const offered = ctx.key.data
  for (const key of parsePublicKeys(authorizedKeys)) {
    const blob = key.getPublicSSH()
    if (key.type !== ctx.key.algo && !(key.type === 'ssh-rsa' && ctx.key.algo.startsWith('rsa-sha2')))
      continue
    if (blob.length !== offered.length || !timingSafeEqual(blob, offered)) continue
    if (ctx.signature != null && ctx.blob != null) {
      return key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true ? key : undefined
    }
    return key
  }
  return undefined
}

export interface AuthRateLimiterOptions {
  /** Failed attempts allowed per source within the window (default 20). */
  maxFailures?: number
  windowMs?: number
  now?: () => number
}

/**
 * Counts failed authentications per source (IP address, or the label of an injected stream). A source
 * over the limit is refused at connection time until its window has passed.
 */
export class AuthRateLimiter {
  private readonly failures = new Map<string, { count: number; since: number }>()
  private readonly maxFailures: number
  private readonly windowMs: number
  private readonly now: () => number

  constructor(options: AuthRateLimiterOptions = {}) {
    this.maxFailures = options.maxFailures ?? 20
    this.windowMs = options.windowMs ?? 60_000
    this.now = options.now ?? Date.now
  }

  blocked(source: string): boolean {
    const entry = this.failures.get(source)
    if (entry == null) return false
    if (this.now() - entry.since > this.windowMs) {
      this.failures.delete(source)
      return false
    }
    return entry.count >= this.maxFailures
  }

  recordFailure(source: string): void {
    const now = this.now()
    const entry = this.failures.get(source)
    if (entry == null || now - entry.since > this.windowMs)
      this.failures.set(source, { count: 1, since: now })
    else entry.count++
    // bound memory under a scan from many sources: drop the oldest entries
    if (this.failures.size > 10_000) {
      for (const key of this.failures.keys()) {
        this.failures.delete(key)
        if (this.failures.size <= 5_000) break
      }
    }
  }
}
