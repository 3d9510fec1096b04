import { Elysia, t } from 'elysia';
import type { AppDeps } from '../../http/context';
import { tenant, tenantSecurity } from '../../http/auth';
import { badRequest, errorResponses } from '../../http/errors';
import { Id, positiveInt, PositiveIntString } from '../../http/params';
import { ownedInstance } from '../../instances/input';
import { EVENT_ID_PATTERN, eventPage, parseTypes, typesDescription, type PageFrom, type StreamScope } from '../../events/log';

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 500;

const eventId = (description: string) => t.Optional(t.String({ pattern: EVENT_ID_PATTERN, error: 'must be an event id (a non-negative integer)', description }));

const EventsQuery = t.Object({
  types: t.Optional(t.String({ description: typesDescription() })),
  after: eventId('oldest first: events with ids above this one (a poller\'s cursor: `next.after` of the previous answer; 0 for the oldest retained)'),
  before: eventId('newest first: events with ids below this one (`next.before` of the previous page); without `after` or `before`, the newest events'),
  limit: t.Optional(PositiveIntString(`how many events (default ${DEFAULT_LIMIT}, at most ${MAX_LIMIT})`, MAX_LIMIT)),
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
        after: t.Optional(t.Integer({ description: 'with `after`: pass as `after` to poll for what comes next (always given; the same cursor when nothing new came)' })),
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
  '**polling**, `?after=<id>` (start with 0, or with the id of the last event handled): oldest first, ids above it; keep `next.after` and ask again, ' +
  'now or later, to get each event once. **History**, no `after`: newest first, `?before=<id>` (`next.before`, given while older events exist) for the page before. ' +
  '`after` and `before` together are a 400. As with a stream resume, an event whose transaction commits late can get an id below a cursor already ' +
  'handed out; it stays in the log (and was delivered by webhooks and streams), so a poller that must see every event re-reads a short way behind its cursor and skips ids it has. ' +
  'Events older than the retention period are gone.';

function pageFrom(query: typeof EventsQuery.static): PageFrom {
  if (query.after !== undefined && query.before !== undefined) {
    throw badRequest('validation_failed', "invalid query parameters 'after' and 'before': give one of them (after: oldest first from a cursor; before: newest first)");
  }
  if (query.after !== undefined) return { after: Number(query.after) };
  return query.before !== undefined ? { before: Number(query.before) } : {};
}

/** The REST page of the event log: one instance's, or all of the tenant's instances'. */
export function eventRoutes({ database }: AppDeps) {
  async function page(scope: StreamScope, query: typeof EventsQuery.static) {
    const from = pageFrom(query);
    const { events, more } = await eventPage(database.sql, scope, from, query.limit === undefined ? DEFAULT_LIMIT : positiveInt('query parameter', 'limit', query.limit, MAX_LIMIT));
    const last = events.at(-1)?.id;
    if ('after' in from) return { events, next: { after: last ?? from.after }, more };
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
