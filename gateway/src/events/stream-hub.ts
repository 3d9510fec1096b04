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
  /** A tenant's stream that hears of deletions: the tenant's instances it knows of, looked for again after a LISTEN outage. */
  known?: Set<number>;
}

/** An id the log skipped (a transaction that took it has not committed, or rolled back) is looked for this long. */
const GAP_TTL_MS = 30_000;
/** An instance reported deleted is not reported again (recheck and a late NOTIFY, a raced round's events) for this long. */
const GONE_TTL_MS = 10 * 60_000;
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
 * `instance.deleted` without an id). A notification lost with the LISTEN
 * connection is made up for when the hub listens again: it looks for every
 * instance an open stream watches (an instance's stream its own; a tenant's
 * stream the tenant's instances at its start and those whose events it saw).
 */
export class EventStreamHub {
  private readonly subscribers = new Set<Subscriber>();
  private cursor = 0;
  private gaps = new Map<number, number>(); // id -> when first skipped
  private gone = new Map<number, number>(); // instance id -> when reported deleted
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
    const sub: Subscriber = { scope, deliver, gone, known: await this.knownInstances(scope, gone) };
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

  /**
   * A tenant's stream that takes `instance.deleted`: the tenant's instances now (the hub adds the ones whose
   * events it hands on later). Without them, a deletion missed during a LISTEN outage would go unsaid.
   */
  private async knownInstances(scope: StreamScope, gone?: (notice: DeletedNotice) => void): Promise<Set<number> | undefined> {
    if (!gone || scope.instanceId !== undefined || (scope.types && !scope.types.has(INSTANCE_DELETED))) return undefined;
    try {
      const rows = await this.sql<{ id: number }[]>`select id from instances where user_id = ${scope.userId}`;
      return new Set(rows.map((r) => r.id));
    } catch (err) {
      this.logger.warn({ err }, 'event streams: reading the tenant\'s instances failed; a deletion missed while listening again may go unsaid');
      return new Set();
    }
  }

  /**
   * After (re)listening, a deletion may have been missed: every instance an open stream watches (its own,
   * or one a tenant's stream knows of) is looked for, and the streams of one that is gone are told so.
   */
  private async recheck(): Promise<void> {
    const watched = new Set<number>();
    for (const s of this.subscribers) {
      if (s.gone && s.scope.instanceId !== undefined) watched.add(s.scope.instanceId);
      for (const id of s.known ?? []) watched.add(id);
    }
    if (watched.size === 0) return;
    try {
      const rows = await this.sql<{ id: number }[]>`select id from instances where id = any(${[...watched]}::int[])`;
      const alive = new Set(rows.map((r) => r.id));
      for (const id of watched) if (!alive.has(id)) this.tellGone(id, (sub) => sub.scope.instanceId === id || sub.known?.has(id) === true);
    } catch (err) {
      this.logger.warn({ err }, 'event streams: checking for deleted instances failed');
    }
  }

  /** Tells the subscribers `to` picks that the instance is gone, once per instance (GONE_TTL_MS); no stream knows of it after. */
  private tellGone(instanceId: number, to: (sub: Subscriber) => boolean): void {
    const now = Date.now();
    for (const [id, at] of this.gone) if (now - at > GONE_TTL_MS) this.gone.delete(id);
    const told = [...this.subscribers].filter((sub) => sub.gone && to(sub));
    for (const sub of this.subscribers) sub.known?.delete(instanceId);
    if (this.gone.has(instanceId)) return;
    this.gone.set(instanceId, now);
    const notice: DeletedNotice = { type: INSTANCE_DELETED, instanceId, createdAt: new Date().toISOString(), data: {} };
    for (const sub of told) {
      try {
        sub.gone!(notice);
      } catch (err) {
        this.logger.warn({ err }, 'event stream subscriber failed');
      }
    }
  }

  private fanOut(rows: EventRow[]): void {
    if (this.subscribers.size === 0) return;
    const events = rows.map((r) => ({ userId: r.user_id, event: toStreamEvent(r) }));
    for (const sub of this.subscribers) {
      // A tenant's stream learns of the tenant's new instances from their events, whatever types it takes.
      if (sub.known) for (const e of events) if (e.userId === sub.scope.userId && !this.gone.has(e.event.instanceId)) sub.known.add(e.event.instanceId);
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
