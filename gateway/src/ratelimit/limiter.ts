/**
 * API rate limits per API key and per tenant, shared by every gateway replica.
 *
 * Fixed windows counted in Postgres (`rate_limit_windows`): each /api request
 * adds one to its key's row and its tenant's row of the current window in ONE
 * upsert, which returns both counts, so replicas share exact counts without
 * talking to each other. Per-process counters would let N replicas allow N
 * times the limit. Windows start on the database clock (replicas' clocks may
 * differ; the database is the one clock they share); a window is 60 s
 * aligned to the minute, i.e. `date_trunc('minute', now())`.
 *
 * Refused requests count too (the upsert is unconditional): a client that
 * keeps hammering while refused gains nothing, and it cannot stretch the
 * refusal either, since a fixed window ends at its boundary whatever its
 * count. A key over its own limit does use up its tenant's window too.
 *
 * Limits come from the tenant's plan, cached per process for PLAN_CACHE_MS:
 * a plan change applies within that time. Failing to read the plan or to
 * count fails OPEN (the request proceeds without rate-limit headers, with a
 * warning in the log): rate limiting protects the gateway, it is not what
 * makes an answer correct.
 */
import type { Database } from '../db/client';
import type { Logger } from '../logging/logger';
import { planOf } from '../plans/plans';
import { decide, windowKeys, type Decision, type Limits, type WindowState } from './policy';

/** How long a tenant's plan limits are cached in each process. */
export const PLAN_CACHE_MS = 5_000;
export const WINDOW_SECONDS = 60;
/** Windows older than this many window lengths are deleted. */
const KEEP_WINDOWS = 2;
/** Rows deleted per prune statement; a full batch runs another at once. */
const PRUNE_BATCH = 10_000;
const WARN_EVERY_MS = 30_000;
const MAX_CACHED_PLANS = 10_000;

export interface RateLimiterOptions {
  /** Window length; 60 in production. Tests and benches may shorten it; not an operator setting. */
  windowSeconds?: number;
  planCacheMs?: number;
}

export class RateLimiter {
  private readonly windowSeconds: number;
  private readonly planCacheMs: number;
  private readonly plans = new Map<number, { limits: Limits; until: number }>();
  private lastPrune = 0;
  private pruning: Promise<unknown> = Promise.resolve();
  private lastWarning = 0;
  private readonly log: Logger;

  constructor(
    private readonly database: Database,
    logger: Logger,
    opts: RateLimiterOptions = {},
  ) {
    this.windowSeconds = opts.windowSeconds ?? WINDOW_SECONDS;
    this.planCacheMs = opts.planCacheMs ?? PLAN_CACHE_MS;
    this.log = logger.child({ component: 'ratelimit' });
  }

  get window(): number {
    return this.windowSeconds;
  }

  /**
   * Counts one request of this key and tenant; null when the plan sets no
   * limit (nothing counted, no headers) or when the limiter failed (fail open).
   */
  async check(userId: number, keyId: number): Promise<Decision | null> {
    try {
      const keys = windowKeys(await this.limitsOf(userId), userId, keyId);
      if (keys.length === 0) return null;
      const counted = await this.count(keys.map((k) => k.key));
      const states: WindowState[] = keys.map((k) => {
        const row = counted.get(k.key);
        if (!row) throw new Error(`the upsert returned no row for ${k.key}`);
        return { scope: k.scope, limit: k.limit, count: row.count, resetSeconds: row.resetSeconds };
      });
      this.maybePrune();
      return decide(states);
    } catch (err) {
      this.warn(err, { userId, keyId }, 'rate limiter unavailable: request allowed without a limit');
      return null;
    }
  }

  /** Drops cached plan limits (all, or one tenant's): the next request reads the plan again. */
  forget(userId?: number): void {
    if (userId === undefined) this.plans.clear();
    else this.plans.delete(userId);
  }

  private async limitsOf(userId: number): Promise<Limits> {
    const now = Date.now();
    const cached = this.plans.get(userId);
    if (cached && cached.until > now) return cached.limits;
    const plan = await planOf(this.database.db, userId);
    const limits = { perKey: plan.rateLimitPerKey, perTenant: plan.rateLimitPerTenant };
    if (this.plans.size >= MAX_CACHED_PLANS) this.plans.clear();
    this.plans.set(userId, { limits, until: now + this.planCacheMs });
    return limits;
  }

  /**
   * The one statement per request: adds 1 to each key's row of the current
   * window (created at 1) and returns the counts and the seconds left in the
   * window, all on the database clock.
   */
  private async count(keys: string[]): Promise<Map<string, { count: number; resetSeconds: number }>> {
    const w = this.windowSeconds;
    const rows = await this.database.sql<{ key: string; count: number; reset: number }[]>`
      insert into rate_limit_windows (key, window_start, count)
      select k, to_timestamp(floor(extract(epoch from now()) / ${w}::int) * ${w}::int), 1
      from unnest(${keys}::text[]) as k
      on conflict (key, window_start) do update set count = rate_limit_windows.count + 1
      returning key, count, ceil(extract(epoch from window_start - now()) + ${w}::int)::int as reset`;
    return new Map(rows.map((r) => [r.key, { count: r.count, resetSeconds: Math.max(1, r.reset) }]));
  }

  /**
   * At most once a window per process, off the request path: deletes rows of
   * windows that ended at least one window ago, in bounded batches (the
   * window_start index finds them). Whichever replica runs it first does the
   * work; the others find little left.
   */
  private maybePrune(): void {
    const now = Date.now();
    if (now - this.lastPrune < this.windowSeconds * 1000) return;
    this.lastPrune = now;
    this.pruning = this.prune().catch((err) => this.warn(err, {}, 'pruning old rate-limit windows failed'));
  }

  /** Resolves once the background prune started by a request (if any) has finished. */
  idle(): Promise<void> {
    return this.pruning.then(() => undefined);
  }

  async prune(): Promise<number> {
    const keepSeconds = this.windowSeconds * KEEP_WINDOWS;
    let total = 0;
    for (;;) {
      const deleted = await this.database.sql`
        delete from rate_limit_windows
        where (key, window_start) in (
          select key, window_start from rate_limit_windows
          where window_start < now() - make_interval(secs => ${keepSeconds}::int)
          limit ${PRUNE_BATCH}::int)`;
      total += deleted.count;
      if (deleted.count < PRUNE_BATCH) return total;
    }
  }

  private warn(err: unknown, fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    if (now - this.lastWarning < WARN_EVERY_MS) return;
    this.lastWarning = now;
    this.log.warn({ err, ...fields }, message);
  }
}
