/**
 * The one send route for every message type: the API body, checked here
 * before anything is queued (a worker should not spend effort on a send that
 * cannot work), and turned into the protocol's `send` arguments. Messages
 * that replies, reactions, edits and revokes point at are looked up by the
 * id the API gave out: a sent message's `msg_…` id, or a received message's
 * provider id (from its `message.received` event).
 */
import { isIP } from 'node:net';
import { and, eq, sql } from 'drizzle-orm';
import { t } from 'elysia';
import { Value } from '@sinclair/typebox/value';
import type { Db } from '../db/client';
import { events, messages } from '../db/schema';
import { ApiError, notFound } from '../http/errors';
import { normalizePhone } from '../instances/input';
import { isPrivateAddress } from '../webhooks/destination';
import {
  MAX_INLINE_MEDIA_BYTES,
  SEND_MESSAGE_TYPES,
  SendMessageTypes,
  type MessageRef,
  type SendArgs,
  type SendMessageType,
} from '../../../workers/protocol/frames';

const MEDIA_TYPES = new Set<SendMessageType>(['image', 'video', 'audio', 'document', 'sticker']);

/**
 * Send types an engine cannot do, refused with 422 `unsupported_for_provider`
 * before anything is queued: the Cloud API cannot edit or delete a message;
 * templates and interactive messages exist only on the Cloud API (the
 * sandbox, a stand-in for development, accepts every type).
 */
export const UNSUPPORTED_SEND_TYPES: Record<string, readonly SendMessageType[]> = {
  waba: ['edit', 'revoke'],
  whatsmeow: ['template', 'interactive'],
  baileys: ['template', 'interactive'],
  wawebjs: ['template', 'interactive'],
};

export function unsupportedForProvider(provider: string, what: string): ApiError {
  return new ApiError(422, 'unsupported_for_provider', `provider ${provider} cannot ${what}`);
}
const TARGET_TYPES = new Set<SendMessageType>(['reaction', 'edit', 'revoke']);
/** What each media type's MIME type must start with (documents take anything). */
const MIME_PREFIX: Partial<Record<SendMessageType, string>> = { image: 'image/', video: 'video/', audio: 'audio/', sticker: 'image/webp' };

export const SendBody = t.Object({
  to: t.Optional(t.String({ maxLength: 32, description: 'recipient phone number; for reaction, edit and revoke it defaults to the chat of `target`' })),
  type: t.Optional(t.String({ description: `one of ${SEND_MESSAGE_TYPES.join(', ')}; default text` })),
  text: t.Optional(t.String({ description: 'text, or the new text of an edit (1 to 65536 characters)' })),
  caption: t.Optional(t.String({ description: 'image, video, document' })),
  media: t.Optional(
    t.Object(
      {
        url: t.Optional(t.String({ description: 'https:// URL the worker downloads' })),
        data: t.Optional(t.String({ description: `base64, at most ${MAX_INLINE_MEDIA_BYTES / 2 ** 20} MiB decoded` })),
        mimetype: t.String({ description: 'e.g. image/jpeg, audio/ogg; codecs=opus, application/pdf; stickers: image/webp' }),
        filename: t.Optional(t.String()),
      },
      { description: 'image, video, audio, document, sticker: exactly one of url or data' },
    ),
  ),
  ptt: t.Optional(t.Boolean({ description: 'audio: true sends a voice note' })),
  location: t.Optional(t.Object({ latitude: t.Number(), longitude: t.Number(), name: t.Optional(t.String()), address: t.Optional(t.String()) })),
  contact: t.Optional(t.Object({ name: t.String(), phone: t.String() })),
  previewUrl: t.Optional(t.Boolean({ description: 'text, waba: show a preview of the first URL in the text' })),
  template: t.Optional(
    t.Object(
      {
        name: t.String({ description: 'the template name as approved, e.g. order_update' }),
        language: t.String({ description: 'its language code, e.g. en_US' }),
        components: t.Optional(t.Array(t.Record(t.String(), t.Unknown()), { description: "the Cloud API's components with parameters, passed through" })),
      },
      { description: 'template (waba): an approved message template; GET …/templates lists them' },
    ),
  ),
  interactive: t.Optional(
    t.Record(t.String(), t.Unknown(), {
      description:
        'interactive (waba): `{kind: "buttons", body, header?, footer?, buttons: [{id, title}] (1-3)}` or ' +
        '`{kind: "list", body, header?, footer?, button, sections: [{title?, rows: [{id, title, description?}]}]}` (at most 10 rows)',
    }),
  ),
  emoji: t.Optional(t.String({ description: 'reaction: the emoji; "" removes the reaction' })),
  target: t.Optional(t.String({ description: 'reaction, edit, revoke: the message, by the id the API gave (msg_… for sent, the provider id for received)' })),
  replyTo: t.Optional(t.String({ description: 'quote this message (same ids as target)' })),
});
export type SendBody = typeof SendBody.static;

