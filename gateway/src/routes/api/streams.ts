import { Elysia, t } from 'elysia';
import type { Sql } from 'postgres';
import type { AppDeps } from '../../http/context';
import { apiKeyId, tenant, tenantSecurity } from '../../http/auth';
import { badRequest, errorResponses } from '../../http/errors';
import { Id } from '../../http/params';
import { ownedInstance } from '../../instances/input';
import { EventStreamHub } from '../../events/stream-hub';
import {
  EVENT_ID_PATTERN,
  INSTANCE_DELETED,
  parseTypes,
  scopeFilter,
  scopeOrder,
  selectEvents,
  STREAM_EVENT_TYPES,
  toStreamEvent,
  typesDescription,
  type DeletedNotice,
  type EventRow,
  type StreamEvent,
  type StreamScope,
} from '../../events/log';
import { issueStreamToken, STREAM_TOKEN_TTL_S, streamTokenUser } from '../../auth/stream-tokens';

/** A comment line this often keeps proxies and the client from timing the stream out. */
const PING_MS = 15_000;
/** A stream's API key is looked up again this often: deleting the key ends its streams. */
const KEY_CHECK_MS = 60_000;
const REPLAY_PAGE = 500;
/** Events waiting for a client that does not read: past this the stream ends, and the client resumes from the log. */
const MAX_PENDING = 5_000;
/** EventSource waits this long before reconnecting. */
const RETRY_MS = 2_000;

const encoder = new TextEncoder();

