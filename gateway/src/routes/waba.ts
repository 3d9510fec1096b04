/**
 * What only Cloud API (`waba`) instances have: the callback Meta calls
 * (unauthenticated: the verify token and the app secret's signature are the
 * credentials), the WABA's message templates, and updating the account's
 * ids and secrets.
 */
import { Elysia, t } from 'elysia';
import { eq, sql } from 'drizzle-orm';
import type { AppDeps } from '../http/context';
import { tenant, tenantSecurity } from '../http/auth';
import { ApiError, errorResponses, notFound } from '../http/errors';
import { Id, IdParams } from '../http/params';
import { instances, wabaAccounts } from '../db/schema';
import { secretsEqual } from '../auth/api-keys';
import { ownedInstance, InstanceView, toInstanceView } from '../instances/input';
import { unsupportedForProvider } from '../messages/send-input';
import { checkWabaInput, sealChanges, toWabaView, WabaBody } from '../waba/account';
import { accountOf, MAX_WEBHOOK_BYTES, routeWebhook, signatureValid } from '../waba/inbound';
import { commandRunner } from './api/commands';
import { basePacing, mergePacingPatch } from '../pacing/settings';

/** How long a copy of the templates is served before it is fetched again. */
export const TEMPLATES_TTL_MS = 10 * 60_000;

const Template = t.Object({
  name: t.String(),
  language: t.String(),
  status: t.String({ description: 'APPROVED, PENDING, REJECTED, PAUSED, DISABLED…' }),
  category: t.Optional(t.String()),
  components: t.Array(t.Unknown(), { description: "the template's header, body, footer and buttons as Meta describes them ({{1}}… are parameters)" }),
});

type TemplateView = typeof Template.static;