const invalid = (field: string, message: string) => new ApiError(400, 'validation_failed', `invalid field '${field}': ${message}`);

/** Protocol `send` arguments without the messageId, plus what the messages table keeps. */
export interface SendPlan {
  args: Omit<SendArgs, 'messageId'>;
  type: SendMessageType;
  to: string;
  /** Stored with the message: the text, caption or emoji. */
  text: string | null;
}

export async function planSend(
  db: Db,
  instanceId: number,
  body: SendBody,
  opts: { allowPrivateMedia: boolean; provider: string },
): Promise<SendPlan> {
  const type = (body.type ?? 'text') as SendMessageType;
  if (!SEND_MESSAGE_TYPES.includes(type)) throw invalid('type', `"${body.type}" is not a message type; one of ${SEND_MESSAGE_TYPES.join(', ')}`);
  if (UNSUPPORTED_SEND_TYPES[opts.provider]?.includes(type)) throw unsupportedForProvider(opts.provider, `send ${type} messages`);
  for (const field of ['template', 'interactive'] as const) {
    if (body[field] !== undefined && type !== field) throw invalid(field, `only a ${field} message takes a ${field}`);
  }
  if (body.previewUrl !== undefined && type !== 'text') throw invalid('previewUrl', 'only a text message takes previewUrl');

  // What the body alone tells first; then the lookups of the messages it points at.
  if (!TARGET_TYPES.has(type) && body.target !== undefined) throw invalid('target', `only reaction, edit and revoke take a target`);
  if (TARGET_TYPES.has(type) && !body.target) throw invalid('target', 'required: the id of a message');
  if (MEDIA_TYPES.has(type)) checkMedia(type, body.media, opts.allowPrivateMedia);
  else if (body.media !== undefined) throw invalid('media', `a ${type} message carries no media`);
  if (type === 'text' || type === 'edit') {
    if (body.text === undefined || body.text.trim() === '') throw invalid('text', 'must not be empty');
  }
  let to = body.to === undefined ? undefined : normalizePhone('to', body.to);
  if (to === undefined && !TARGET_TYPES.has(type)) throw invalid('to', 'required');

  const target = TARGET_TYPES.has(type) ? await resolveRef(db, instanceId, 'target', body.target) : undefined;
  if (target && (type === 'edit' || type === 'revoke') && !target.fromMe) {
    throw new ApiError(422, 'invalid_field', `invalid field 'target': only messages this instance sent can be ${type === 'edit' ? 'edited' : 'revoked'}`);
  }
  if (target && to !== undefined && to !== target.chat) throw invalid('to', `the target message is in the chat with ${target.chat}`);
  to ??= target!.chat;
  const replyTo = body.replyTo === undefined ? undefined : await resolveRef(db, instanceId, 'replyTo', body.replyTo);
  const contact = body.contact && { name: body.contact.name, phone: normalizePhone('contact.phone', body.contact.phone) };

  const args = {
    to,
    type,
    ...(replyTo && { replyTo }),
    ...(target && { target }),
    ...(body.text !== undefined && { text: body.text }),
    ...(body.caption !== undefined && { caption: body.caption }),
    ...(body.media !== undefined && { media: body.media }),
    ...(body.ptt !== undefined && { ptt: body.ptt }),
    ...(body.location !== undefined && { location: body.location }),
    ...(contact && { contact }),
    ...(body.emoji !== undefined && { emoji: body.emoji }),
    ...(body.previewUrl !== undefined && { previewUrl: body.previewUrl }),
    ...(body.template !== undefined && { template: body.template }),
    ...(body.interactive !== undefined && { interactive: body.interactive }),
  };
  // The protocol's own schema for the type has the last word (required fields, ranges, lengths).
  const schema = SendMessageTypes[type];
  const withId = { ...args, messageId: 'msg_check' };
  if (!Value.Check(schema, withId)) {
    const first = Value.Errors(schema, withId).First()!;
    const field = first.path.replace(/^\//, '').replaceAll('/', '.') || 'body';
    throw invalid(field, `${first.message.replace(/^Expected/, 'expected')} for a ${type} message`);
  }
  const summary = body.text ?? body.caption ?? body.emoji ?? body.template?.name ?? (typeof body.interactive?.body === 'string' ? body.interactive.body : undefined);
  return { args: args as SendPlan['args'], type, to, text: summary ?? null };
}

function checkMedia(type: SendMessageType, media: SendBody['media'], allowPrivate: boolean): void {
  if (!media) throw invalid('media', `required for a ${type} message`);
  if ((media.url === undefined) === (media.data === undefined)) throw invalid('media', 'give exactly one of url or data');
  const prefix = MIME_PREFIX[type];
  if (prefix && !media.mimetype.toLowerCase().startsWith(prefix)) throw invalid('media.mimetype', `a ${type} must be ${prefix}…, not ${media.mimetype}`);
  if (media.data !== undefined) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(media.data) || media.data.length % 4 === 1) throw invalid('media.data', 'is not base64');
    const bytes = Buffer.byteLength(media.data, 'base64');
    if (bytes === 0) throw invalid('media.data', 'is empty');
    if (bytes > MAX_INLINE_MEDIA_BYTES) {
      throw invalid('media.data', `${bytes} bytes decoded; at most ${MAX_INLINE_MEDIA_BYTES} (${MAX_INLINE_MEDIA_BYTES / 2 ** 20} MiB); send larger files by url`);
    }
    return;
  }
  let url: URL;
  try {
    url = new URL(media.url!);
  } catch {
    throw invalid('media.url', 'is not a URL');
  }
  if (url.protocol !== 'https:') throw invalid('media.url', 'must be an https:// URL');
  if (url.username || url.password) throw invalid('media.url', 'must not contain credentials');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!allowPrivate && ((isIP(host) && isPrivateAddress(host)) || host === 'localhost' || host.endsWith('.localhost'))) {
    throw invalid('media.url', `${host} is a private or loopback address`);
  }
}

/**
 * The message an id points at, as the worker needs it: a message this
 * instance sent (by its msg_… id; it must have gone out) or one it received
 * (by the provider's id in its message.received event).
 */
async function resolveRef(db: Db, instanceId: number, field: string, id: string | undefined): Promise<MessageRef> {
  if (id === undefined || id === '') throw invalid(field, 'required: the id of a message');
  if (id.startsWith('msg_')) {
    const [sent] = await db.select().from(messages).where(and(eq(messages.id, id), eq(messages.instanceId, instanceId)));
    if (!sent) throw notFound(`message ${id}`);
    if (!sent.providerMessageId) throw new ApiError(409, 'message_not_sent', `message ${id} has not been sent yet (status ${sent.status})`);
    return { id: sent.providerMessageId, chat: sent.to, fromMe: true };
  }
  const [received] = await db
    .select({ data: events.data })
    .from(events)
    .where(and(eq(events.instanceId, instanceId), eq(events.type, 'message.received'), sql`${events.data}->>'id' = ${id}`))
    .limit(1);
  if (!received) throw notFound(`message ${id}`);
  const data = received.data as { from: string; chat?: string };
  return { id, chat: data.chat ?? data.from, fromMe: false };
}
