import type { PendingQuery, Row, Sql } from 'postgres';
import { badRequest } from '../http/errors';
import { EVENT_TYPES } from '../webhooks/subscriptions';

/**
 * Reading the event log: the row every reader selects (the streams' hub and
 * replay, the REST pages) and its JSON form, the `types` filter they accept,
 * and one page of a tenant's (or one instance's) events.
 */

/** One event as the API shows it (a stream's `data`, a page's entry): the row of the event log. */
export interface StreamEvent {
  id: number;
  type: string;
  instanceId: number;
  createdAt: string;
  data: Record<string, unknown>;
}

/** What a stream says when one of its instances is deleted: the event's form without an id (it is not in the log). */
export interface DeletedNotice {
  type: typeof INSTANCE_DELETED;
  instanceId: number;
  createdAt: string;
  data: Record<string, never>;
}

/** Whose events: a tenant, optionally one instance, optionally some types. */
export interface StreamScope {
  userId: number;
  instanceId?: number;
  types?: ReadonlySet<string>;
}

/** What `selectEvents` reads. */
export interface EventRow {
  id: string | number;
  instance_id: number;
  user_id: number;
  type: string;
  data: Record<string, unknown>;
  /** Milliseconds since the epoch (the Drizzle-configured client hands timestamps back as text). */
  created_ms: number;
}

export function toStreamEvent(r: EventRow): StreamEvent {
  return { id: Number(r.id), type: r.type, instanceId: r.instance_id, createdAt: new Date(r.created_ms).toISOString(), data: r.data };
}

/** `select … from events e`: the columns `toStreamEvent` takes, with the tenant for scoping (and `more` columns). */
export function selectEvents(sql: Sql, more: PendingQuery<Row[]> = sql``): PendingQuery<Row[]> {
  return sql`select e.id, e.instance_id, e.user_id, e.type, e.data, (extract(epoch from e.created_at) * 1000)::float8 as created_ms ${more}
    from events e`;
}

/** An event id as a query or header gives it: digits only, at most 15 (a safe JavaScript integer). */
export const EVENT_ID_PATTERN = '^[0-9]{1,15}$';

/**
 * Streams only: an instance was deleted. Its log goes with it (events cascade), so this event is not in
 * the log: it has no id, is not replayed on a resume, and no webhook carries it (they go with the instance too).
 */
export const INSTANCE_DELETED = 'instance.deleted';
/** What a stream may carry: the log's types and `instance.deleted`. */
export const STREAM_EVENT_TYPES: readonly string[] = [...EVENT_TYPES, INSTANCE_DELETED];

/** How a `types` query parameter is described, wherever one is taken. */
export const typesDescription = (known: readonly string[] = EVENT_TYPES) => `comma-separated event types (default all): ${known.join(', ')}`;

/** `?types=a,b` → the set of types (undefined: all); 400 `unknown_event_type` naming the unknown ones. */
export function parseTypes(raw: string | undefined, known: readonly string[] = EVENT_TYPES): ReadonlySet<string> | undefined {
  if (raw === undefined) return undefined;
  const types = raw.split(',').map((s) => s.trim()).filter(Boolean);
  // No type named (`''`, `,,,`): all types, as without the parameter; never an empty filter that matches nothing.
  if (types.length === 0) return undefined;
  const unknown = types.filter((ty) => !known.includes(ty));
  if (unknown.length > 0) throw badRequest('unknown_event_type', `unknown event type ${unknown.map((u) => JSON.stringify(u)).join(', ')}; known: ${known.join(', ')}`);
  return new Set(types);
}

/** `and …` conditions of a scope: the tenant, optionally one instance, optionally some types. */
export function scopeFilter(sql: Sql, scope: StreamScope): PendingQuery<Row[]> {
  // The scope's column as a one-value range, not `=`, and first in `scopeOrder`: the planner then reads the
  // scope's own index in order. With `=` it may walk the whole log's primary key and filter, guessing the
  // scope's events are spread evenly; a quiet instance in a busy log made that a scan of most of the log
  // (bench/events.ts). One instance's tenant is checked once, on the instance (a constant to the planner).
  const owner =
    scope.instanceId !== undefined
      ? sql`e.instance_id between ${scope.instanceId} and ${scope.instanceId}
          and (select i.user_id from instances i where i.id = ${scope.instanceId}) = ${scope.userId}`
      : sql`e.user_id between ${scope.userId} and ${scope.userId}`;
  return sql`${owner} ${scope.types ? sql`and e.type = any(${[...scope.types]}::text[])` : sql``}`;
}

/** The head of a scoped read's `order by` (`scopeFilter`'s column, constant within the scope): `e.instance_id, ` or `e.user_id, `. */
export function scopeOrder(sql: Sql, scope: StreamScope, direction: 'asc' | 'desc'): PendingQuery<Row[]> {
  const dir = direction === 'asc' ? sql`asc` : sql`desc`;
  return scope.instanceId !== undefined ? sql`e.instance_id ${dir},` : sql`e.user_id ${dir},`;
}