/** An event of the log with its id (what Last-Event-ID resumes from); `instance.deleted`, not in the log, without one. */
function frame(e: StreamEvent | DeletedNotice): Uint8Array {
  return encoder.encode(`${'id' in e ? `id: ${e.id}\n` : ''}event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
}

const StreamQuery = t.Object({
  token: t.Optional(t.String({ description: 'a stream token from POST /api/stream-tokens, for clients that cannot set the Authorization header (EventSource)' })),
  types: t.Optional(t.String({ description: typesDescription(STREAM_EVENT_TYPES) })),
  lastEventId: t.Optional(t.String({ description: 'resume after this event id (as the Last-Event-ID header does); the header wins when both are given' })),
});

const STREAM_DESCRIPTION =
  'Server-Sent Events: one `id: <event id>` / `event: <type>` / `data: {id, type, instanceId, createdAt, data}` block per event of the log, ' +
  'the same events webhooks carry. Without a resume id the stream starts now (the response starts once that point is fixed, so state read ' +
  'after the stream opened misses nothing). With `Last-Event-ID` (EventSource sends it on its own reconnects) or `?lastEventId=` it first ' +
  'replays the retained log after that id. Delivery is at least once: a client may see an event again after a resume and should keep the ' +
  'last id it handled. An event committed late by a slow transaction may arrive after events with higher ids. A `: ping` comment comes ' +
  'every 15 s. A client that does not read is disconnected after 5,000 undelivered events and resumes from the log. ' +
  'When an instance in the stream\'s scope is deleted, its log goes with it and the stream says `event: instance.deleted` with ' +
  '`data: {type, instanceId, createdAt, data: {}}` and no id (it is not in the log: not replayed on a resume); a stream of that one instance then ends.';

function parseResume(request: Request, query: string | undefined): number | undefined {
  const raw = request.headers.get('last-event-id') ?? query;
  if (raw === undefined || raw === null || raw.trim() === '') return undefined;
  if (!new RegExp(EVENT_ID_PATTERN).test(raw.trim())) throw badRequest('invalid_last_event_id', `Last-Event-ID must be an event id (a non-negative integer), got ${JSON.stringify(raw.slice(0, 40))}`);
  return Number(raw.trim());
}

async function replayPage(sql: Sql, scope: StreamScope, after: number, upTo: number, skip: number[]): Promise<StreamEvent[]> {
  const rows = await sql<EventRow[]>`
    ${selectEvents(sql)}
    where ${scopeFilter(sql, scope)}
      and e.id > ${after} and e.id <= ${upTo}
      ${skip.length > 0 ? sql`and not (e.id = any(${skip}::bigint[]))` : sql``}
    order by ${scopeOrder(sql, scope, 'asc')} e.id
    limit ${REPLAY_PAGE}`;
  return rows.map(toStreamEvent);
}

/**
 * Live event streams (SSE) of a tenant's instances, and the stream tokens
 * browsers open them with. The live feed comes from this replica's
 * EventStreamHub; a resume replays the log up to the point where the hub
 * took over, so an event is neither skipped nor sent twice within a stream.
 */
export function streamRoutes({ database, logger, secrets, metrics }: AppDeps) {
  const hub = new EventStreamHub(database.sql, logger.child({ component: 'streams' }));

  async function open(request: Request, server: { timeout(req: Request, seconds: number): void } | null, scope: StreamScope, resumeAfter: number | undefined, keyId: number): Promise<Response> {
    let pending: (StreamEvent | DeletedNotice)[] = [];
    let overflow = false;
    /** The stream's one instance was deleted: say so, then end. */
    let ending = false;
    let closed = false;
    let ping = false;
    let wake: (() => void) | undefined;
    const poke = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const sub = await hub.subscribe(
      scope,
      (events) => {
        if (closed) return;
        pending.push(...events);
        if (pending.length > MAX_PENDING) overflow = true;
        poke();
      },
      gone,
    );
    function gone(notice: DeletedNotice) {
      if (closed) return;
      if (!scope.types || scope.types.has(INSTANCE_DELETED)) pending.push(notice);
      if (scope.instanceId !== undefined) ending = true;
      poke();
    }
    // Deleted between the ownership check and the subscription: no notification will come.
    if (scope.instanceId !== undefined) {
      const [alive] = await database.sql`select 1 from instances where id = ${scope.instanceId}`;
      if (!alive) gone({ type: INSTANCE_DELETED, instanceId: scope.instanceId, createdAt: new Date().toISOString(), data: {} });
    }
    metrics.eventStreams.inc();
    let replayAfter = resumeAfter;
    const { cursor, gaps } = sub.position;

    const pingTimer = setInterval(() => {
      ping = true;
      poke();
    }, PING_MS);
    const keyTimer = setInterval(() => {
      void streamTokenUser(database.db, keyId, scope.userId).then(
        (user) => {
          if (!user) finish();
        },
        () => {},
      );
    }, KEY_CHECK_MS);
    function finish() {
      if (closed) return;
      closed = true;
      metrics.eventStreams.dec();
      clearInterval(pingTimer);
      clearInterval(keyTimer);
      sub.unsubscribe();
      pending = [];
      poke();
    }
    request.signal?.addEventListener('abort', finish, { once: true });
    // Bun ends idle connections after 10 s by default; the pings keep this one busy instead.
    server?.timeout(request, 0);

    let started = false;
    /** The client went away (Bun cancelled the stream, or the request was aborted): the controller takes nothing more. */
    let cancelled = false;
    const clientLeft = () => cancelled || request.signal?.aborted === true;
    /** Closes the stream; a no-op when the client's disconnect already did (closing twice throws). */
    const end = (controller: ReadableStreamDefaultController<Uint8Array>) => {
      if (cancelled) return;
      try {
        controller.close();
      } catch {
        // already closed: the client went away
      }
    };
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          if (!started) {
            started = true;
            controller.enqueue(encoder.encode(`retry: ${RETRY_MS}\n: stream open\n\n`));
            return;
          }
          if (replayAfter !== undefined && !closed) {
            const page = await replayPage(database.sql, scope, replayAfter, cursor, gaps);
            for (const e of page) controller.enqueue(frame(e));
            replayAfter = page.length === REPLAY_PAGE ? page[page.length - 1]!.id : undefined;
            return;
          }
          while (!closed && pending.length === 0 && !ping && !overflow && !ending) await new Promise<void>((resolve) => (wake = resolve));
          if (overflow) {
            controller.enqueue(encoder.encode(': too far behind; reconnect with Last-Event-ID\n\n'));
            finish();
          }
          if (closed) {
            end(controller);
            return;
          }
          if (ping) {
            ping = false;
            controller.enqueue(encoder.encode(': ping\n\n'));
          }
          const batch = pending;
          pending = [];
          for (const e of batch) controller.enqueue(frame(e));
          if (ending) {
            finish();
            end(controller);
          }
        } catch (err) {
          finish();
          // After a disconnect an enqueue fails because the stream is gone: nothing went wrong.
          if (clientLeft()) return;
          logger.warn({ err }, 'event stream failed');
          try {
            controller.error(err);
          } catch {
            // already closed
          }
        }
      },
      cancel() {
        cancelled = true;
        finish();
      },
    });
    return new Response(body, {
      headers: {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        // Proxies that buffer responses (nginx) would hold the stream back.
        'x-accel-buffering': 'no',
      },
    });
  }

  const streamDetail = (summary: string) => ({
    summary,
    description: STREAM_DESCRIPTION,
    responses: {
      200: { description: 'an event stream (text/event-stream)', content: { 'text/event-stream': { schema: { type: 'string' as const } } } },
    },
  });

  return new Elysia({ name: 'api-streams', prefix: '/api', detail: { tags: ['events'], security: tenantSecurity } })
    .onStop(() => hub.stop())
    .post(
      '/stream-tokens',
      ({ request, set }) => {
        set.status = 201;
        return issueStreamToken(secrets, apiKeyId(request), tenant(request).id);
      },
      {
        detail: {
          summary: 'A short-lived token that opens the event streams',
          description: `For browsers, whose EventSource cannot send an Authorization header: pass it as \`?token=\` to the two stream routes. Valid ${STREAM_TOKEN_TTL_S / 60} minutes for opening streams (an open stream lasts), as long as the API key that asked for it exists; it opens nothing else.`,
        },
        response: {
          201: t.Object({ token: t.String({ description: '`wgst_...`' }), expiresAt: t.Date() }),
          ...errorResponses(401, 429),
        },
      },
    )
    .get(
      '/events/stream',
      ({ request, query, server }) => {
        const scope = { userId: tenant(request).id, types: parseTypes(query.types, STREAM_EVENT_TYPES) };
        return open(request, server, scope, parseResume(request, query.lastEventId), apiKeyId(request));
      },
      {
        query: StreamQuery,
        detail: streamDetail("Live events of all the tenant's instances (Server-Sent Events)"),
        response: errorResponses(400, 401, 429),
      },
    )
    .get(
      '/instances/:id/events/stream',
      async ({ request, params, query, server }) => {
        const userId = tenant(request).id;
        await ownedInstance(database.db, userId, params.id);
        const scope = { userId, instanceId: params.id, types: parseTypes(query.types, STREAM_EVENT_TYPES) };
        return open(request, server, scope, parseResume(request, query.lastEventId), apiKeyId(request));
      },
      {
        params: t.Object({ id: Id('instance id') }),
        query: StreamQuery,
        detail: streamDetail("Live events of one instance (Server-Sent Events)"),
        response: errorResponses(400, 401, 404, 429),
      },
    );
}
