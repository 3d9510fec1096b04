import { Elysia, t } from 'elysia';
import { and, desc, eq, lt, ne, sql } from 'drizzle-orm';
import type { AppDeps } from '../../http/context';
import { adminSecurity } from '../../http/auth';
import { conflict, errorResponses, notFound } from '../../http/errors';
import { MAX_ID, PositiveInt } from '../../http/params';
import { billingEvents, DELIVERY_STATUSES } from '../../db/schema';
import { BILLING_EVENT_TYPES } from '../../billing/events';
import { BILLING_CHANNEL } from '../../billing/dispatcher';

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 500;
const MAX_EVENT_ID = Number.MAX_SAFE_INTEGER; // billing_events.id is a bigint, read as a number

const oneOf = (values: readonly string[], description: string) =>
  t.Union(
    values.map((v) => t.Literal(v)),
    { error: `must be one of ${values.join(', ')}`, description },
  );

const ListQuery = t.Object({
  status: t.Optional(oneOf(DELIVERY_STATUSES, 'only events in this delivery state')),
  type: t.Optional(oneOf(BILLING_EVENT_TYPES, 'only events of this type')),
  userId: t.Optional(PositiveInt('only this tenant', MAX_ID)),
  before: t.Optional(PositiveInt('events with ids below this one (`next.before` of the previous page)', MAX_EVENT_ID)),
  limit: t.Optional(PositiveInt(`how many events (default ${DEFAULT_LIMIT}, at most ${MAX_LIMIT})`, MAX_LIMIT)),
});

const BillingEventView = t.Object(
  {
    id: t.Integer({ description: 'the receiver sees it as `webhook-id: bill_<id>`, the same on every delivery of the event' }),
    type: t.String({ description: BILLING_EVENT_TYPES.join(', ') }),
    userId: t.Integer({ description: 'the tenant' }),
    tenantEmail: t.Nullable(t.String({ description: "the tenant's email when the event was recorded" })),
    status: t.String({ description: 'pending, succeeded or failed' }),
    attempts: t.Integer({ description: 'delivery attempts since it was recorded or last replayed' }),
    nextAttemptAt: t.Nullable(t.Date({ description: 'when the next attempt is due; only while pending' })),
    lastStatusCode: t.Nullable(t.Integer({ description: "the receiver's status code at the last attempt; null: no answer (see lastError)" })),
    lastError: t.Nullable(t.String({ description: 'why the last attempt got no answer (timeout, connection refused, refused destination)' })),
    createdAt: t.Date(),
    completedAt: t.Nullable(t.Date({ description: 'when it succeeded or ran out of retries' })),
    data: t.Record(t.String(), t.Unknown(), { description: 'the webhook body\'s `data`' }),
  },
  { title: 'BillingEvent' },
);

const BillingEventPage = t.Object({
  events: t.Array(BillingEventView),
  next: t.Optional(
    t.Object(
      { before: t.Integer({ description: 'pass as `before` for the next older page' }) },
      { description: 'given while older events match; the other parameters stay the same' },
    ),
  ),
});

/**
 * The operator's billing outbox (billing_events): what was sent, what is
 * still trying, what ran out of retries, and sending an event again.
 */
export function adminBillingRoutes({ database }: AppDeps) {
  const { db } = database;
  return new Elysia({ name: 'admin-billing', prefix: '/admin/billing-events', detail: { tags: ['admin'], security: adminSecurity } })
    .get(
      '',
      async ({ query }) => {
        const limit = query.limit ?? DEFAULT_LIMIT;
        const where = [
          query.status !== undefined ? eq(billingEvents.status, query.status) : undefined,
          query.type !== undefined ? eq(billingEvents.type, query.type) : undefined,
          query.userId !== undefined ? eq(billingEvents.userId, query.userId) : undefined,
          query.before !== undefined ? lt(billingEvents.id, query.before) : undefined,
        ];
        const rows = await db
          .select({
            id: billingEvents.id,
            type: billingEvents.type,
            userId: billingEvents.userId,
            tenantEmail: billingEvents.tenantEmail,
            status: billingEvents.status,
            attempts: billingEvents.attempts,
            nextAttemptAt: billingEvents.nextAttemptAt,
            lastStatusCode: billingEvents.lastStatusCode,
            lastError: billingEvents.lastError,
            createdAt: billingEvents.createdAt,
            completedAt: billingEvents.completedAt,
            data: billingEvents.data,
          })
          .from(billingEvents)
          .where(and(...where))
          .orderBy(desc(billingEvents.id))
          .limit(limit + 1);
        const events = rows.slice(0, limit).map((r) => ({ ...r, nextAttemptAt: r.status === 'pending' ? r.nextAttemptAt : null }));
        return { events, ...(rows.length > limit && { next: { before: events.at(-1)!.id } }) };
      },
      {
        query: ListQuery,
        detail: {
          summary: 'Billing events and their delivery state, newest first',
          description:
            'The billing outbox (BILLING_WEBHOOK_URL): `?status=failed` lists the events that ran out of retries. ' +
            'A page at a time: `next.before` (given while older events match) as `before` for the page before. ' +
            'Empty while billing webhooks were never on: nothing is recorded then.',
        },
        response: { 200: BillingEventPage, ...errorResponses(400, 401) },
      },
    )
    .post(
      '/:id/replay',
      async ({ params, set }) => {
        const id = params.id;
        // What the customer replay resets on webhook_deliveries: back in the dispatcher's due set (dueOutboxRows), unclaimed.
        const [row] = await db
          .update(billingEvents)
          .set({ status: 'pending', attempts: 0, nextAttemptAt: sql`now()`, lockedUntil: null, claimedBy: null, completedAt: null })
          .where(and(eq(billingEvents.id, id), ne(billingEvents.status, 'pending')))
          .returning({ id: billingEvents.id });
        if (!row) {
          const [pending] = await db.select({ id: billingEvents.id }).from(billingEvents).where(eq(billingEvents.id, id));
          if (!pending) throw notFound(`billing event ${id}`);
          throw conflict('already_pending', `billing event ${id} is pending: it is being sent, with retries`);
        }
        // An update does not fire the insert trigger that wakes the dispatchers: notify its channel here.
        await database.sql`select pg_notify(${BILLING_CHANNEL}, '')`;
        set.status = 202;
        return { id: row.id, status: 'pending' as const };
      },
      {
        params: t.Object({ id: PositiveInt('billing event id', MAX_EVENT_ID) }),
        detail: {
          summary: 'Send a billing event again (same webhook-id), with a fresh retry schedule',
          description:
            'For a `failed` event (out of retries) or a `succeeded` one the receiver lost. It keeps its id, so the receiver sees the same ' +
            '`webhook-id` (`bill_<id>`) and can dedupe. 409 `already_pending` while it is pending (still being sent).',
        },
        response: { 202: t.Object({ id: t.Integer(), status: t.Literal('pending') }), ...errorResponses(400, 401, 404, 409) },
      },
    );
}