/**
 * A poller's position in the log: after the event `id` of transaction `tx`.
 * Polling pages go in `(tx, id)` order, not id order: see `eventPage`.
 */
export interface Cursor {
  tx: string;
  id: number;
}

/** A cursor as the API hands it out (`next.after`): `<tx>.<id>`, opaque to clients. */
export const formatCursor = (c: Cursor): string => `${c.tx}.${c.id}`;

/** What `after` may be: 0 (the start), an event id, or a cursor; the transaction part at most 19 digits (an xid8). */
export const AFTER_PATTERN = '^([0-9]{1,19}[.])?[0-9]{1,15}$';

/** Where a page starts: after a cursor (null: the start; oldest first, a poller's), or before an id / at the end (newest first, history). */
export type PageFrom = { after: Cursor | null } | { before?: number };

export interface EventPage {
  events: StreamEvent[];
  /** The events past this page exist (one more than `limit` was found). */
  more: boolean;
  /** With `after`: the position after the page's last event (the given one when the page is empty). */
  cursor?: Cursor | null;
}

/**
 * Where polling starts after an event given by its id (one a webhook or
 * stream carried); null when it is not in the scope's retained log.
 *
 * Ids and transactions do not sort alike: an event with a higher id can have
 * an older transaction (one that wrote something else first), and one may
 * still be running. So the start is the event's own position only when no
 * event of the scope with a higher id, and no running transaction, is older
 * than the event's transaction; otherwise it is just before the oldest of
 * those, and the first pages may repeat a few events at or below the id
 * (never skip one above it).
 */
export async function cursorOf(sql: Sql, scope: StreamScope, id: number): Promise<Cursor | null> {
  const within = scopeFilter(sql, { userId: scope.userId, instanceId: scope.instanceId });
  // The later events' oldest transaction: read through the scope's id index, so it costs the events after the id.
  const [row] = await sql<{ tx: string; start: string }[]>`
    select e.tx::text as tx, least(e.tx, pg_snapshot_xmin(pg_current_snapshot()),
      (select min(l.tx) from events l
        where ${scope.instanceId !== undefined ? sql`l.instance_id = e.instance_id` : sql`l.user_id = e.user_id`} and l.id > e.id))::text as start
    from events e
    where e.id = ${id} and ${within}`;
  if (!row) return null;
  return row.start === row.tx ? { tx: row.tx, id } : { tx: row.start, id: 0 };
}

/**
 * A cursor naming a transaction that has not begun yet (at or past the
 * snapshot's xmax): only a cursor from before a logical dump and restore
 * (the new server's transaction ids start lower) can. Answering it with the
 * events after it would be nothing for a long time, so it is refused.
 */
export async function isFutureCursor(sql: Sql, c: Cursor): Promise<boolean> {
  const [row] = await sql<{ future: boolean }[]>`select ${c.tx}::xid8 >= pg_snapshot_xmax(pg_current_snapshot()) as future`;
  return row!.future;
}

/**
 * One page of the retained log in a scope.
 *
 * With `after` (polling): events past the cursor in `(tx, id)` order, and
 * only those of transactions older than every transaction still running
 * (below the reading snapshot's xmin). An event that is not visible yet
 * belongs to a running transaction, whose id is at least that xmin, so it
 * sorts after every event a page has shown: a cursor never skips one, however
 * late its transaction commits (in id order it could: id 52 committed while
 * 51's transaction runs on). The price: events wait for every older write
 * transaction on the database server to end before polling shows them.
 *
 * Otherwise (history): ids below `before` (or the newest), descending; a late
 * commit there lands below the page and comes with a later one.
 */
export async function eventPage(sql: Sql, scope: StreamScope, from: PageFrom, limit: number): Promise<EventPage> {
  if ('after' in from) {
    const c = from.after;
    const rows = await sql<(EventRow & { tx: string })[]>`
      ${selectEvents(sql, sql`, e.tx::text as tx`)}
      where ${scopeFilter(sql, scope)}
        ${c ? sql`and (e.tx, e.id) > (${c.tx}::xid8, ${c.id}::bigint)` : sql``}
        and e.tx < pg_snapshot_xmin(pg_current_snapshot())
      order by ${scopeOrder(sql, scope, 'asc')} e.tx, e.id
      limit ${limit + 1}`;
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return { events: page.map(toStreamEvent), more: rows.length > limit, cursor: last ? { tx: last.tx, id: Number(last.id) } : c };
  }
  const bound = from.before !== undefined ? sql`and e.id < ${from.before}` : sql``;
  const rows = await sql<EventRow[]>`
    ${selectEvents(sql)}
    where ${scopeFilter(sql, scope)} ${bound}
    order by ${scopeOrder(sql, scope, 'desc')} e.id desc
    limit ${limit + 1}`;
  return { events: rows.slice(0, limit).map(toStreamEvent), more: rows.length > limit };
}