export function wabaRoutes({ database, runtime, secrets, logger, migrator, pacingDefaults = 'safe' }: AppDeps) {
  const { db } = database;
  const log = logger.child({ component: 'waba' });
  const { runNow } = commandRunner(runtime);

  async function wabaInstance(userId: number, id: number) {
    const owned = await ownedInstance(db, userId, id);
    if (owned.instance.provider !== 'waba') throw unsupportedForProvider(owned.instance.provider, 'do this: it is for Cloud API (waba) instances');
    return owned;
  }

  const callbacks = new Elysia({ name: 'waba-callbacks', prefix: '/webhooks/waba', detail: { tags: ['waba'] } })
    .get(
      '/:id',
      async ({ params, request }) => {
        const query = new URL(request.url).searchParams;
        const account = await accountOf(db, params.id);
        if (!account) throw notFound(`Cloud API instance ${params.id}`);
        const token = query.get('hub.verify_token') ?? '';
        const challenge = query.get('hub.challenge') ?? '';
        if (query.get('hub.mode') !== 'subscribe' || !secretsEqual(token, secrets.open(account.verifyTokenSealed))) {
          log.warn({ instanceId: params.id, tenantId: account.userId }, 'Cloud API webhook verification refused: wrong mode or verify token');
          throw new ApiError(403, 'verification_failed', 'hub.mode must be subscribe and hub.verify_token must be the verify token of this instance');
        }
        if (challenge.length === 0 || challenge.length > 256) throw new ApiError(400, 'validation_failed', "invalid query parameter 'hub.challenge': 1 to 256 characters");
        return new Response(challenge, { headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' } });
      },
      {
        params: t.Object({ id: Id('instance id') }),
        detail: {
          summary: "Meta's webhook verification: answers hub.challenge when hub.verify_token is this instance's verify token",
          description: 'Query `hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`; 403 for a wrong token, 404 for an instance that is not a Cloud API one.',
        },
        response: { ...errorResponses(400, 403, 404) },
      },
    )
    .post(
      '/:id',
      async ({ params, request }) => {
        const account = await accountOf(db, params.id);
        if (!account) throw notFound(`Cloud API instance ${params.id}`);
        const declared = Number(request.headers.get('content-length') ?? 0);
        if (declared > MAX_WEBHOOK_BYTES) throw new ApiError(413, 'payload_too_large', `at most ${MAX_WEBHOOK_BYTES} bytes`);
        const raw = new Uint8Array(await request.arrayBuffer());
        if (raw.byteLength > MAX_WEBHOOK_BYTES) throw new ApiError(413, 'payload_too_large', `at most ${MAX_WEBHOOK_BYTES} bytes`);
        // Nothing of the body is looked at before its signature holds.
        const header = request.headers.get('x-hub-signature-256');
        if (!header) throw new ApiError(401, 'signature_missing', 'missing X-Hub-Signature-256 header');
        const appSecret = secrets.open(account.appSecretSealed);
        if (!signatureValid(appSecret, raw, header)) {
          log.warn({ instanceId: params.id, tenantId: account.userId }, 'Cloud API webhook refused: X-Hub-Signature-256 does not match the body');
          throw new ApiError(401, 'signature_invalid', 'X-Hub-Signature-256 does not match the body under the app secret');
        }
        let payload: unknown;
        try {
          payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
        } catch {
          throw new ApiError(400, 'invalid_body', 'request body is not valid JSON');
        }
        if ((payload as { object?: unknown })?.object !== 'whatsapp_business_account') {
          throw new ApiError(400, 'invalid_body', "field 'object' must be whatsapp_business_account");
        }
        const outcome = await routeWebhook(db, runtime.queue, secrets, log, account, appSecret, payload);
        for (const command of outcome.commands) await runtime.dispatch(command);
        return { received: true as const, routed: outcome.routed, unrouted: outcome.unrouted, ignored: outcome.ignored };
      },
      {
        params: t.Object({ id: Id('instance id') }),
        parse: 'none',
        detail: {
          summary: 'Where Meta delivers Cloud API webhooks (messages and statuses), signed with the app secret',
          description:
            'Verified with `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the app secret) before anything is parsed: 401 and nothing recorded when it is missing or wrong. ' +
            "Each change is routed by `metadata.phone_number_id` to this tenant's instance with that number and the same app secret, queued durably, and answered 200 at once; " +
            'the worker turns it into message.received / message.status events (stored once however often Meta redelivers).',
        },
        response: {
          200: t.Object({ received: t.Literal(true), routed: t.Integer(), unrouted: t.Integer(), ignored: t.Integer() }),
          ...errorResponses(400, 401, 404, 413),
        },
      },
    );

  const api = new Elysia({ name: 'api-waba', prefix: '/api/instances', detail: { tags: ['instances'], security: tenantSecurity } })
    .get(
      '/:id/templates',
      async ({ request, params, query }) => {
        await wabaInstance(tenant(request).id, params.id);
        const [account] = await db.select().from(wabaAccounts).where(eq(wabaAccounts.instanceId, params.id));
        const cached =
          account?.templates && account.templatesSyncedAt
            ? { templates: account.templates as TemplateView[], syncedAt: account.templatesSyncedAt }
            : undefined;
        const fresh = cached && Date.now() - cached.syncedAt.getTime() < TEMPLATES_TTL_MS;
        if (cached && fresh && query.refresh !== 'true') return { ...cached, stale: false };
        try {
          const data = await runNow(params.id, 'waba.templates', {});
          const templates = (Array.isArray(data.templates) ? data.templates : []) as TemplateView[];
          const [row] = await db
            .update(wabaAccounts)
            .set({ templates, templatesSyncedAt: sql`now()` })
            .where(eq(wabaAccounts.instanceId, params.id))
            .returning({ syncedAt: wabaAccounts.templatesSyncedAt });
          return { templates, syncedAt: row!.syncedAt!, stale: false };
        } catch (err) {
          // Meta or the worker away: the last copy is better than nothing, and says so.
          if (cached) return { ...cached, stale: true };
          throw err;
        }
      },
      {
        params: IdParams,
        query: t.Object({ refresh: t.Optional(t.Union([t.Literal('true'), t.Literal('false')], { description: 'true: fetch from Meta now' })) }),
        detail: {
          summary: "The WhatsApp Business Account's message templates (waba): names, languages, status, parameters",
          description: `Fetched from the Graph API through the worker and kept for ${TEMPLATES_TTL_MS / 60_000} minutes; \`stale: true\` when the last copy is served because Meta or the worker cannot be reached. 422 for other providers.`,
        },
        response: {
          200: t.Object({ templates: t.Array(Template), syncedAt: t.Date(), stale: t.Boolean() }),
          ...errorResponses(400, 401, 404, 422, 502, 503, 504),
        },
      },
    )
    .patch(
      '/:id',
      async ({ request, params, body }) => {
        const user = tenant(request);
        const { instance } = await ownedInstance(db, user.id, params.id);
        if (body.waba === undefined && body.name === undefined && body.pacing === undefined) {
          throw new ApiError(400, 'validation_failed', 'give at least one of name, waba, pacing');
        }
        if (body.waba !== undefined && instance.provider !== 'waba') {
          throw new ApiError(422, 'invalid_field', `invalid field 'waba': only for provider waba (this instance's provider is ${instance.provider})`);
        }
        const changes = body.waba === undefined ? undefined : checkWabaInput(body.waba, { partial: true });
        // Pacing (pacing/settings.ts): the change over the instance's own settings; null resets to the defaults.
        const pacing = body.pacing === undefined ? undefined : mergePacingPatch(instance.pacing, body.pacing, basePacing(instance.provider, pacingDefaults));
        await db.transaction(async (tx) => {
          if (body.name !== undefined) await tx.update(instances).set({ name: body.name, updatedAt: sql`now()` }).where(eq(instances.id, params.id));
          if (pacing !== undefined) await tx.update(instances).set({ pacing, updatedAt: sql`now()` }).where(eq(instances.id, params.id));
          if (changes) {
            await tx
              .update(wabaAccounts)
              .set({ ...sealChanges(secrets, changes), updatedAt: sql`now()`, ...(changes.wabaId !== undefined && { templates: null, templatesSyncedAt: null }) })
              .where(eq(wabaAccounts.instanceId, params.id));
          }
        });
        // The worker reads its account from its environment: a new one takes a restart (after any move under way).
        if (changes && instance.desiredState === 'running') {
          await migrator.exclusive(params.id, () => runtime.restart(params.id).catch(() => {}));
          await runtime.waitUntil(params.id, (i) => i.status === 'running' || i.status === 'error', 30_000);
        }
        const after = await ownedInstance(db, user.id, params.id);
        const [account] = await db.select().from(wabaAccounts).where(eq(wabaAccounts.instanceId, params.id));
        return toInstanceView(after.instance, after.nodeName, account && toWabaView(account), pacingDefaults);
      },
      {
        params: IdParams,
        body: t.Object(
          {
            name: t.Optional(t.String({ minLength: 1, maxLength: 100 })),
            waba: t.Optional(WabaBody),
            pacing: t.Optional(
              t.Unknown({
                description:
                  'paced sending: any of {minIntervalMs, jitterMs, maxPerMinute, maxPerHour, maxPerDay, quietHours {start, end, timezone}, warmup {days, startPerDay}, typing}, laid over the current settings; null resets to the defaults',
              }),
            ),
          },
          { additionalProperties: false },
        ),
        detail: {
          summary: 'Update an instance: its name, its pacing; for waba, any of its Cloud API ids and secrets (e.g. a new access token)',
          description: 'A changed Cloud API account restarts the worker, which checks the token again (state `connected` or `failed` with Meta\'s message).',
        },
        response: { 200: InstanceView, ...errorResponses(400, 401, 404, 409, 422) },
      },
    );

  return new Elysia({ name: 'waba' }).use(callbacks).use(api);
}
