import { sql as dsql } from 'drizzle-orm';
import type { Sql } from 'postgres';
import type { Db } from '../db/client';
import type { Logger } from '../logging/logger';
import { INSTANCE_DELETED, selectEvents, toStreamEvent, type DeletedNotice, type EventRow, type StreamEvent, type StreamScope } from './log';

/** NOTIFY channel: an event was committed (payload: its instance id). Migration 0018's trigger. */
export const EVENTS_CHANNEL = 'wgs_events';
/** NOTIFY channel: an instance was deleted (payload: `{"instanceId", "userId"}`), sent in the deleting transaction. */
export const DELETED_CHANNEL = 'wgs_instance_deleted';

/** Tells every replica's streams, when the caller's transaction commits, that the instance is gone. */
export async function announceDeleted(tx: Pick<Db, 'execute'>, instanceId: number, userId: number): Promise<void> {
  await tx.execute(dsql`select pg_notify(${DELETED_CHANNEL}, ${JSON.stringify({ instanceId, userId })})`);
}

interface Subscriber {
  scope: StreamScope;
  deliver(events: StreamEvent[]): void;
  gone?(notice: DeletedNotice): void;
}

/** An id the log skipped (a transaction that took it has not committed, or rolled back) is looked for this long. */
const GAP_TTL_MS = 30_000;
const BATCH = 1000;

export function inScope(scope: StreamScope, userId: number, e: Pick<StreamEvent, 'instanceId' | 'type'>): boolean {
  return userId === scope.userId && (scope.instanceId === undefined || e.instanceId === scope.instanceId) && (!scope.types || scope.types.has(e.type));
}

/**
 * The live half of the event streams, one per gateway replica: it LISTENs on
 * `wgs_events`, reads each newly committed event of the log once, and hands
 * it to the open streams whose scope takes it. Streams never query on their
 * own for live events, so a thousand open dashboards cost one query per wake.
 *
 * Identity ids are taken in insert order but become visible in commit order:
 * an id below the last one seen may still commit. The hub remembers such
 * skipped ids for 30 s and looks for them again on every round, so a slow
 * transaction's event is still streamed (after later ones; clients order by
 * nothing but arrival). Rounds run on a NOTIFY, and every 5 s while anyone
 * listens in case a notification was lost with a reconnect.
 *
 * Started on the first subscriber; the starting point is the log's end.
 * A deleted instance's log goes with it; the deleting transaction NOTIFYs
 * `wgs_instance_deleted`, and the hub tells the streams in its scope (an
 * `instance.deleted` without an id).
 */
export class EventStreamHub {
  private readonly subscribers = new Set<Subscriber>();
  private cursor = 0;
  private gaps = new Map<number, number>(); // id -> when first skipped
  private started?: Promise<void>;
  private unlisten?: () => Promise<void>;
  private timer?: ReturnType<typeof setInterval>;
  private round?: Promise<void>;
  private again = false;
  private stopped = false;

  constructor(
    private readonly sql: Sql,
    private readonly logger: Logger,
    private readonly pollMs = 5000,
  ) {}

  /**
   * Adds a subscriber; resolves once the hub is live. What the hub has read
   * so far is `position()`: every event the subscriber is handed afterwards
   * is one the hub had not read before it subscribed.
   */
  async subscribe(
    scope: StreamScope,
    deliver: (events: StreamEvent[]) => void,
    gone?: (notice: DeletedNotice) => void,
  ): Promise<{ position: { cursor: number; gaps: number[] }; unsubscribe: () => void }> {
    await this.start();
    // Let a round in flight finish first: what it reads was committed before
    // this call, so it belongs to the caller's replay, not to its live feed.
    await this.round;
    const sub: Subscriber = { scope, deliver, gone };
    this.subscribers.add(sub);
    return {
      position: { cursor: this.cursor, gaps: [...this.gaps.keys()] },
      unsubscribe: () => this.subscribers.delete(sub),
    };
  }

  get size(): number {
    return this.subscribers.size;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.started?.catch(() => {});
    await this.unlisten?.().catch(() => {});
    await this.round;
    this.subscribers.clear();
  }

