/**
 * One leader among the gateway replicas of a database. The leader runs what
 * must run once (the control loop, booting workers that should run, the
 * migrate/drain sweeps, node health checks); every replica serves the API and
 * accepts worker sockets.
 *
 * Leadership is `pg_try_advisory_lock(LEADER_LOCK)` on a connection of its own
 * (a one-connection client, not one reserved from the pool: see owner.ts and
 * porsager/postgres#1208), with TCP keepalives. While it holds the lock the
 * same session also holds `(LEADER_MARK, ownerId)`, so `pg_locks` alone says
 * which replica leads (`leaderOwner`): nothing to go stale when it dies.
 *
 * - Followers try for the lock every `retryMs` (2 s): a dead leader's session
 *   ends with it (at once for a killed process; within the keepalive time,
 *   about 25 s, for a vanished host), and the next try takes over.
 * - The leader checks every `heartbeatMs` (2 s) that its session still holds
 *   the lock, with a deadline (`heartbeatTimeoutMs`); a failed or late answer,
 *   or the connection closing, steps down at once. Its duties stop before it
 *   tries again.
 */
import { sql as dsql, type SQL } from 'drizzle-orm';
import postgres, { type Sql } from 'postgres';
import type { Logger } from '../logging/logger';

/** Advisory lock of leadership: "wgs" 5 (single key). */
export const LEADER_LOCK = 0x77_67_73_05;
/** Namespace of the leader's marker lock `(LEADER_MARK, ownerId)`: "wgs" 6. */
export const LEADER_MARK = 0x77_67_73_06;

/** SQL: the liveness id (owner.ts) of the replica that leads now, or null. */
export const leaderOwner: SQL = dsql`(
  select objid::int from pg_locks
  where locktype = 'advisory' and classid = ${LEADER_MARK}::oid and objsubid = 2 and granted
    and database = (select oid from pg_database where datname = current_database())
  limit 1)`;

export interface LeadershipOptions {
  /** How often a follower tries for the lock. */
  retryMs?: number;
  /** How often the leader checks that it still holds it. */
  heartbeatMs?: number;
  /** A heartbeat not answered within this steps down. */
  heartbeatTimeoutMs?: number;
}

export interface LeaderDuties {
  /** Called when this replica becomes leader. */
  lead(): void | Promise<void>;
  /** Called when it stops leading (lost session, shutdown); must stop everything lead() started. */
  stepDown(): void | Promise<void>;
}

export class Leadership {
  private readonly sql: Sql;
  private leading = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private ticking: Promise<void> | undefined;
  private since: Date | undefined;
  private readonly retryMs: number;
  private readonly heartbeatMs: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly listeners = new Set<(leading: boolean) => void>();

  constructor(
    databaseUrl: string,
    private readonly ownerId: number,
    private readonly duties: LeaderDuties,
    private readonly logger: Logger,
    opts: LeadershipOptions = {},
  ) {
    this.retryMs = opts.retryMs ?? 2000;
    this.heartbeatMs = opts.heartbeatMs ?? 2000;
    this.heartbeatTimeoutMs = opts.heartbeatTimeoutMs ?? 3000;
    this.sql = postgres(databaseUrl, {
      max: 1,
      onnotice: () => {},
      // A closed connection means the session, and the lock with it, is gone: step down now, not at the next beat.
      onclose: () => {
        if (this.leading) void this.lose('the leadership connection closed');
      },
      connection: { application_name: 'wgs-gateway-leader', tcp_keepalives_idle: 10, tcp_keepalives_interval: 5, tcp_keepalives_count: 3 },
    });
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** When this replica became leader (undefined while it follows). */
  get leaderSince(): Date | undefined {
    return this.since;
  }

  onChange(fn: (leading: boolean) => void): void {
    this.listeners.add(fn);
  }

  /** Tries at once, then keeps trying (follower) or checking (leader). */
  start(): Promise<void> {
    this.ticking = this.tick();
    return this.ticking;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.ticking = this.tick();
    }, this.leading ? this.heartbeatMs : this.retryMs);
  }

  private async tick(): Promise<void> {
    try {
      if (this.leading) await this.heartbeat();
      else await this.tryLead();
    } catch (err) {
      this.logger.error({ err }, 'leadership: tick failed');
    }
    this.schedule();
  }

  private async tryLead(): Promise<void> {
    let won = false;
    try {
      const [row] = (await this.sql`
        select pg_try_advisory_lock(${LEADER_LOCK}) as won`) as unknown as [{ won: boolean }];
      won = row.won;
      if (won) await this.sql`select pg_advisory_lock(${LEADER_MARK}, ${this.ownerId})`;
    } catch (err) {
      this.logger.debug({ err }, 'leadership: the database does not answer; trying again');
      return;
    }
    if (!won || this.stopped) {
      if (won) await this.unlock();
      return;
    }
    this.leading = true;
    this.since = new Date();
    this.logger.info('this replica leads: it runs the control loop, drains and node checks');
    for (const fn of this.listeners) fn(true);
    try {
      await this.duties.lead();
    } catch (err) {
      this.logger.error({ err }, 'leadership: starting the leader duties failed; stepping down');
      await this.lose('starting the leader duties failed');
      await this.unlock();
    }
  }

  /** Asks Postgres whether this session still holds the lock, within a deadline. */
  private async heartbeat(): Promise<void> {
    let timeout: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<'late'>((resolve) => {
      timeout = setTimeout(() => resolve('late'), this.heartbeatTimeoutMs);
    });
    const check = this.sql`
      select exists(select 1 from pg_locks where locktype = 'advisory' and classid = 0 and objid = ${LEADER_LOCK}::oid
        and objsubid = 1 and pid = pg_backend_pid() and granted) as held`.then(
      (rows) => ((rows as unknown as [{ held: boolean }])[0].held ? 'held' : 'lost'),
      () => 'failed' as const,
    );
    const answer = await Promise.race([check, late]);
    clearTimeout(timeout);
    if (answer === 'held') return;
    await this.lose(answer === 'late' ? `the database did not answer within ${this.heartbeatTimeoutMs} ms` : answer === 'lost' ? 'the lock is no longer held' : 'the database does not answer');
    // A late answer may still come with the lock held on a live session: give it up so another replica can lead.
    if (answer === 'late') void this.unlock();
  }

  private async lose(reason: string): Promise<void> {
    if (!this.leading) return;
    this.leading = false;
    this.since = undefined;
    this.logger.warn({ reason }, 'this replica no longer leads');
    for (const fn of this.listeners) fn(false);
    await Promise.resolve(this.duties.stepDown()).catch((err) => this.logger.error({ err }, 'leadership: stopping the leader duties failed'));
  }

  private async unlock(): Promise<void> {
    await this.sql`select pg_advisory_unlock(${LEADER_MARK}, ${this.ownerId}), pg_advisory_unlock(${LEADER_LOCK})`.catch(() => {});
  }

  /** Stops trying, steps down (duties stopped) and frees the lock for the next replica. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking?.catch(() => {});
    clearTimeout(this.timer);
    await this.lose('gateway stopping');
    await this.unlock();
    await this.sql.end({ timeout: 2 }).catch(() => {});
  }
}
