import { Elysia, t } from 'elysia';
import QRCode from 'qrcode';
import { and, asc, desc, eq, lt } from 'drizzle-orm';
import type { AppDeps } from '../../http/context';
import { tenant, tenantSecurity } from '../../http/auth';
import { ApiError, conflict, errorResponses, noContent, notFound, sqlState, UNIQUE_VIOLATION } from '../../http/errors';
import { Id, IdParams, IntegerField, isoInstant, MAX_INSTANT_MS, PositiveInt } from '../../http/params';
import { commands, instances, messages, nodes, wabaAccounts, webhooks, type Instance } from '../../db/schema';
import { effectivePacing, isPaced } from '../../pacing/settings';
import { reserveSend } from '../../pacing/reserve';
import { resumeInstance } from '../../pacing/pause';
import { sealAccount, wabaViews } from '../../waba/account';
import { checkWebhookInput, newSigningSecret } from '../../webhooks/subscriptions';
import {
  checkCreateInstance,
  CreateInstanceBody,
  InboundBody,
  InstanceView,
  MessageView,
  normalizePhone,
  ownedInstance,
  toInstanceView,
} from '../../instances/input';
import { newMessageId, toMessageView } from '../../messages/messages';
import { planSend, SendBody, unsupportedForProvider } from '../../messages/send-input';
import type { SendArgs } from '../../../../workers/protocol/frames';
import { limitsOf, placeAndAssign } from '../../scheduler/loads';
import { processWorkerMissing } from '../../instances/setup';
import { COMMAND_TIMEOUT_MS, commandRunner } from './commands';
import { planOf } from '../../plans/plans';
import { checkSendQuota, checkSeats, holdSeat, requireFeature, requireProvider } from '../../plans/quotas';
import { recordInstanceEvent } from '../../billing/events';
import { announceDeleted } from '../../events/stream-hub';

/** How long create and restart wait for the worker to connect. */
const START_TIMEOUT_MS = 30_000;
/** How long create waits, after the worker connected, for its first session state. */
const SESSION_REPORT_TIMEOUT_MS = 2_000;
const sessionReported = (i: Instance) => i.state !== 'starting' && (i.state !== 'qr' || i.qrCode !== null);

/** Epoch milliseconds up to the end of year 9999 (15 digits). */
const EPOCH_MS = /^[0-9]{1,15}$/;

/** `before` of GET …/messages: an ISO 8601 instant or epoch milliseconds, 1970 to 9999; else 400 naming it. */
function beforeInstant(raw: string): Date {
  const at = EPOCH_MS.test(raw) && Number(raw) <= MAX_INSTANT_MS ? new Date(Number(raw)) : isoInstant(raw);
  if (!at) {
    throw new ApiError(
      400,
      'validation_failed',
      "invalid query parameter 'before': must be an ISO 8601 date or date-time (e.g. 2026-01-31T10:00:00Z) or milliseconds since 1970, a real calendar date and time from 1970 to 9999",
    );
  }
  return at;
}

