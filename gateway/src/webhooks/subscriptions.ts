import { randomBytes } from 'node:crypto';
import { t } from 'elysia';
import type { Webhook } from '../db/schema';
import { ApiError } from '../http/errors';
import { refuseDestination } from './destination';

/** Event types a subscription may filter on (see docs/webhooks.md). */
export const EVENT_TYPES = ['message.received', 'message.status', 'instance.status', 'instance.qr', 'instance.migrated', 'instance.paused', 'instance.resumed', 'webhook.failed'] as const;

/** A Standard Webhooks secret: `whsec_` + base64 of 24 random bytes. */
export function newSigningSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

export const WebhookBody = t.Object({
  url: t.String({ maxLength: 2048, description: 'http(s) URL receiving POSTs' }),
  events: t.Optional(t.Nullable(t.Array(t.String(), { maxItems: 20, description: `types to deliver (default all): ${EVENT_TYPES.join(', ')}` }))),
  enabled: t.Optional(t.Boolean()),
});
export const WebhookPatch = t.Partial(WebhookBody, { minProperties: 1 });

export const WebhookView = t.Object({
  id: t.Integer(),
  url: t.String(),
  events: t.Nullable(t.Array(t.String())),
  enabled: t.Boolean(),
  disabledReason: t.Nullable(t.String()),
  createdAt: t.Date(),
  updatedAt: t.Date(),
});

export function toWebhookView(w: Webhook) {
  return { id: w.id, url: w.url, events: w.events, enabled: w.enabled, disabledReason: w.disabledReason, createdAt: w.createdAt, updatedAt: w.updatedAt };
}

const invalid = (field: string, message: string) => new ApiError(400, 'validation_failed', `invalid field '${field}': ${message}`);

/** Checks a URL (SSRF rules included) and an event filter; returns what to store. */
export async function checkWebhookInput(
  field: string,
  input: { url?: string; events?: string[] | null },
  allowPrivate: boolean,
): Promise<{ url?: string; events?: string[] | null }> {
  const out: { url?: string; events?: string[] | null } = {};
  if (input.url !== undefined) {
    const refused = await refuseDestination(input.url, allowPrivate);
    if (refused) throw invalid(field, refused);
    out.url = new URL(input.url).toString();
  }
  if (input.events !== undefined) {
    if (input.events !== null) {
      const unknown = input.events.find((e) => !(EVENT_TYPES as readonly string[]).includes(e));
      if (unknown !== undefined) throw invalid('events', `unknown event type "${unknown}"; one of ${EVENT_TYPES.join(', ')}`);
      if (input.events.length === 0) throw invalid('events', 'must name at least one type, or be null for all');
    }
    out.events = input.events === null ? null : [...new Set(input.events)];
  }
  return out;
}
