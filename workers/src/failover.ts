/**
 * Which gateway replica a worker dials, and when. WGS_GATEWAY_URL may list
 * several replicas; the worker tries them in one fixed order of its own
 * (dialOrder), moves to the next at once when a dial fails or a connection
 * drops, and backs off (backoff.ts) only after a whole round of them failed.
 * A connected worker stays where it is. The Go worker (workers/whatsmeow,
 * internal/gateway/failover.go) implements the same order and rounds.
 */
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff';

/**
 * The order a worker tries `urls` in: entry `instanceId mod n` first (so
 * workers with consecutive ids spread evenly over the replicas), then the
 * others shuffled with the instance id as seed (so the workers of a lost
 * replica spread over the remaining ones instead of all moving to its
 * neighbour in the list). The same instance gets the same order at every
 * start, in the TypeScript and in the Go worker.
 */
export function dialOrder<T>(urls: readonly T[], instanceId: number): T[] {
  const order = [...urls];
  const n = order.length;
  if (n < 2) return order;
  swap(order, 0, instanceId % n);
  const next = mulberry32(instanceId);
  // Fisher-Yates over positions 1..n-1.
  for (let i = n - 1; i >= 2; i--) swap(order, i, 1 + (next() % i));
  return order;
}

function swap<T>(list: T[], i: number, j: number): void {
  const item = list[i]!;
  list[i] = list[j]!;
  list[j] = item;
}

/**
 * mulberry32: a small seeded generator of unsigned 32-bit integers, written
 * with 32-bit operations only so that Go computes the very same numbers.
 */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** What to do after a failure: dial `url` after `delayMs` (0: at once, the round goes on). */
export interface NextDial {
  url: string;
  delayMs: number;
  /** Whole rounds failed in a row since the last welcome (0 while a round is still going). */
  failedRounds: number;
}

/**
 * The failover state of one worker: the URL to dial now, and after a
 * failure (a dial that never opened, a close before the welcome, a dropped
 * connection) the next one. A round is one failure per URL in a row; only a
 * failed round waits, with the protocol's backoff (its attempt number is the
 * count of failed rounds). A welcome ends the streak: the next failure starts
 * a new round, without a wait. With one URL every failure is a whole round,
 * which is exactly the single-gateway backoff.
 */
export class GatewayRotation {
  private index = 0;
  private failedInRound = 0;
  private failedRounds = 0;

  constructor(
    private readonly urls: readonly string[],
    private readonly backoff: BackoffOptions = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {
    if (urls.length === 0) throw new Error('at least one gateway URL is needed');
  }

  /** The URL to dial now. */
  get url(): string {
    return this.urls[this.index]!;
  }

  /** The gateway at the current URL welcomed the worker: it stays there. */
  connected(): void {
    this.failedInRound = 0;
    this.failedRounds = 0;
  }

  /** The current URL failed: the next URL, and how long to wait before dialling it. */
  failed(): NextDial {
    this.index = (this.index + 1) % this.urls.length;
    this.failedInRound += 1;
    if (this.failedInRound < this.urls.length) return { url: this.url, delayMs: 0, failedRounds: this.failedRounds };
    this.failedInRound = 0;
    const delayMs = backoffDelay(this.failedRounds, this.random, this.backoff);
    this.failedRounds += 1;
    return { url: this.url, delayMs, failedRounds: this.failedRounds };
  }
}
