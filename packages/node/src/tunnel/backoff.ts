export interface BackoffOptions {
  initialMs: number
  maxMs: number
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000 }

/** Exponential backoff with jitter in [50 %, 100 %] of the step, so many providers do not reconnect in lockstep. */
export function backoffDelay(
  attempt: number,
  opts: BackoffOptions,
  random: () => number = Math.random,
): number {
  const step = Math.min(opts.maxMs, opts.initialMs * 2 ** Math.min(attempt, 30))
  return Math.round(step * (0.5 + random() / 2))
}
