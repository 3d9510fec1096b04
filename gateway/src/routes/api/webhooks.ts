import { Elysia, t } from 'elysia';
import { and, desc, eq, sql } from 'drizzle-orm';
import type { AppDeps } from '../../http/context';
import { tenant, tenantSecurity } from '../../http/auth';
import { errorResponses, noContent, notFound } from '../../http/errors';
import { Id, PositiveInt } from '../../http/params';
import { events, webhookDeliveries, webhooks } from '../../db/schema';
import { ownedInstance } from '../../instances/input';
import { planOf } from '../../plans/plans';
import { requireFeature } from '../../plans/quotas';
import { checkWebhookInput, newSigningSecret, toWebhookView, WebhookBody, WebhookPatch, WebhookView } from '../../webhooks/subscriptions';

const Params = t.Object({ id: Id('instance id'), wid: Id('webhook id') });

const DeliveryView = t.Object({
  id: t.Integer(),
  eventId: t.Integer(),
  eventType: t.String({ description: 'the event\'s type (message.received, instance.status, …)' }),
  status: t.String({ description: 'pending, succeeded or failed' }),
  attempts: t.Integer(),
  nextAttemptAt: t.Nullable(t.Date()),
  lastStatusCode: t.Nullable(t.Integer()),
  lastLatencyMs: t.Nullable(t.Integer()),
  lastError: t.Nullable(t.String()),
  responseExcerpt: t.Nullable(t.String()),
  createdAt: t.Date(),
  completedAt: t.Nullable(t.Date()),
});

