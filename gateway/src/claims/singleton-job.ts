/**
 * A periodic job that one gateway replica at a time runs (retention, usage
 * accrual): every replica keeps the timer; a pass takes a session-level
 * advisory lock and is skipped when another replica holds it. The job has a
 * one-connection client of its own, not a connection reserved from the pool
 * (see owner.ts: postgres.js 3.4.9 and dead reserved connections): the lock
 * and every statement of a pass go over that one connection.
 */
import postgres, { type Sql } from 'postgres';
import type { Logger } from '../logging/logger';

export class SingletonJob {
  readonly sql: Sql;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  constructor(
    databaseUrl: string,
    private readonly logger: Logger,
    private readonly job: { name: string; lockKey: number; applicationName: string },
  ) {
    this.sql = postgres(databaseUrl, {
      max: 1,
      idle_timeout: 60,
      onnotice: () => {},
      connection: { application_name: job.applicationName, tcp_keepalives_idle: 10, tcp_keepalives_interval: 5, tcp_keepalives_count: 3 },
    });
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Runs `pass` holding the lock; undefined (and a debug line) when another replica holds it. */
  async locked<T>(pass: (sql: Sql) => Promise<T>): Promise<T | undefined> {
    const [{ locked }] = (await this.sql`select pg_try_advisory_lock(${this.job.lockKey}) as locked`) as unknown as [{ locked: boolean }];
    if (!locked) {
      this.logger.debug(`${this.job.name} pass skipped: another replica is running one`);
      return undefined;
    }
    try {
      return await pass(this.sql);
    } finally {
      await this.sql`select pg_advisory_unlock(${this.job.lockKey})`.catch(() => {});
    }
  }

  /** Calls `pass` every `everyMs`; the first one waits a moment (at most 30 s): start-up comes first. */
  start(pass: () => Promise<unknown>, everyMs: number): void {
    const tick = async () => {
      this.running = pass().catch((err) => this.logger.error({ err }, `${this.job.name} pass failed`));
      await this.running;
      if (!this.stopped) this.timer = setTimeout(tick, everyMs);
    };
    this.timer = setTimeout(tick, Math.min(everyMs, 30_000));
  }

  /** Stops the timer, lets a pass under way end, and closes the connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    await this.sql.end({ timeout: 2 }).catch(() => {});
  }
}
