export interface BackoffOptions {
  baseMs: number;
  capMs: number;
  /** Fraction of the delay added or removed at random, so restarted workers do not reconnect in lockstep. */
  jitter: number;
}

/** The protocol's reconnect policy: 0.25 s doubling to 10 s, ±20%. */
export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 250, capMs: 10_000, jitter: 0.2 };

/**
 * How long to wait before reconnect attempt `attempt` (0 for the first).
 * The cap applies after the jitter too, so no wait ever exceeds capMs.
 */
export function backoffDelay(attempt: number, random: () => number = Math.random, opts: BackoffOptions = DEFAULT_BACKOFF): number {
  const exponential = Math.min(opts.capMs, opts.baseMs * 2 ** Math.max(0, attempt));
  const factor = 1 + opts.jitter * (2 * random() - 1);
  return Math.round(Math.min(opts.capMs, exponential * factor));
}