export function webhookRoutes({ database, secrets, allowPrivateWebhooks }: AppDeps) {
  const { db } = database;

  async function owned(request: Request, instanceId: number, webhookId: number) {
    await ownedInstance(db, tenant(request).id, instanceId);
    const [w] = await db.select().from(webhooks).where(and(eq(webhooks.id, webhookId), eq(webhooks.instanceId, instanceId)));
    if (!w) throw notFound(`webhook ${webhookId}`);
    return w;
  }

  return new Elysia({ name: 'api-webhooks', prefix: '/api/instances/:id/webhooks', detail: { tags: ['webhooks'], security: tenantSecurity } })
    .post(
      '',
      async ({ request, params, body, set }) => {
        const user = tenant(request);
        await ownedInstance(db, user.id, params.id);
        requireFeature(await planOf(db, user.id), 'webhooks');
        const input = await checkWebhookInput('url', body, allowPrivateWebhooks);
        const secret = newSigningSecret();
        const [w] = await db
          .insert(webhooks)
          .values({ instanceId: params.id, url: input.url!, events: input.events ?? null, enabled: body.enabled ?? true, secretEncrypted: secrets.seal(secret) })
          .returning();
        set.status = 201;
        return { ...toWebhookView(w!), secret };
      },
      {
        params: t.Object({ id: Id('instance id') }),
        body: WebhookBody,
        detail: {
          summary: 'Subscribe a URL to the instance\'s events; the signing secret is shown once',
          description: '403 `not_in_plan` when the plan lacks the `webhooks` feature.',
        },
        response: { 201: t.Composite([WebhookView, t.Object({ secret: t.String({ description: 'whsec_…: verify with any Standard Webhooks library' }) })]), ...errorResponses(400, 401, 403, 404) },
      },
    )
    .get(
      '',
      async ({ request, params }) => {
        await ownedInstance(db, tenant(request).id, params.id);
        return (await db.select().from(webhooks).where(eq(webhooks.instanceId, params.id)).orderBy(webhooks.id)).map(toWebhookView);
      },
      { params: t.Object({ id: Id('instance id') }), detail: { summary: 'List subscriptions' }, response: { 200: t.Array(WebhookView), ...errorResponses(400, 401, 404) } },
    )
    .get('/:wid', async ({ request, params }) => toWebhookView(await owned(request, params.id, params.wid)), {
      params: Params,
      detail: { summary: 'Get a subscription' },
      response: { 200: WebhookView, ...errorResponses(400, 401, 404) },
    })
    .patch(
      '/:wid',
      async ({ request, params, body }) => {
        await owned(request, params.id, params.wid);
        const input = await checkWebhookInput('url', body, allowPrivateWebhooks);
        const [w] = await db
          .update(webhooks)
          .set({
            ...input,
            ...(body.enabled !== undefined && { enabled: body.enabled, ...(body.enabled && { disabledReason: null }) }),
            updatedAt: sql`now()`,
          })
          .where(eq(webhooks.id, params.wid))
          .returning();
        return toWebhookView(w!);
      },
      { params: Params, body: WebhookPatch, detail: { summary: 'Change url, events or enabled' }, response: { 200: WebhookView, ...errorResponses(400, 401, 404) } },
    )
    .delete(
      '/:wid',
      async ({ request, params, set }) => {
        await owned(request, params.id, params.wid);
        await db.delete(webhooks).where(eq(webhooks.id, params.wid));
        set.status = 204;
      },
      { params: Params, detail: { summary: 'Delete a subscription and its delivery log' }, response: { ...noContent, ...errorResponses(400, 401, 404) } },
    )
    .post(
      '/:wid/rotate-secret',
      async ({ request, params }) => {
        await owned(request, params.id, params.wid);
        const secret = newSigningSecret();
        await db.update(webhooks).set({ secretEncrypted: secrets.seal(secret), updatedAt: sql`now()` }).where(eq(webhooks.id, params.wid));
        return { secret };
      },
      {
        params: Params,
        detail: { summary: 'Replace the signing secret; deliveries from now on are signed with the new one' },
        response: { 200: t.Object({ secret: t.String() }), ...errorResponses(400, 401, 404) },
      },
    )
    .get(
      '/:wid/deliveries',
      async ({ request, params, query }) => {
        await owned(request, params.id, params.wid);
        const rows = await db
          .select({ d: webhookDeliveries, eventType: events.type })
          .from(webhookDeliveries)
          .innerJoin(events, eq(events.id, webhookDeliveries.eventId)) // deliveries go with their event
          .where(eq(webhookDeliveries.webhookId, params.wid))
          .orderBy(desc(webhookDeliveries.id))
          .limit(query.limit ?? 100);
        return rows.map(({ d, eventType }) => ({
          id: d.id,
          eventId: d.eventId,
          eventType,
          status: d.status,
          attempts: d.attempts,
          nextAttemptAt: d.status === 'pending' ? d.nextAttemptAt : null,
          lastStatusCode: d.lastStatusCode,
          lastLatencyMs: d.lastLatencyMs,
          lastError: d.lastError,
          responseExcerpt: d.responseExcerpt,
          createdAt: d.createdAt,
          completedAt: d.completedAt,
        }));
      },
      {
        params: Params,
        query: t.Object({ limit: t.Optional(PositiveInt('how many (default 100, at most 1000)', 1000)) }),
        detail: { summary: 'The delivery log, newest first' },
        response: { 200: t.Array(DeliveryView), ...errorResponses(400, 401, 404) },
      },
    )
    .post(
      '/:wid/deliveries/:deliveryId/replay',
      async ({ request, params, set }) => {
        await owned(request, params.id, params.wid);
        const [d] = await db
          .update(webhookDeliveries)
          .set({ status: 'pending', attempts: 0, nextAttemptAt: sql`now()`, lockedUntil: null, claimedBy: null, completedAt: null })
          .where(and(eq(webhookDeliveries.id, params.deliveryId), eq(webhookDeliveries.webhookId, params.wid)))
          .returning({ id: webhookDeliveries.id });
        if (!d) throw notFound(`delivery ${params.deliveryId}`);
        await database.sql`select pg_notify('wgs_webhook_deliveries', '')`;
        set.status = 202;
        return { id: d.id, status: 'pending' as const };
      },
      {
        params: t.Object({ id: Id('instance id'), wid: Id('webhook id'), deliveryId: PositiveInt('delivery id', Number.MAX_SAFE_INTEGER) }),
        detail: { summary: 'Deliver again (same webhook-id), with a fresh retry schedule' },
        response: { 202: t.Object({ id: t.Integer(), status: t.Literal('pending') }), ...errorResponses(400, 401, 404) },
      },
    );
}
