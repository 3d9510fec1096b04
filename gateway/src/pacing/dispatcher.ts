/**
 * The pacer: sends scheduled commands (`not_before`) to the workers connected
 * to this replica when they fall due. Commands another replica routed here
 * (a worker connected to this replica, instances/runtime.ts `route`) are
 * marked due and come the same way. One timer per replica, set to the next
 * due time (the `commands_scheduled_idx` index answers it); woken early by
 * this replica's own schedules and by NOTIFY `wgs_pacing` from the others,
 * and every `pollMs` anyway in case a notification was lost. The commands
 * are rows: a restarted gateway finds them.
 */
import { sql } from 'drizzle-orm';
import type { Sql } from 'postgres';
import type { Db } from '../db/client';
import { commands, instances, type Command } from '../db/schema';
import type { Logger } from '../logging/logger';
import { PACING_CHANNEL } from './reserve';
import { endPauses } from './pause';

export interface PacerTarget {
  /** Whether this replica holds the instance's worker. */
  isConnected(instanceId: number): boolean;
  /** Sends a command to its worker now if it can take it (connected session, not moving). */
  dispatch(command: Command): boolean;
}

export class PacedDispatcher {
  private timer: Timer | undefined;
  private nextAt = Infinity;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = true;
  private closed = false;
  private unlisten: (() => Promise<void>) | undefined;

  constructor(
    private readonly db: Db,
    private readonly sql: Sql,
    private readonly target: PacerTarget,
    private readonly logger: Logger,
    private readonly pollMs = 5_000,
  ) {}

  async start(): Promise<void> {
    if (!this.stopped || this.closed) return;
    this.stopped = false;
    try {
      const listener = await this.sql.listen(PACING_CHANNEL, () => this.wake());
      this.unlisten = () => listener.unlisten();
    } catch (err) {
      this.logger.warn({ err }, 'pacer: LISTEN failed; falling back to polling');
    }
    if (this.stopped) await this.unlisten?.().catch(() => {});
    else this.wake();
  }

  /** For good: a stopped pacer does not start again (a new one does). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.unlisten?.().catch(() => {});
    this.unlisten = undefined;
    await this.running?.catch(() => {});
  }

  /** Look now (or at `at`, if that is earlier than the next planned look). */
  wake(at?: Date): void {
    if (this.stopped) return;
    const when = at ? at.getTime() : Date.now();
    if (when >= this.nextAt) return;
    this.arm(when);
  }

  private arm(when: number): void {
    clearTimeout(this.timer);
    this.nextAt = when;
    this.timer = setTimeout(() => this.run(), Math.max(0, when - Date.now()));
  }

  private run(): void {
    this.nextAt = Infinity;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.tick()
      .catch((err) => this.logger.error({ err }, 'pacer: dispatching due commands failed'))
      .then((next) => {
        this.running = undefined;
        if (this.stopped) return;
        if (this.again) {
          this.again = false;
          this.arm(Date.now());
          return;
        }
        this.arm(Math.min(next ?? Infinity, Date.now() + this.pollMs, this.nextAt));
      });
  }

  /** Sends what is due to the workers connected here; returns when the next command falls due. */
  async tick(): Promise<number | undefined> {
    // Pauses that ran out end here, once (whichever replica runs the update first): instance.resumed.
    await endPauses(this.db);
    const due = await this.db
      .select()
      .from(commands)
      .where(sql`${commands.status} = 'pending' and ${commands.notBefore} is not null and ${commands.notBefore} <= now() and ${commands.sentAt} is null`)
      .orderBy(commands.instanceId, commands.id)
      .limit(1000);
    // Claimed before dispatch: sent_at set only where still pending and unclaimed, so a command
    // cancelled meanwhile (campaigns/progress.ts) is not handed out; the row lock decides between the two.
    const mine = due.filter((c) => this.target.isConnected(c.instanceId));
    const claimed = new Set(
      mine.length === 0
        ? []
        : (
            await this.db.execute<{ id: number }>(sql`
              update ${commands} set sent_at = now(), attempts = attempts + 1
              where id in ${mine.map((c) => c.id)} and status = 'pending' and sent_at is null
              returning id`)
          ).map((r) => Number(r.id)),
    );
    const unclaim: number[] = [];
    const blocked = new Set<number>();
    for (const c of mine) {
      if (!claimed.has(c.id)) continue;
      // In order per instance: once one command cannot go, the later ones wait too.
      if (blocked.has(c.instanceId) || !this.target.dispatch(c)) {
        blocked.add(c.instanceId);
        unclaim.push(c.id);
      }
    }
    if (unclaim.length > 0) {
      await this.db.execute(sql`update ${commands} set sent_at = null, attempts = attempts - 1 where id in ${unclaim} and status = 'pending'`);
    }
    const [row] = await this.db.execute<{ next: string | null }>(sql`
      select least(
        (select min(not_before) from ${commands} where status = 'pending' and not_before is not null and not_before > now()),
        (select min(paused_until) from ${instances} where paused_until > now())
      ) as next`);
    if (due.length === 1000) return Date.now();
    return row?.next ? new Date(row.next).getTime() : undefined;
  }
}