  private start(): Promise<void> {
    this.started ??= (async () => {
      const listeners: { unlisten(): Promise<void> }[] = [];
      this.unlisten = async () => {
        await Promise.allSettled(listeners.splice(0).map((l) => l.unlisten()));
      };
      try {
        listeners.push(await this.sql.listen(EVENTS_CHANNEL, () => this.wake(), () => this.wake()));
        // (Re)listening, a deletion may have been missed: the instance streams look for their instance again.
        listeners.push(await this.sql.listen(DELETED_CHANNEL, (payload) => this.deleted(payload), () => void this.recheck()));
        const [row] = await this.sql<{ max: string | null }[]>`select max(id) as max from events`;
        this.cursor = Number(row?.max ?? 0);
      } catch (err) {
        await this.unlisten();
        throw err;
      }
      this.timer = setInterval(() => {
        if (this.subscribers.size > 0 || this.gaps.size > 0) this.wake();
      }, this.pollMs);
      this.timer.unref?.();
    })().catch((err) => {
      this.started = undefined;
      throw err;
    });
    return this.started;
  }

  private wake(): void {
    if (this.stopped) return;
    if (this.round) {
      this.again = true;
      return;
    }
    this.round = this.run().finally(() => {
      this.round = undefined;
      if (this.again) {
        this.again = false;
        this.wake();
      }
    });
  }

  private async run(): Promise<void> {
    try {
      for (;;) {
        const full = await this.readOnce();
        if (!full || this.stopped) break;
      }
    } catch (err) {
      this.logger.warn({ err }, 'event stream round failed; retried on the next notification');
    }
  }

  /** One batch of new events; true when the batch was full (more to read). */
  private async readOnce(): Promise<boolean> {
    const now = Date.now();
    for (const [id, since] of this.gaps) if (now - since > GAP_TTL_MS) this.gaps.delete(id);
    const gapIds = [...this.gaps.keys()];
    const rows = await this.sql<EventRow[]>`
      ${selectEvents(this.sql)}
      where e.id > ${this.cursor} ${gapIds.length > 0 ? this.sql`or e.id = any(${gapIds}::bigint[])` : this.sql``}
      order by e.id
      limit ${BATCH}`;
    if (rows.length === 0) return false;
    let expected = this.cursor + 1;
    for (const r of rows) {
      const id = Number(r.id);
      if (this.gaps.delete(id)) continue;
      for (; expected < id; expected++) this.gaps.set(expected, now);
      expected = id + 1;
    }
    this.cursor = Math.max(this.cursor, expected - 1);
    this.fanOut(rows);
    return rows.length === BATCH;
  }

  private deleted(payload: string): void {
    let parsed: { instanceId?: unknown; userId?: unknown };
    try {
      parsed = JSON.parse(payload);
    } catch {
      return;
    }
    if (typeof parsed.instanceId !== 'number' || typeof parsed.userId !== 'number') return;
    const { instanceId, userId } = parsed;
    // A tenant's stream hears of it when it takes the type; an instance's own stream always (it ends, whatever its types).
    this.tellGone(instanceId, (sub) => sub.scope.userId === userId && (sub.scope.instanceId === instanceId || inScope(sub.scope, userId, { instanceId, type: INSTANCE_DELETED })));
  }

  /** The instance streams whose instance is gone (a deletion missed while listening again) are told so. */
  private async recheck(): Promise<void> {
    const watched = [...new Set([...this.subscribers].flatMap((s) => (s.gone && s.scope.instanceId !== undefined ? [s.scope.instanceId] : [])))];
    if (watched.length === 0) return;
    try {
      const rows = await this.sql<{ id: number }[]>`select id from instances where id = any(${watched}::int[])`;
      const alive = new Set(rows.map((r) => r.id));
      for (const id of watched) if (!alive.has(id)) this.tellGone(id, (sub) => sub.scope.instanceId === id);
    } catch (err) {
      this.logger.warn({ err }, 'event streams: checking for deleted instances failed');
    }
  }

  private tellGone(instanceId: number, to: (sub: Subscriber) => boolean): void {
    const notice: DeletedNotice = { type: INSTANCE_DELETED, instanceId, createdAt: new Date().toISOString(), data: {} };
    for (const sub of this.subscribers) {
      if (!sub.gone || !to(sub)) continue;
      try {
        sub.gone(notice);
      } catch (err) {
        this.logger.warn({ err }, 'event stream subscriber failed');
      }
    }
  }

  private fanOut(rows: EventRow[]): void {
    if (this.subscribers.size === 0) return;
    const events = rows.map((r) => ({ userId: r.user_id, event: toStreamEvent(r) }));
    for (const sub of this.subscribers) {
      const mine = events.filter((e) => inScope(sub.scope, e.userId, e.event)).map((e) => e.event);
      if (mine.length === 0) continue;
      try {
        sub.deliver(mine);
      } catch (err) {
        this.logger.warn({ err }, 'event stream subscriber failed');
      }
    }
  }
}
