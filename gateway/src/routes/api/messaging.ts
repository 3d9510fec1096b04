import { Elysia, t } from 'elysia';
import { and, eq } from 'drizzle-orm';
import type { AppDeps } from '../../http/context';
import { tenant, tenantSecurity } from '../../http/auth';
import { errorResponses, notFound } from '../../http/errors';
import { Id, IdParams } from '../../http/params';
import { media } from '../../db/schema';
import { normalizePhone, ownedInstance } from '../../instances/input';
import { commandRunner } from './commands';
import { unsupportedForProvider } from '../../messages/send-input';

/** Read receipts, linking by phone number, and received media. */
export function messagingRoutes({ database, runtime }: AppDeps) {
  const { db } = database;
  const { runNow } = commandRunner(runtime);

  return new Elysia({ name: 'api-messaging', prefix: '/api/instances', detail: { tags: ['instances'], security: tenantSecurity } })
    .post(
      '/:id/read',
      async ({ request, params, body }) => {
        await ownedInstance(db, tenant(request).id, params.id);
        const chat = normalizePhone('chat', body.chat);
        await runNow(params.id, 'read', { chat, messageIds: body.messageIds });
        return { status: 'ok' as const };
      },
      {
        params: IdParams,
        body: t.Object({
          chat: t.String({ maxLength: 32, description: "the chat's phone number (the sender of the messages)" }),
          messageIds: t.Array(t.String({ minLength: 1, maxLength: 256 }), {
            minItems: 1,
            maxItems: 100,
            description: 'ids of received messages (`data.id` of their message.received events)',
          }),
        }),
        detail: { summary: 'Mark received messages as read (blue ticks)', description: '503 `not_connected` when the number is not connected.' },
        response: { 200: t.Object({ status: t.Literal('ok') }), ...errorResponses(400, 401, 404, 422, 503) },
      },
    )
    .post(
      '/:id/pair-code',
      async ({ request, params, body }) => {
        const { instance } = await ownedInstance(db, tenant(request).id, params.id);
        if (instance.provider === 'waba') throw unsupportedForProvider('waba', 'link by code: Cloud API numbers are registered in WhatsApp Manager, not linked');
        const phone = normalizePhone('phone', body.phone ?? instance.phoneNumber);
        const data = await runNow(params.id, 'pair-code', { phone });
        return { code: String(data.code) };
      },
      {
        params: IdParams,
        body: t.Object({ phone: t.Optional(t.String({ maxLength: 32, description: "the number to link; default the instance's phone" })) }),
        detail: {
          summary: 'Link by phone number instead of a QR: a code to enter on the phone',
          description:
            'WhatsApp → Linked devices → Link with phone number, then type the 8-character code. 409 once connected; 503 while the worker or WhatsApp is not reachable. ' +
            'In the sandbox, POST …/sandbox/scan enters the code.',
        },
        response: { 200: t.Object({ code: t.String() }), ...errorResponses(400, 401, 404, 409, 422, 503) },
      },
    )
    .get(
      '/:id/media/:mediaId',
      async ({ request, params }) => {
        await ownedInstance(db, tenant(request).id, params.id);
        const [row] = await db.select().from(media).where(and(eq(media.id, params.mediaId), eq(media.instanceId, params.id)));
        if (!row) throw notFound(`media ${params.mediaId}`);
        const headers: Record<string, string> = { 'content-type': row.mimetype, 'content-length': String(row.size), 'cache-control': 'private, max-age=86400' };
        if (row.filename) headers['content-disposition'] = `attachment; filename*=UTF-8''${encodeURIComponent(row.filename)}`;
        return new Response(row.data, { headers });
      },
      {
        params: t.Object({ id: Id('id'), mediaId: t.String({ pattern: '^med_[0-9a-f]{24}$' }) }),
        detail: { summary: 'Download media a message brought (the `media.url` of a message.received event)' },
        response: { ...errorResponses(400, 401, 404) },
      },
    );
}
