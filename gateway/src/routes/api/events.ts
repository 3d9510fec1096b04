import { Elysia, t } from 'elysia';
import type { AppDeps } from '../../http/context';
import { tenant, tenantSecurity } from '../../http/auth';
import { badRequest, errorResponses } from '../../http/errors';
import { Id, PositiveInt } from '../../http/params';
import { ownedInstance } from '../../instances/input';
import type { Sql } from 'postgres';
import { AFTER_PATTERN, cursorOf, EVENT_ID_PATTERN, eventPage, formatCursor, isFutureCursor, parseTypes, typesDescription, type PageFrom, type StreamScope } from '../../events/log';

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 500;

const EventsQuery = t.Object({
  types: t.Optional(t.String({ description: typesDescription() })),
  after: t.Optional(
    t.String({
      pattern: AFTER_PATTERN,
      error: 'must be 0, an event id, or the next.after cursor of a previous page',
      description: "oldest first, polling: `next.after` of the previous answer (a cursor), 0 for the oldest retained event, or the id of an event already handled (one of this log's; the first pages after it may repeat a few events at or below it, skip ids you have)",
    }),
  ),
  before: t.Optional(
    t.String({
      pattern: EVENT_ID_PATTERN,
      error: 'must be an event id (a non-negative integer)',
      description: 'newest first: events with ids below this one (`next.before` of the previous page); without `after` or `before`, the newest events',
    }),
  ),
  limit: t.Optional(PositiveInt(`how many events (default ${DEFAULT_LIMIT}, at most ${MAX_LIMIT})`, MAX_LIMIT)),
});

const EventView = t.Object(
  {
    id: t.Integer({ description: 'event id: increasing in the order events were recorded' }),
    type: t.String(),
    instanceId: t.Integer(),
    createdAt: t.String({ format: 'date-time' }),
    data: t.Record(t.String(), t.Unknown(), { description: 'the payload, as webhooks and streams carry it' }),
  },
  { title: 'Event' },
);

const EventPageView = t.Object({
  events: t.Array(EventView),
  next: t.Optional(
    t.Object(
      {
        after: t.Optional(t.String({ description: 'with `after`: pass as `after` to poll for what comes next (always given; the same cursor when nothing new came). Opaque: keep it as it is' })),
        before: t.Optional(t.Integer({ description: 'newest first: pass as `before` for the next older page (absent at the start of the retained log)' })),
      },
      { description: 'the query values for the next page; the other parameters stay the same' },
    ),
  ),
  more: t.Boolean({ description: 'more events match past this page: ask for `next` at once' }),
});

const PAGE_DESCRIPTION =
  'The retained event log, the same events (and the same `{id, type, instanceId, createdAt, data}`) that webhooks and the event streams carry, ' +
  'for clients that cannot receive webhooks or hold a stream open, and for history. Two ways to page: ' +
  '**polling**, `?after=0`, then `?after=<next.after>` again and again, now or later: oldest first, each event once, none skipped. ' +
  'The cursor is exact: polling shows an event once every older write transaction has ended, so an event whose transaction commits late still comes after the cursor ' +
  '(events come in the order their transactions began writing, which can differ slightly from id order, and a long write transaction anywhere on the database server holds newer events back until it ends). ' +
  'Starting from the id of an event already handled (one a webhook or stream carried) never skips a later event, but the first pages may repeat a few at or below that id: skip ids you have. ' +
  'A cursor from before the database was restored from a dump is a 400 `cursor_invalid`. ' +
  '**History**, no `after`: newest first, `?before=<id>` (`next.before`, given while older events exist) for the page before. ' +
  '`after` and `before` together are a 400. Events older than the retention period are gone.';

async function pageFrom(sql: Sql, scope: StreamScope, query: typeof EventsQuery.static): Promise<PageFrom> {
  if (query.after !== undefined && query.before !== undefined) {
    throw badRequest('validation_failed', "invalid query parameters 'after' and 'before': give one of them (after: oldest first from a cursor; before: newest first)");
  }
  if (query.after === undefined) return query.before !== undefined ? { before: Number(query.before) } : {};
  const [tx, id] = query.after.includes('.') ? query.after.split('.') : [undefined, query.after];
  // Digits as Postgres should read them (it takes a leading 0 as octal).
  if (tx !== undefined) return { after: { tx: BigInt(tx).toString(), id: Number(id) } };
  if (Number(id) === 0) return { after: null };
  const cursor = await cursorOf(sql, scope, Number(id));
  if (!cursor) {
    throw badRequest('event_not_found', `invalid query parameter 'after': event ${Number(id)} is not in this log (not one of its events, or older than the retention period); poll from 0 or from a next.after cursor`);
  }
  return { after: cursor };
}

/** The REST page of the event log: one instance's, or all of the tenant's instances'. */
export function eventRoutes({ database }: AppDeps) {
  async function page(scope: StreamScope, query: typeof EventsQuery.static) {
    const limit = query.limit ?? DEFAULT_LIMIT;
    const from = await pageFrom(database.sql, scope, query);
    const { events, more, cursor } = await eventPage(database.sql, scope, from, limit);
    if ('after' in from) {
      // A cursor ahead of the database (from before a restore) can only give an empty page: looked for only then.
      if (events.length === 0 && from.after && (await isFutureCursor(database.sql, from.after))) {
        throw badRequest('cursor_invalid', "invalid query parameter 'after': this cursor is ahead of the database (it was handed out before the database was restored from a dump); poll again from the id of the last event handled, or from 0");
      }
      return { events, next: { after: cursor ? formatCursor(cursor) : '0' }, more };
    }
    const last = events.at(-1)?.id;
    return { events, ...(more && last !== undefined && { next: { before: last } }), more };
  }

  return new Elysia({ name: 'api-events', prefix: '/api', detail: { tags: ['events'], security: tenantSecurity } })
    .get('/events', ({ request, query }) => page({ userId: tenant(request).id, types: parseTypes(query.types) }, query), {
      query: EventsQuery,
      detail: { summary: "The event log of all the tenant's instances, a page at a time", description: PAGE_DESCRIPTION },
      response: { 200: EventPageView, ...errorResponses(400, 401, 429) },
    })
    .get(
      '/instances/:id/events',
      async ({ request, params, query }) => {
        const userId = tenant(request).id;
        await ownedInstance(database.db, userId, params.id);
        return page({ userId, instanceId: params.id, types: parseTypes(query.types) }, query);
      },
      {
        params: t.Object({ id: Id('instance id') }),
        query: EventsQuery,
        detail: { summary: 'The event log of one instance, a page at a time', description: PAGE_DESCRIPTION },
        response: { 200: EventPageView, ...errorResponses(400, 401, 404, 429) },
      },
    );
}
