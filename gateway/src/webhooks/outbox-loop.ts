import { sql, type SQL } from 'drizzle-orm';
import type { PgTable } from 'drizzle-orm/pg-core';
import type { Sql } from 'postgres';
import type { Logger } from '../logging/logger';

/**
 * The ids of an outbox table's rows due now that no live gateway holds,
 * locked for this transaction (`for update skip locked`): the `due` CTE of a
 * claim. The statement must define `live` (claims/owner.ts liveOwners) first.
 */
export function dueOutboxRows(table: PgTable, limit: number): SQL {
  return sql`
    select id from ${table}
    where status = 'pending' and next_attempt_at <= now()
      and (locked_until is null or locked_until < now() or (claimed_by is not null and claimed_by not in (select * from live)))
    order by id
    limit ${limit}
    for update skip locked`;
}

/**
 * The loop of an outbox dispatcher: a round claims and delivers a batch; the
 * next one runs at once after a full batch, else when the channel is
 * notified (an insert committed) or after `pollMs` (retries fall due).
 */
export class OutboxLoop {
  private running = false;
  private wake?: () => void;
  /** A notification came while a round ran (no one waiting): the next wait returns at once instead of losing it. */
  private notified = false;
  private loop?: Promise<void>;
  private unlisten?: () => Promise<void>;

  constructor(
    private readonly sql: Sql,
    private readonly channel: string,
    private readonly round: () => Promise<number>,
    private readonly logger: Logger,
    private readonly pollMs: number,
  ) {}

  async start(): Promise<void> {
    this.running = true;
    const listener = await this.sql.listen(this.channel, () => this.notify());
    this.unlisten = () => listener.unlisten();
    this.loop = this.run();
  }

  private notify(): void {
    if (this.wake) this.wake();
    else this.notified = true;
  }

  async stop(): Promise<void> {
    this.running = false;
    this.notify();
    await this.loop;
    await this.unlisten?.().catch(() => {});
  }

  private async run(): Promise<void> {
    while (this.running) {
      let claimed = 0;
      this.notified = false; // what was committed before this round's claim, the claim sees
      try {
        claimed = await this.round();
      } catch (err) {
        this.logger.error({ err }, `${this.channel} dispatch round failed`);
      }
      if (claimed > 0 || !this.running) continue;
      // An insert committed during the round may have been missed by its claim (it took its snapshot before).
      if (this.notified) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.pollMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }
}
