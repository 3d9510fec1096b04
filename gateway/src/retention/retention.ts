/**
 * Retention: prunes what the gateway no longer needs, in small batches, by
 * one replica at a time.
 *
 * - `webhook_deliveries` finished (`status <> 'pending'`) more than
 *   RETENTION_DELIVERIES_DAYS ago (`completed_at`). Pending ones never.
 * - `events` created more than RETENTION_EVENTS_DAYS ago that have no
 *   delivery left at all. An event with a pending delivery stays (deleting it
 *   would cascade to the delivery and lose it); so does one whose finished
 *   deliveries are still within their own horizon (a delivery stays readable
 *   as long as RETENTION_DELIVERIES_DAYS says, whatever the events horizon).
 * - `commands` done or failed more than RETENTION_EVENTS_DAYS ago
 *   (`completed_at`). Pending ones never. Their messages keep everything but
 *   the link (`messages.command_id` becomes null, which nothing reads).
 * - `media` created more than RETENTION_MEDIA_DAYS ago.
 * - `messages` are kept: they are the tenant's record of a send, looked up by
 *   id through the API, one small row per send.
 *
 * One replica at a time: a pass holds a session-level advisory lock
 * (RETENTION_LOCK) on a connection of its own for its duration; a replica
 * that cannot take it skips the pass. Every batch is one autocommit DELETE of
 * at most `batchSize` rows (short transactions, row locks held briefly), with
 * a pause between batches and at most `maxBatches` batches per table per pass,
 * so a large backlog is worked off over several passes instead of one long one.
 */
import type { Sql } from 'postgres';
import { SingletonJob } from '../claims/singleton-job';
import type { GatewayMetrics } from '../metrics/metrics';
import type { Logger } from '../logging/logger';

/** Advisory lock key of the retention pass: "wgs" and 4 (single bigint key, apart from the two-key locks). */
export const RETENTION_LOCK = 0x77_67_73_04;

export const RETENTION_TABLES = ['webhook_deliveries', 'events', 'commands', 'media'] as const;
export type RetentionTable = (typeof RETENTION_TABLES)[number];

export interface RetentionOptions {
  /** Days kept; 0 keeps forever. Commands follow the events horizon. */
  eventsDays: number;
  deliveriesDays: number;
  mediaDays: number;
  /** Rows per DELETE. Default 1000. */
  batchSize?: number;
  /** Pause between two batches. Default 200 ms. */
  pauseMs?: number;
  /** Batches per table per pass; what is left waits for the next pass. Default 50. */
  maxBatches?: number;
  /** How often a pass runs once started. Default 5 minutes. */
  intervalMs?: number;
  /** Tests: called once the lock is held, before the first batch. */
  onLocked?: () => Promise<void>;
}

export type RetentionResult = { skipped: true } | { skipped: false; pruned: Record<RetentionTable, number>; durationMs: number };

/**
 * One batch of one table: deletes at most `limit` rows older than `days`; resolves to the count.
 * The victims are picked by the retention index in age order and deleted by primary key
 * (`id = any(array(...))`, an index scan whatever the table's size or statistics).
 */
function batch(sql: Sql, table: RetentionTable, days: number, limit: number) {
  const horizon = sql`now() - make_interval(days => ${days}::int)`;
  switch (table) {
    // The status test is repeated in the DELETE itself: a delivery redelivered (set back to
    // pending) between the select and the delete is re-checked on its new version and kept.
    case 'webhook_deliveries':
      return sql`
        delete from webhook_deliveries where status <> 'pending' and id = any(array(
          select id from webhook_deliveries
          where status <> 'pending' and completed_at < ${horizon}
          order by completed_at limit ${limit}))`;
    // Deleting an event cascades to its deliveries: only events with none left go.
    case 'events':
      return sql`
        delete from events e
        where id = any(array(
          select id from events x
          where created_at < ${horizon}
            and not exists (select 1 from webhook_deliveries d where d.event_id = x.id)
          order by created_at limit ${limit}))
          and not exists (select 1 from webhook_deliveries d where d.event_id = e.id)`;
    case 'commands':
      return sql`
        delete from commands where status <> 'pending' and id = any(array(
          select id from commands
          where status <> 'pending' and completed_at < ${horizon}
          order by completed_at limit ${limit}))`;
    case 'media':
      return sql`
        delete from media where id = any(array(
          select id from media where created_at < ${horizon} order by created_at limit ${limit}))`;
  }
}

export class RetentionJob {
  private readonly job: SingletonJob;

  constructor(
    databaseUrl: string,
    private readonly logger: Logger,
    private readonly metrics: GatewayMetrics | undefined,
    private readonly opts: RetentionOptions,
  ) {
    this.job = new SingletonJob(databaseUrl, logger, { name: 'retention', lockKey: RETENTION_LOCK, applicationName: 'wgs-gateway-retention' });
  }

  private days(table: RetentionTable): number {
    if (table === 'webhook_deliveries') return this.opts.deliveriesDays;
    if (table === 'media') return this.opts.mediaDays;
    return this.opts.eventsDays;
  }

  /**
   * One pass over every table, or `{ skipped: true }` when another replica's
   * pass holds the lock. Deliveries go first: the events they free go in the
   * same pass.
   */
  async runOnce(): Promise<RetentionResult> {
    const result = await this.job.locked((sql) => this.pass(sql));
    return result ?? { skipped: true };
  }

  private async pass(sql: Sql): Promise<RetentionResult> {
    const started = Date.now();
    const pruned = Object.fromEntries(RETENTION_TABLES.map((t) => [t, 0])) as Record<RetentionTable, number>;
    const limit = this.opts.batchSize ?? 1000;
    const pauseMs = this.opts.pauseMs ?? 200;
    const maxBatches = this.opts.maxBatches ?? 50;
    await this.opts.onLocked?.();
    for (const table of RETENTION_TABLES) {
      const days = this.days(table);
      if (days <= 0) continue; // 0: kept forever
      for (let n = 0; n < maxBatches && !this.job.isStopped; n++) {
        if (n > 0 && pauseMs > 0) await Bun.sleep(pauseMs);
        const { count } = await batch(sql, table, days, limit);
        pruned[table] += count;
        this.metrics?.retentionPruned.inc({ table }, count);
        if (count < limit) break;
      }
    }
    const durationMs = Date.now() - started;
    this.metrics?.retentionLastRun.set(Date.now() / 1000);
    const total = Object.values(pruned).reduce((a, b) => a + b, 0);
    if (total) this.logger.info({ pruned, durationMs }, 'retention pass pruned old rows');
    else this.logger.debug({ durationMs }, 'retention pass: nothing to prune');
    return { skipped: false, pruned, durationMs };
  }

  /** Runs a pass every `intervalMs` (default 5 minutes), the first one shortly after start. */
  start(): void {
    this.job.start(() => this.runOnce(), this.opts.intervalMs ?? 5 * 60_000);
  }

  /** Stops the timer, lets a pass under way end after its current batch, and closes the connection. */
  stop(): Promise<void> {
    return this.job.stop();
  }
}