export function instanceRoutes({ database, runtime, migrator, secrets, allowPrivateWebhooks, overcommit, billingWebhooks, pacingDefaults = 'safe' }: AppDeps) {
  const { db } = database;

  async function view(userId: number, id: number) {
    const { instance, nodeName } = await ownedInstance(db, userId, id);
    const waba = instance.provider === 'waba' ? (await wabaViews(db, [id])).get(id) : undefined;
    return toInstanceView(instance, nodeName, waba, pacingDefaults);
  }

  const { runNow, commandError, notConnected } = commandRunner(runtime);

  /** Lifecycle changes wait until a move is over (a move by any replica: the row says `migrating`). */
  function notMoving(id: number, instance: Instance): void {
    if (runtime.sessions.isMovingHere(id) || instance.status === 'migrating') {
      throw conflict('migration_in_progress', `instance ${id} is migrating; try again when the move is done`);
    }
  }

  async function requireSandbox(userId: number, id: number) {
    const { instance } = await ownedInstance(db, userId, id);
    if (instance.provider !== 'sandbox') throw new ApiError(400, 'not_sandbox', `instance ${id} uses provider ${instance.provider}; this route is for sandbox instances`);
    return instance;
  }

  return new Elysia({ name: 'api-instances', prefix: '/api/instances', detail: { tags: ['instances'], security: tenantSecurity } })
    .post(
      '',
      async ({ request, body }) => {
        const user = tenant(request);
        const { instance: input, waba } = checkCreateInstance(body);
        // The plan: its providers, features and instance seats (402 before placement; strict again under a lock below).
        const plan = await planOf(db, user.id);
        requireProvider(plan, input.provider);
        if (input.webhookUrl) requireFeature(plan, 'webhooks');
        if (body.node !== undefined) requireFeature(plan, 'node_selection');
        await checkSeats(db, plan, user.id);
        if (input.webhookUrl) await checkWebhookInput('webhook', { url: input.webhookUrl }, allowPrivateWebhooks);
        const placement = await placeAndAssign(db, { ...limitsOf(input), node: body.node }, overcommit, async (tx, node) => {
          // Checked before anything is written: a worker that cannot start here leaves no instance behind.
          const missing = node.engine === 'process' ? processWorkerMissing(input.provider) : undefined;
          if (missing) throw new ApiError(503, 'worker_unavailable', `cannot run a ${input.provider} worker on node ${node.name}: ${missing}`);
          // Seats are billing-relevant: counted and taken in this transaction, under a per-tenant lock.
          await holdSeat(tx, plan, user.id);
          return tx
            .insert(instances)
            .values({ ...input, userId: user.id, nodeId: node.id })
            .returning({ id: instances.id })
            .catch((err) => {
              if (sqlState(err) === UNIQUE_VIOLATION) throw conflict('phone_taken', `you already have an instance for phone ${input.phoneNumber}`);
              throw err;
            })
            .then(async (rows) => {
              // Seat-based billing: instance.created is recorded with the instance, or neither is.
              await recordInstanceEvent(tx, billingWebhooks, 'instance.created', rows[0]!.id);
              // The Cloud API account is written with its instance, or neither is.
              if (waba) {
                await tx
                  .insert(wabaAccounts)
                  .values(sealAccount(secrets, waba, { instanceId: rows[0]!.id, userId: user.id }))
                  .catch((err) => {
                    if (sqlState(err) === UNIQUE_VIOLATION) {
                      throw conflict('phone_number_id_taken', `you already have an instance for Cloud API phone number id ${waba.phoneNumberId}`);
                    }
                    throw err;
                  });
              }
              return rows;
            });
        });
        if (!placement.ok) {
          if (placement.unknownNode) throw new ApiError(400, 'validation_failed', `invalid field 'node': ${placement.reason}`);
          throw new ApiError(503, 'no_capacity', `no node can take this instance: ${placement.reason}`);
        }
        const created = placement.value[0];
        const id = created!.id;
        // The seed's `webhook` field is a subscription to every event, like one made with POST .../webhooks.
        let webhookSecret: string | undefined;
        if (input.webhookUrl) {
          webhookSecret = newSigningSecret();
          await db.insert(webhooks).values({ instanceId: id, url: input.webhookUrl, secretEncrypted: secrets.seal(webhookSecret) });
        }
        await runtime.start(id).catch(() => {}); // the status says what failed
        const row = await runtime.waitUntil(id, (i) => i.status === 'running' || i.status === 'error', START_TIMEOUT_MS);
        if (row?.status !== 'running') {
          throw new ApiError(503, 'worker_not_running', `instance ${id} was created but its worker is not running (${row?.status}: ${row?.statusReason})`);
        }
        // The worker reports its session right after connecting: answer with it (and a QR ready to serve).
        await runtime.waitUntil(id, sessionReported, SESSION_REPORT_TIMEOUT_MS);
        return { ...(await view(user.id, id)), ...(webhookSecret && { webhookSecret }) };
      },
      {
        body: CreateInstanceBody,
        detail: {
          summary: 'Create an instance (a WhatsApp number); answers once its worker runs',
          description:
            "Plan: 402 `quota_exceeded` when the tenant has maxInstances instances already; 403 `not_in_plan` for a provider outside the plan's allowedProviders, " +
            'or `webhook` / `node` when the plan lacks the `webhooks` / `node_selection` feature.',
        },
        response: {
          200: t.Composite([InstanceView, t.Object({ webhookSecret: t.Optional(t.String({ description: 'whsec_… signing secret of the `webhook` subscription, shown once' })) })]),
          ...errorResponses(400, 401, 402, 403, 409, 422, 503),
        },
      },
    )
    .get(
      '',
      async ({ request }) => {
        const user = tenant(request);
        const rows = await db
          .select({ instance: instances, nodeName: nodes.name })
          .from(instances)
          .leftJoin(nodes, eq(nodes.id, instances.nodeId))
          .where(eq(instances.userId, user.id))
          .orderBy(asc(instances.id));
        const accounts = await wabaViews(
          db,
          rows.filter((r) => r.instance.provider === 'waba').map((r) => r.instance.id),
        );
        return rows.map((r) => toInstanceView(r.instance, r.nodeName, accounts.get(r.instance.id), pacingDefaults));
      },
      { detail: { summary: "List the caller's instances" }, response: { 200: t.Array(InstanceView), ...errorResponses(401) } },
    )
    .get('/:id', ({ request, params }) => view(tenant(request).id, params.id), {
      params: IdParams,
      detail: { summary: 'Get an instance' },
      response: { 200: InstanceView, ...errorResponses(400, 401, 404) },
    })
    .delete(
      '/:id',
      async ({ request, params, set }) => {
        const userId = tenant(request).id;
        await ownedInstance(db, userId, params.id);
        // After a migration under way has finished or rolled back: nothing is started behind the delete.
        await migrator.exclusive(params.id, async () => {
          await runtime.destroy(params.id);
          // instance.deleted (billing, and the open event streams) is recorded with the delete, or neither is.
          await db.transaction(async (tx) => {
            await recordInstanceEvent(tx, billingWebhooks, 'instance.deleted', params.id);
            await tx.delete(instances).where(eq(instances.id, params.id));
            await announceDeleted(tx, params.id, userId);
          });
        });
        set.status = 204;
      },
      {
        params: IdParams,
        detail: { summary: 'Delete an instance: its worker is stopped and removed, its session state dropped' },
        response: { ...noContent, ...errorResponses(400, 401, 404) },
      },
    )
    .post(
      '/:id/migrate',
      async ({ request, params, body }) => {
        const user = tenant(request);
        await ownedInstance(db, user.id, params.id);
        if (body?.target_node !== undefined) requireFeature(await planOf(db, user.id), 'node_selection');
        const moved = await migrator.migrate(params.id, body?.target_node);
        return { status: 'ok' as const, from: moved.from, to: moved.to, durationMs: moved.durationMs, instance: await view(user.id, params.id) };
      },
      {
        params: IdParams,
        body: t.Optional(
          t.Object(
            { target_node: t.Optional(t.String({ minLength: 1, maxLength: 63, description: 'node name; omitted: the scheduler picks the best other node' })) },
            { additionalProperties: false },
          ),
        ),
        detail: {
          summary: 'Move the instance to another node; answers once the new worker holds the session',
          description:
            'No new QR: the session is in Postgres. While moving, `status` is `migrating` and sends answer 202 (queued, delivered by the new worker). ' +
            '409: already migrating, target is the current node, draining or unreachable; 422: unknown target; 503: no node fits, or the move failed (the instance is back on its old node).',
        },
        response: {
          200: t.Object({ status: t.Literal('ok'), from: t.String(), to: t.String(), durationMs: t.Integer(), instance: InstanceView }),
          ...errorResponses(400, 401, 403, 404, 409, 422, 503),
        },
      },
    )
    .post(
      '/:id/restart',
      async ({ request, params }) => {
        const user = tenant(request);
        notMoving(params.id, (await ownedInstance(db, user.id, params.id)).instance);
        await runtime.restart(params.id).catch(() => {});
        await runtime.waitUntil(params.id, (i) => i.status === 'running' || i.status === 'error', START_TIMEOUT_MS);
        return view(user.id, params.id);
      },
      {
        params: IdParams,
        detail: { summary: 'Restart the worker; answers once it runs again' },
        response: { 200: InstanceView, ...errorResponses(400, 401, 404, 409) },
      },
    )
    .post(
      '/:id/logout',
      async ({ request, params }) => {
        notMoving(params.id, (await ownedInstance(db, tenant(request).id, params.id)).instance);
        await runNow(params.id, 'logout', {});
        return { state: 'logged_out' as const };
      },
      {
        params: IdParams,
        detail: { summary: 'Log the WhatsApp session out; a new QR follows' },
        response: { 200: t.Object({ state: t.Literal('logged_out') }), ...errorResponses(400, 401, 404, 409, 503) },
      },
    )
    .get(
      '/:id/qr',
      async ({ request, params, query, set }) => {
        const { instance } = await ownedInstance(db, tenant(request).id, params.id);
        if (instance.provider === 'waba') throw unsupportedForProvider('waba', 'show a QR code: Cloud API numbers are registered in WhatsApp Manager, not linked');
        if (instance.state === 'connected') throw conflict('already_connected', `instance ${params.id} is already paired`);
        if (!instance.qrCode || !instance.qrExpiresAt || instance.qrExpiresAt.getTime() <= Date.now()) {
          set.headers['retry-after'] = '1';
          throw new ApiError(503, 'qr_not_ready', `no QR code yet: the worker is ${instance.status === 'running' ? `in state ${instance.state}` : instance.status}; retry shortly`);
        }
        if (query.format === 'json') return { qr: instance.qrCode, expiresAt: instance.qrExpiresAt };
        const png = await QRCode.toBuffer(instance.qrCode, { type: 'png', margin: 2, width: 320 });
        return new Response(png, { headers: { 'content-type': 'image/png', 'cache-control': 'no-store' } });
      },
      {
        params: IdParams,
        query: t.Object({ format: t.Optional(t.Union([t.Literal('png'), t.Literal('json')])) }),
        detail: {
          summary: 'The pending QR code: image/png, or {qr, expiresAt} with ?format=json',
          description: '409 `already_connected` once paired; 503 with Retry-After while the worker is still starting.',
        },
        response: { ...errorResponses(400, 401, 404, 409, 422, 503) },
      },
    )
    .post(
      '/:id/send',
      async ({ request, params, body, headers, set }) => {
        const user = tenant(request);
        const { instance } = await ownedInstance(db, user.id, params.id);
        const plan = await planSend(db, instance.id, body, { allowPrivateMedia: allowPrivateWebhooks, provider: instance.provider });
        const key = headers['idempotency-key'];
        if (key !== undefined && (key.length === 0 || key.length > 255)) {
          throw new ApiError(400, 'validation_failed', "invalid header 'Idempotency-Key': must be 1 to 255 characters");
        }
        // A repeated Idempotency-Key answers with the message it made, as that message stands now.
        const earlier = async () => {
          const [existing] = key
            ? await db.select().from(messages).where(and(eq(messages.instanceId, instance.id), eq(messages.idempotencyKey, key)))
            : [];
          if (existing) set.status = existing.status === 'queued' ? 202 : 200;
          if (existing?.status === 'queued' && existing.commandId !== null) {
            // A paced send not yet due answers as it did: scheduled, with its time.
            const [due] = await db.select({ at: commands.notBefore }).from(commands).where(eq(commands.id, existing.commandId));
            if (due?.at && due.at.getTime() > Date.now()) return { id: existing.id, status: 'scheduled', scheduledAt: due.at };
          }
          return existing && { id: existing.id, status: existing.status };
        };
        const repeated = await earlier();
        if (repeated) return repeated;
        // The tenant's plan: media allowed, this month's quotas not used up (a repeat above is not a new send).
        const tenantPlan = await planOf(db, user.id);
        const media = body.media; // planSend refused media on types that carry none
        if (media) requireFeature(tenantPlan, 'media');
        await checkSendQuota(db, tenantPlan, user.id, media && { inlineBytes: media.data ? Buffer.byteLength(media.data, 'base64') : 0 });
        if (!instance.paired) throw notConnected();
        // A failed session (banned, replaced, a refused token) does not come back by waiting: queueing would hide it.
        if (instance.state === 'failed') {
          throw new ApiError(503, 'session_failed', `instance ${instance.id} cannot send: its session failed (${instance.stateReason ?? 'no reason given'}); fix the cause, then restart it`);
        }

        const messageId = newMessageId();
        const args = { ...plan.args, messageId } as SendArgs;
        // A concurrent request with the same Idempotency-Key won: answer with its message.
        const repeatedKey = (err: unknown) => {
          if (key && sqlState(err) === UNIQUE_VIOLATION) return null;
          throw err;
        };
        // Paced sending (pacing/): a slot is reserved; a later one is answered 202 scheduled and sent when due.
        const pacing = effectivePacing(instance.pacing, instance.provider, pacingDefaults);
        const paused = instance.pausedUntil !== null && instance.pausedUntil.getTime() > Date.now();
        const reserved =
          isPaced(pacing) || paused
            ? await reserveSend(db, runtime.queue, { instanceId: instance.id, args, idempotencyKey: key ?? null, text: plan.text, pacing }).catch(repeatedKey)
            : undefined;
        if (reserved === null) return (await earlier())!;
        if (reserved && !reserved.immediate) {
          runtime.pacer.wake(reserved.presence?.notBefore ?? reserved.notBefore);
          set.status = 202;
          return { id: messageId, status: 'scheduled' as const, scheduledAt: reserved.notBefore };
        }
        // The typing indicator first (its failure never holds the send back).
        if (reserved?.presence) await runtime.dispatch(reserved.presence);
        const command = reserved ? reserved.command : await runtime.queue.enqueueSend(instance.id, args, key ?? null, plan.text).catch(repeatedKey);
        if (!command) return (await earlier())!;
        const outcome = runtime.queue.waitFor(command.id, COMMAND_TIMEOUT_MS);
        // The worker may be connected to another replica: the command then reaches it through the database.
        const result = (await runtime.dispatch(command)) ? await outcome : null;
        if (!result) {
          set.status = 202;
          return { id: messageId, status: 'queued' as const };
        }
        // WhatsApp's rate limit: the number paused and the message waits for the pause's end (pacing/requeue.ts).
        const requeued = result.data?.requeued as { scheduledAt?: string } | undefined;
        if (!result.ok && requeued?.scheduledAt) {
          set.status = 202;
          return { id: messageId, status: 'scheduled' as const, scheduledAt: new Date(requeued.scheduledAt) };
        }
        if (!result.ok) throw commandError(result);
        return { id: messageId, status: 'sent' as const };
      },
      {
        params: IdParams,
        body: SendBody,
        headers: t.Object({ 'idempotency-key': t.Optional(t.String({ description: 'same key, same message: sent once' })) }),
        detail: {
          summary:
            'Send a message: text, image, video, audio (ptt: voice note), document, sticker, location, contact, reaction, edit, revoke; template and interactive (waba)',
          description:
            '200 `{id, status}` once the worker sent it; 202 `{id, status: "queued"}` while the worker restarts or reconnects (delivered when it is back); ' +
            '202 `{id, status: "scheduled", scheduledAt}` when the instance\'s pacing (or a pause) puts the send later: it is queued durably and leaves at scheduledAt; 503 `not_connected` when the number is not paired, `session_failed` when its session failed (banned, replaced, token refused). ' +
            '422 `unsupported_for_provider` for a type the engine cannot send (waba: edit, revoke; whatsmeow and baileys: template, interactive). ' +
            "waba refusals keep Meta's code in `providerCode`: 422 `template_required` (131047, outside the 24-hour window), `template_error` (132xxx), `undeliverable` (131026), " +
            '`ecosystem_limited` (131049), `provider_rejected` (100 and other invalid requests), `media_failed`. ' +
            'A provider\'s rate limit (`rate_limited`, `spam_rate_limited`) pauses the number and does not fail the send: 202 `{id, status: "scheduled", scheduledAt}` at the pause\'s end; ' +
            'a message refused this way a fourth time fails: 429 `rate_limited` / `spam_rate_limited` (with Retry-After). ' +
            '403 `account_restricted`; 503 `provider_auth_failed` (190: token expired or revoked); 502 `provider_error`; 504 `provider_unreachable`. ' +
            "Plan: 402 `quota_exceeded` when this month's messagesPerMonth is used up, or media would pass mediaBytesPerMonth (the message names the quota, the usage and when it resets: the next UTC month); 403 `not_in_plan` for media when the plan lacks the `media` feature.",
        },
        response: {
          200: t.Object({ id: t.String(), status: t.String() }),
          202: t.Object({
            id: t.String(),
            status: t.String({ description: 'queued (the worker is away) or scheduled (paced: sent at scheduledAt)' }),
            scheduledAt: t.Optional(t.Date({ description: 'scheduled: when the send leaves the gateway' })),
          }),
          ...errorResponses(400, 401, 402, 403, 404, 409, 422, 429, 502, 503, 504),
        },
      },
    )
    .get(
      '/:id/messages',
      async ({ request, params, query }) => {
        const before = query.before === undefined ? undefined : beforeInstant(query.before);
        await ownedInstance(db, tenant(request).id, params.id);
        const rows = await db
          .select()
          .from(messages)
          .where(and(eq(messages.instanceId, params.id), before ? lt(messages.createdAt, before) : undefined))
          .orderBy(desc(messages.createdAt), desc(messages.id))
          .limit(query.limit ?? 50);
        return { messages: rows.map(toMessageView) };
      },
      {
        params: t.Object({ id: Id('instance id') }),
        query: t.Object({
          limit: t.Optional(PositiveInt('how many (default 50, at most 200)', 200)),
          before: t.Optional(
            t.String({
              description:
                'only messages created before this time (the last createdAt of the previous page): an ISO 8601 date or date-time (UTC without an offset), or milliseconds since 1970; years 1970 to 9999',
            }),
          ),
        }),
        detail: { summary: 'Recent sent messages, newest first', description: 'Outgoing messages of the instance and how far each got; received messages are `message.received` events (webhooks, event stream).' },
        response: { 200: t.Object({ messages: t.Array(MessageView) }), ...errorResponses(400, 401, 404) },
      },
    )
    .get(
      '/:id/messages/:messageId',
      async ({ request, params }) => {
        await ownedInstance(db, tenant(request).id, params.id);
        const [message] = await db.select().from(messages).where(and(eq(messages.id, params.messageId), eq(messages.instanceId, params.id)));
        if (!message) throw notFound(`message ${params.messageId}`);
        return toMessageView(message);
      },
      {
        params: t.Object({ id: Id('instance id'), messageId: t.String({ maxLength: 64 }) }),
        detail: { summary: 'A sent message and how far it got' },
        response: { 200: MessageView, ...errorResponses(400, 401, 404) },
      },
    )
    .post(
      '/:id/sandbox/scan',
      async ({ request, params }) => {
        await requireSandbox(tenant(request).id, params.id);
        await runNow(params.id, 'sandbox.scan', {});
        return { state: 'connected' as const };
      },
      {
        params: IdParams,
        detail: { summary: 'Sandbox: the simulated phone scans the QR code', tags: ['sandbox'] },
        response: { 200: t.Object({ state: t.Literal('connected') }), ...errorResponses(400, 401, 404, 409, 503) },
      },
    )
    .post(
      '/:id/sandbox/inbound',
      async ({ request, params, body }) => {
        await requireSandbox(tenant(request).id, params.id);
        const from = normalizePhone('from', body.from);
        if (body.text.trim().length === 0) throw new ApiError(400, 'validation_failed', "invalid field 'text': must not be empty");
        const data = await runNow(params.id, 'sandbox.inbound', { from, type: 'text', text: body.text });
        return { id: String(data.id) };
      },
      {
        params: IdParams,
        body: InboundBody,
        detail: { summary: 'Sandbox: a message arrives as if from WhatsApp', tags: ['sandbox'] },
        response: { 200: t.Object({ id: t.String() }), ...errorResponses(400, 401, 404, 503) },
      },
    )
    .post(
      '/:id/sandbox/faults',
      async ({ request, params, body }) => {
        await requireSandbox(tenant(request).id, params.id);
        const data = await runNow(params.id, 'sandbox.faults', { rateLimitNext: body.rateLimitNext, ...(body.retryAfter !== undefined && { retryAfter: body.retryAfter }) });
        return { rateLimitNext: Number(data.rateLimitNext) };
      },
      {
        params: IdParams,
        body: t.Object(
          {
            rateLimitNext: IntegerField('the next n sends fail with rate_limited, as a provider rate limit would', 0, 1000),
            retryAfter: t.Optional(IntegerField('seconds the injected rate limit asks to wait', 0, 86_400)),
          },
          { additionalProperties: false },
        ),
        detail: { summary: 'Sandbox: inject faults (a provider rate limit on the next sends; it pauses the instance)', tags: ['sandbox'] },
        response: { 200: t.Object({ rateLimitNext: t.Integer() }), ...errorResponses(400, 401, 404, 503) },
      },
    )
    .post(
      '/:id/resume',
      async ({ request, params }) => {
        const user = tenant(request);
        const { instance } = await ownedInstance(db, user.id, params.id);
        const { minIntervalMs } = effectivePacing(instance.pacing, instance.provider, pacingDefaults);
        if (await resumeInstance(db, instance.id, minIntervalMs)) runtime.pacer.wake();
        runtime.sessions.changed(instance.id);
        return view(user.id, params.id);
      },
      {
        params: IdParams,
        detail: {
          summary: 'End a pause now: the sends held back go out again at the pace (instance.resumed)',
          description: 'A number pauses itself when its provider signals a rate limit or a temporary block (instance.paused {reason, until}); it resumes by itself at `pausedUntil`, or at once with this call. Not paused: nothing changes.',
        },
        response: { 200: InstanceView, ...errorResponses(400, 401, 404) },
      },
    );
}
