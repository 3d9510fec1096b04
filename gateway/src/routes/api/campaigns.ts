/**
 * Campaigns (bulk send): create on an instance, list an instance's, show
 * progress, cancel. The logic is in campaigns/; see docs/architecture.md,
 * "Campaigns".
 */
import { Elysia, t } from 'elysia';
import type { AppDeps } from '../../http/context';
import { tenant, tenantSecurity } from '../../http/auth';
import { ApiError, errorResponses } from '../../http/errors';
import { IdParams } from '../../http/params';
import { ownedInstance } from '../../instances/input';
import { SendBody } from '../../messages/send-input';
import { effectivePacing } from '../../pacing/settings';
import { planOf } from '../../plans/plans';
import { checkSendQuota, requireFeature } from '../../plans/quotas';
import { CAMPAIGN_MIN_INTERVAL_MS, createCampaign, MAX_CAMPAIGN_MESSAGES, planCampaign } from '../../campaigns/create';
import { campaignView, cancelCampaign, listCampaigns, ownedCampaign } from '../../campaigns/progress';
import { commandRunner } from './commands';

const Counts = t.Object({ queued: t.Integer(), sent: t.Integer(), delivered: t.Integer(), read: t.Integer(), failed: t.Integer() });
export const CampaignView = t.Object(
  {
    id: t.String(),
    name: t.Union([t.String(), t.Null()]),
    instanceId: t.Integer(),
    status: t.String({ description: 'running, completed (no message left queued) or cancelled' }),
    total: t.Integer(),
    counts: t.Object(Counts.properties, { description: "the messages by their current status (they add up to total): sent means not yet delivered, delivered not yet read" }),
    failures: t.Array(t.Object({ reason: t.String(), count: t.Integer() }), { description: 'the most frequent failure reasons (at most 10), e.g. cancelled, not_connected, undeliverable' }),
    firstAt: t.Date({ description: 'when the first message was due' }),
    lastAt: t.Date({ description: 'when the last message was due (as reserved at creation; a pause moves it later)' }),
    createdAt: t.Date(),
    cancelledAt: t.Optional(t.Date()),
    completedAt: t.Optional(t.Date()),
  },
  { title: 'Campaign' },
);
const CampaignParams = t.Object({ id: t.String({ maxLength: 64, description: 'campaign id, cmp_…' }) });

export function campaignRoutes({ database, runtime, allowPrivateWebhooks, pacingDefaults = 'safe' }: AppDeps) {
  const { db } = database;
  const { notConnected } = commandRunner(runtime);

  return new Elysia({ name: 'api-campaigns', detail: { tags: ['campaigns'], security: tenantSecurity } })
    .post(
      '/api/instances/:id/campaigns',
      async ({ request, params, body, set }) => {
        const user = tenant(request);
        const { instance } = await ownedInstance(db, user.id, params.id);
        const name = body.name ?? null;
        if (name !== null && (name.trim() === '' || name.length > 100)) throw new ApiError(400, 'validation_failed', "invalid field 'name': 1 to 100 characters");
        // Every message is checked before anything is written: one bad message refuses the campaign.
        const plans = await planCampaign(db, instance.id, body.messages, { allowPrivateMedia: allowPrivateWebhooks, provider: instance.provider });
        // The plan: the whole batch must fit this month's quotas (refused, not cut short).
        const tenantPlan = await planOf(db, user.id);
        const withMedia = body.messages.filter((m) => m.media);
        if (withMedia.length > 0) requireFeature(tenantPlan, 'media');
        const inlineBytes = withMedia.reduce((n, m) => n + (m.media!.data ? Buffer.byteLength(m.media!.data, 'base64') : 0), 0);
        await checkSendQuota(db, tenantPlan, user.id, withMedia.length > 0 ? { inlineBytes } : undefined, new Date(), plans.length);
        // The send route's rules: a number never paired (or logged out) refuses; one reconnecting queues.
        if (!instance.paired) throw notConnected();
        if (instance.state === 'failed') {
          throw new ApiError(503, 'session_failed', `instance ${instance.id} cannot send: its session failed (${instance.stateReason ?? 'no reason given'}); fix the cause, then restart it`);
        }
        const pacing = effectivePacing(instance.pacing, instance.provider, pacingDefaults);
        const created = await createCampaign(db, { instanceId: instance.id, userId: user.id, name, plans, pacing });
        runtime.pacer.wake(created.firstAt);
        set.status = 202;
        return { id: created.id, status: 'running' as const, total: created.total, firstAt: created.firstAt, lastAt: created.lastAt };
      },
      {
        params: IdParams,
        body: t.Object(
          {
            name: t.Optional(t.String({ description: 'up to 100 characters' })),
            messages: t.Array(SendBody, { minItems: 1, maxItems: MAX_CAMPAIGN_MESSAGES, description: `1 to ${MAX_CAMPAIGN_MESSAGES} send bodies, each as POST /send takes it` }),
          },
          { additionalProperties: false },
        ),
        detail: {
          summary: 'Bulk send: a campaign of up to 10,000 messages from this number, paced',
          description:
            'Every message is checked like POST /send first; one invalid message refuses the whole campaign and names it (`invalid field \'messages[17].to\'`). ' +
            "The whole batch must fit this month's messagesPerMonth (402 `quota_exceeded` otherwise; nothing is queued). " +
            `Each message gets a slot by the number's pacing, at least ${CAMPAIGN_MIN_INTERVAL_MS} ms apart even for numbers without pacing; 202 \`{id, status: "running", total, firstAt, lastAt}\`. ` +
            '503 `not_connected` when the number is not paired, `session_failed` when its session failed. Survives gateway restarts: every message is a queued row.',
        },
        response: {
          202: t.Object({ id: t.String(), status: t.Literal('running'), total: t.Integer(), firstAt: t.Date(), lastAt: t.Date() }),
          ...errorResponses(400, 401, 402, 403, 404, 409, 422, 503),
        },
      },
    )
    .get(
      '/api/instances/:id/campaigns',
      async ({ request, params }) => {
        const { instance } = await ownedInstance(db, tenant(request).id, params.id);
        return listCampaigns(db, instance.id);
      },
      {
        params: IdParams,
        detail: { summary: "An instance's campaigns, newest first (at most 100), with their progress" },
        response: { 200: t.Array(CampaignView), ...errorResponses(400, 401, 404) },
      },
    )
    .get(
      '/api/campaigns/:id',
      async ({ request, params }) => campaignView(db, await ownedCampaign(db, tenant(request).id, params.id)),
      {
        params: CampaignParams,
        detail: { summary: "A campaign's progress: its messages by status and the top failure reasons" },
        response: { 200: CampaignView, ...errorResponses(401, 404) },
      },
    )
    .post(
      '/api/campaigns/:id/cancel',
      async ({ request, params }) => {
        const userId = tenant(request).id;
        const campaign = await ownedCampaign(db, userId, params.id);
        // A campaign whose messages are all done is completed (marked by this read), not cancelled: 409.
        await campaignView(db, campaign);
        await cancelCampaign(db, campaign);
        return campaignView(db, await ownedCampaign(db, userId, params.id));
      },
      {
        params: CampaignParams,
        detail: {
          summary: 'Cancel a campaign: messages not yet handed to the worker fail with `cancelled`',
          description:
            'What was already sent stays sent; a message already handed to the worker (at most the one in flight) still completes. ' +
            'Answers the campaign as it stands (status cancelled). 409 `campaign_finished` when it is already completed or cancelled.',
        },
        response: { 200: CampaignView, ...errorResponses(401, 404, 409) },
      },
    );
}
