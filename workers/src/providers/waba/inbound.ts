/**
 * One Cloud API webhook `value` (`entry[].changes[].value`, field
 * `messages`) → received messages and status updates, as Meta's webhook
 * reference documents them
 * (https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components).
 * Pure: the provider downloads media, looks up which wamids it sent, and
 * emits.
 *
 * Nothing is dropped: a message type this mapping does not know (order,
 * system, unsupported, a future type) arrives as type `unknown` with the raw
 * type (and Meta's error title, if any) in `text`.
 */
import type { ReceivedMessage } from '../../../protocol/frames';
import { parseStatusError, type MetaError } from './errors';

/** A received message and what the provider still has to fill in. */
export interface InboundMessage {
  /** `waba:m:<wamid>`: a redelivered webhook maps to the same id. */
  eventId: string;
  message: ReceivedMessage;
  /** Media to download: `GET /{id}` then its url. */
  mediaId?: string;
  /** reaction: the wamid reacted to (the provider sets target.fromMe from waba_sent). */
  reactionTarget?: string;
}

export type DeliveryStatus = 'sent' | 'delivered' | 'read' | 'failed';

export interface InboundStatus {
  wamid: string;
  status: DeliveryStatus;
  timestamp: string;
  /** failed: the first error. */
  error?: MetaError;
  recipient?: string;
}

export interface MappedValue {
  messages: InboundMessage[];
  statuses: InboundStatus[];
  /** What was left out and why (malformed entries, unknown statuses), for the log. */
  skipped: string[];
}

const MEDIA_KINDS = ['image', 'video', 'audio', 'document', 'sticker'] as const;
type MediaKind = (typeof MEDIA_KINDS)[number];
const STATUSES: readonly string[] = ['sent', 'delivered', 'read', 'failed'];

export const messageEventId = (wamid: string) => `waba:m:${wamid}`;
export const statusEventId = (wamid: string, status: string) => `waba:s:${wamid}:${status}`;

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : undefined);

/** Meta's unix seconds (a string) → ISO 8601; now when missing. */
export function isoFromUnix(value: unknown, now = new Date()): string {
  const seconds = num(value);
  return seconds === undefined ? now.toISOString() : new Date(seconds * 1000).toISOString();
}

export function mapValue(value: Obj): MappedValue {
  const out: MappedValue = { messages: [], statuses: [], skipped: [] };
  const messages = Array.isArray(value.messages) ? value.messages : [];
  for (const raw of messages) {
    const m = obj(raw);
    const id = str(m?.id);
    const from = str(m?.from);
    if (!m || !id || !from) {
      out.skipped.push('a message without id or from');
      continue;
    }
    out.messages.push(mapMessage(m, id, from));
  }
  const statuses = Array.isArray(value.statuses) ? value.statuses : [];
  for (const raw of statuses) {
    const s = obj(raw);
    const wamid = str(s?.id);
    const status = str(s?.status);
    if (!s || !wamid || !status) {
      out.skipped.push('a status without id or status');
      continue;
    }
    if (!STATUSES.includes(status)) {
      out.skipped.push(`status ${JSON.stringify(status)} of ${wamid} (not one the gateway knows)`);
      continue;
    }
    const errors = Array.isArray(s.errors) ? s.errors : [];
    const error = status === 'failed' ? parseStatusError(errors[0]) : undefined;
    out.statuses.push({
      wamid,
      status: status as DeliveryStatus,
      timestamp: isoFromUnix(s.timestamp),
      ...(error && { error }),
      ...(str(s.recipient_id) && { recipient: str(s.recipient_id) }),
    });
  }
  return out;
}

function mapMessage(m: Obj, id: string, from: string): InboundMessage {
  const type = str(m.type) ?? 'unknown';
  const base: ReceivedMessage = { id, from, chat: from, type: 'unknown', timestamp: isoFromUnix(m.timestamp) };
  const context = obj(m.context);
  const contextId = str(context?.id);
  if (contextId) {
    // context.from is the number the quoted message came from: the business's own number when it quotes ours.
    const quotedFrom = str(context?.from);
    base.replyTo = { id: contextId, chat: from, fromMe: quotedFrom !== undefined && quotedFrom !== from };
  }
  const result: InboundMessage = { eventId: messageEventId(id), message: base };
  const body = obj(m[type]);
  switch (type) {
    case 'text':
      base.type = 'text';
      base.text = str(body?.body) ?? '';
      break;
    case 'image':
    case 'video':
    case 'audio':
    case 'document':
    case 'sticker': {
      base.type = type as MediaKind;
      const mimetype = str(body?.mime_type) ?? 'application/octet-stream';
      base.media = { mimetype, ...(type === 'document' && str(body?.filename) && { filename: str(body?.filename) }) };
      const caption = str(body?.caption);
      if (caption && type !== 'audio' && type !== 'sticker') base.caption = caption;
      if (type === 'audio') base.ptt = body?.voice === true;
      const mediaId = str(body?.id);
      if (mediaId) result.mediaId = mediaId;
      break;
    }
    case 'location':
      base.type = 'location';
      base.location = {
        latitude: num(body?.latitude) ?? 0,
        longitude: num(body?.longitude) ?? 0,
        ...(str(body?.name) && { name: str(body?.name) }),
        ...(str(body?.address) && { address: str(body?.address) }),
      };
      break;
    case 'contacts': {
      base.type = 'contact';
      const first = obj(Array.isArray(m.contacts) ? m.contacts[0] : undefined);
      const name = obj(first?.name);
      const phones = Array.isArray(first?.phones) ? first.phones.map(obj) : [];
      const waId = phones.map((p) => str(p?.wa_id)).find(Boolean);
      const phoneDigits = phones.map((p) => str(p?.phone)?.replace(/\D/g, '')).find(Boolean);
      const formatted = str(name?.formatted_name) ?? [str(name?.first_name), str(name?.last_name)].filter(Boolean).join(' ');
      base.contact = { name: formatted || waId || phoneDigits || 'unknown', ...((waId ?? phoneDigits) && { phone: waId ?? phoneDigits }) };
      break;
    }
    case 'reaction': {
      base.type = 'reaction';
      base.emoji = str(body?.emoji) ?? '';
      const target = str(body?.message_id);
      if (target) {
        base.target = { id: target, chat: from, fromMe: false };
        result.reactionTarget = target;
      }
      break;
    }
    case 'interactive': {
      const kind = str(body?.type);
      const reply = obj(kind ? body?.[kind] : undefined);
      const title = str(reply?.title);
      if ((kind === 'button_reply' || kind === 'list_reply') && title !== undefined) {
        base.type = 'button';
        base.button = { ...(str(reply?.id) && { id: str(reply?.id) }), title };
      } else {
        base.text = `interactive${kind ? `:${kind}` : ''}`;
      }
      break;
    }
    case 'button': {
      // A template's quick reply button: its payload is the id the template defined.
      base.type = 'button';
      const payload = str(body?.payload);
      base.button = { ...(payload && { id: payload }), title: str(body?.text) ?? payload ?? '' };
      break;
    }
    default: {
      const errors = Array.isArray(m.errors) ? m.errors.map(obj) : [];
      const title = str(errors[0]?.title) ?? str(errors[0]?.message);
      base.text = title ? `${type}: ${title}` : type;
    }
  }
  return result;
}
