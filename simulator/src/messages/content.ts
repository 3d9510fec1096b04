/**
 * Message content, both ways, as the `proto.Message` protobuf (Baileys'
 * `proto`, the same schema as whatsmeow's waE2E):
 * - `parseOutgoing` checks a control-API body (`POST /phones/{phone}/messages`);
 * - `buildMessage` turns it into the proto.Message a phone sends;
 * - `readMessage` turns a decrypted proto.Message into what the phone keeps
 *   (unwrapping DeviceSentMessage, edits and ephemeral wrappers).
 */
import { proto } from 'baileys';
import { SimulatorError } from '../errors';
import { MEDIA_KINDS, type MediaKind } from '../media/keys';
import { normalizePhone } from '../state';

export const MESSAGE_TYPES = ['text', 'image', 'video', 'audio', 'document', 'sticker', 'location', 'contact', 'reaction', 'edit', 'revoke'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

export interface Location {
  latitude: number;
  longitude: number;
  name?: string;
  address?: string;
}

/** A checked `POST /phones/{phone}/messages` body. */
export interface Outgoing {
  to: string;
  type: MessageType;
  text?: string;
  caption?: string;
  ptt?: boolean;
  media?: { bytes: Buffer; mimetype: string; filename?: string };
  location?: Location;
  contact?: { name: string; phone: string };
  reaction?: { targetId: string; emoji: string };
  edit?: { targetId: string; text: string };
  revoke?: { targetId: string };
  /** The id of a message in this chat to quote. */
  replyTo?: string;
}

/** What a phone keeps of a message it received (or, with fromMe, one its own linked device sent). */
export interface ReceivedContent {
  type: MessageType | 'protocol' | 'unknown';
  text?: string;
  caption?: string;
  ptt?: boolean;
  media?: { mimetype: string; size: number; sha256: string | null; filename?: string; error?: string };
  location?: Location;
  contact?: { name: string; vcard: string; phone?: string };
  reaction?: { targetId: string; emoji: string; fromMe: boolean };
  edit?: { targetId: string; text: string };
  revoke?: { targetId: string };
  replyTo?: { id: string; participant?: string };
  /** A DeviceSentMessage: the account's own device sent this to `to`. */
  fromMe?: boolean;
  to?: string;
}

const bad = (field: string, msg: string) => new SimulatorError(400, 'invalid_field', `${field} ${msg}`);
const str = (v: unknown, field: string, opts: { optional?: boolean; empty?: boolean } = {}): string | undefined => {
  if (v === undefined && opts.optional) return undefined;
  if (typeof v !== 'string' || (!opts.empty && !v)) throw bad(field, opts.empty ? 'must be a string' : 'must be a non-empty string');
  return v;
};
const obj = (v: unknown, field: string): Record<string, unknown> => {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw bad(field, 'must be an object');
  return v as Record<string, unknown>;
};

/** Checks a send body; 400 naming the field otherwise. */
export function parseOutgoing(b: Record<string, unknown>): Outgoing {
  const to = normalizePhone(b.to);
  if (!to) throw new SimulatorError(400, 'invalid_phone', 'to must be a phone number (7 to 15 digits, optional +)');
  const type = b.type as MessageType;
  if (!MESSAGE_TYPES.includes(type)) throw bad('type', `must be one of ${MESSAGE_TYPES.join(', ')}`);
  const out: Outgoing = { to, type, replyTo: str(b.replyTo, 'replyTo', { optional: true }) };
  if (type === 'text') out.text = str(b.text, 'text');
  if ((MEDIA_KINDS as readonly string[]).includes(type)) {
    const m = obj(b.media, 'media');
    const base64 = str(m.base64, 'media.base64')!;
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64)) throw bad('media.base64', 'must be base64');
    const bytes = Buffer.from(base64, 'base64');
    if (!bytes.length) throw bad('media.base64', 'must not be empty');
    out.media = { bytes, mimetype: str(m.mimetype, 'media.mimetype')!, filename: str(m.filename, 'media.filename', { optional: true }) };
    out.caption = str(b.caption, 'caption', { optional: true, empty: true });
    if (b.ptt !== undefined && typeof b.ptt !== 'boolean') throw bad('ptt', 'must be a boolean');
    out.ptt = b.ptt === true;
  }
  if (type === 'location') {
    const l = obj(b.location, 'location');
    if (typeof l.latitude !== 'number' || Math.abs(l.latitude) > 90) throw bad('location.latitude', 'must be a number from -90 to 90');
    if (typeof l.longitude !== 'number' || Math.abs(l.longitude) > 180) throw bad('location.longitude', 'must be a number from -180 to 180');
    out.location = { latitude: l.latitude, longitude: l.longitude, name: str(l.name, 'location.name', { optional: true }), address: str(l.address, 'location.address', { optional: true }) };
  }
  if (type === 'contact') {
    const c = obj(b.contact, 'contact');
    const phone = normalizePhone(c.phone);
    if (!phone) throw bad('contact.phone', 'must be a phone number');
    out.contact = { name: str(c.name, 'contact.name')!, phone };
  }
  if (type === 'reaction') {
    const r = obj(b.reaction, 'reaction');
    out.reaction = { targetId: str(r.targetId, 'reaction.targetId')!, emoji: str(r.emoji, 'reaction.emoji', { empty: true })! };
  }
  if (type === 'edit') {
    const e = obj(b.edit, 'edit');
    out.edit = { targetId: str(e.targetId, 'edit.targetId')!, text: str(e.text, 'edit.text')! };
  }
  if (type === 'revoke') out.revoke = { targetId: str(obj(b.revoke, 'revoke').targetId, 'revoke.targetId')! };
  return out;
}

/** Media a phone uploaded for a message: what the proto's media fields need. */
export interface UploadedMedia {
  url: string;
  directPath: string;
  mediaKey: Buffer;
  fileSha256: Buffer;
  fileEncSha256: Buffer;
  fileLength: number;
}

/** Who a quoted or targeted message belongs to, from the sending phone's point of view. */
export interface MessageRefs {
  /** The other party's JID (the chat). */
  chat: string;
  /** The sending phone's own JID. */
  self: string;
  /** True when the phone sent that id itself, false when it received it, undefined when unknown. */
  fromMe(id: string): boolean | undefined;
}

const vcard = (name: string, phone: string) => `BEGIN:VCARD\nVERSION:3.0\nFN:${name}\nTEL;type=CELL;type=VOICE;waid=${phone}:+${phone}\nEND:VCARD`;

/** The proto.Message for an outgoing message; media must be uploaded already. 422 when a target is unknown. */
export function buildMessage(out: Outgoing, refs: MessageRefs, media?: UploadedMedia): proto.IMessage {
  const key = (id: string, mustBeMine: boolean) => {
    const fromMe = refs.fromMe(id);
    if (fromMe === undefined) throw new SimulatorError(422, 'unknown_target', `message ${id} is not in this chat`);
    if (mustBeMine && !fromMe) throw new SimulatorError(422, 'not_own_message', `message ${id} was not sent by this phone`);
    return { remoteJid: refs.chat, fromMe, id };
  };
  let contextInfo: proto.IContextInfo | undefined;
  if (out.replyTo) {
    const k = key(out.replyTo, false);
    contextInfo = { stanzaId: k.id, participant: k.fromMe ? refs.self : refs.chat, quotedMessage: { conversation: '' } };
  }
  const mediaFields = () => ({
    url: media!.url,
    directPath: media!.directPath,
    mediaKey: media!.mediaKey,
    fileSha256: media!.fileSha256,
    fileEncSha256: media!.fileEncSha256,
    fileLength: media!.fileLength,
    mimetype: out.media!.mimetype,
    mediaKeyTimestamp: Math.floor(Date.now() / 1000),
    contextInfo,
  });
  switch (out.type) {
    case 'text':
      return contextInfo ? { extendedTextMessage: { text: out.text, contextInfo } } : { conversation: out.text };
    case 'image':
      return { imageMessage: { ...mediaFields(), caption: out.caption || undefined } };
    case 'video':
      return { videoMessage: { ...mediaFields(), caption: out.caption || undefined } };
    case 'audio':
      return { audioMessage: { ...mediaFields(), ptt: out.ptt } };
    case 'document': {
      const name = out.media!.filename ?? 'document';
      return { documentMessage: { ...mediaFields(), fileName: name, title: name, caption: out.caption || undefined } };
    }
    case 'sticker':
      return { stickerMessage: mediaFields() };
    case 'location':
      return { locationMessage: { degreesLatitude: out.location!.latitude, degreesLongitude: out.location!.longitude, name: out.location!.name, address: out.location!.address, contextInfo } };
    case 'contact':
      return { contactMessage: { displayName: out.contact!.name, vcard: vcard(out.contact!.name, out.contact!.phone), contextInfo } };
    case 'reaction':
      return { reactionMessage: { key: key(out.reaction!.targetId, false), text: out.reaction!.emoji, senderTimestampMs: Date.now() } };
    case 'edit':
      return {
        editedMessage: {
          message: {
            protocolMessage: {
              type: proto.Message.ProtocolMessage.Type.MESSAGE_EDIT,
              key: key(out.edit!.targetId, true),
              editedMessage: { conversation: out.edit!.text },
              timestampMs: Date.now(),
            },
          },
        },
      };
    case 'revoke':
      return { protocolMessage: { type: proto.Message.ProtocolMessage.Type.REVOKE, key: key(out.revoke!.targetId, true) } };
  }
}

/** The stanza `type` attribute for a message (whatsmeow getTypeFromMessage). */
export function stanzaType(m: proto.IMessage): string {
  if (m.reactionMessage) return 'reaction';
  if (m.imageMessage || m.videoMessage || m.audioMessage || m.documentMessage || m.stickerMessage || m.locationMessage || m.contactMessage) return 'media';
  return 'text';
}

/** The `mediatype` attribute of `<enc>` for media messages, if any. */
export function encMediaType(m: proto.IMessage): string | undefined {
  if (m.imageMessage) return 'image';
  if (m.videoMessage) return 'video';
  if (m.audioMessage) return m.audioMessage.ptt ? 'ptt' : 'audio';
  if (m.documentMessage) return 'document';
  if (m.stickerMessage) return 'sticker';
  if (m.locationMessage) return 'location';
  if (m.contactMessage) return 'vcard';
  return undefined;
}

/** Media to fetch and decrypt: which kind, and the fields of the proto's media message. */
export interface MediaRef {
  kind: MediaKind;
  url?: string | null;
  directPath?: string | null;
  mediaKey?: Uint8Array | null;
  fileSha256?: Uint8Array | null;
  fileEncSha256?: Uint8Array | null;
  fileLength?: number | Long | null;
  mimetype?: string | null;
}
type Long = { toNumber(): number };
const num = (v: number | Long | null | undefined): number => (v === null || v === undefined ? 0 : typeof v === 'number' ? v : v.toNumber());

/**
 * What the phone keeps of a decrypted message. `fetchMedia` downloads and
 * decrypts media (it returns the plaintext or throws).
 */
export function readMessage(raw: proto.IMessage, fetchMedia: (ref: MediaRef) => Buffer): ReceivedContent {
  let m = raw;
  const out: Partial<ReceivedContent> = {};
  if (m.deviceSentMessage?.message) {
    out.fromMe = true;
    out.to = m.deviceSentMessage.destinationJid ?? undefined;
    m = m.deviceSentMessage.message;
  }
  if (m.ephemeralMessage?.message) m = m.ephemeralMessage.message;
  if (m.editedMessage?.message) m = m.editedMessage.message;
  const media = (kind: MediaKind, x: Omit<MediaRef, 'kind'> & { contextInfo?: proto.IContextInfo | null }, extra: { filename?: string } = {}) => {
    const size = num(x.fileLength);
    try {
      const plain = fetchMedia({ ...x, kind });
      out.media = { mimetype: x.mimetype ?? '', size: plain.length, sha256: new Bun.CryptoHasher('sha256').update(plain).digest('hex'), ...extra };
    } catch (err) {
      out.media = { mimetype: x.mimetype ?? '', size, sha256: null, ...extra, error: err instanceof Error ? err.message : String(err) };
    }
    return x.contextInfo;
  };
  let ctx: proto.IContextInfo | null | undefined;
  if (typeof m.conversation === 'string') {
    out.type = 'text';
    out.text = m.conversation;
  } else if (m.extendedTextMessage) {
    out.type = 'text';
    out.text = m.extendedTextMessage.text ?? '';
    ctx = m.extendedTextMessage.contextInfo;
  } else if (m.imageMessage) {
    out.type = 'image';
    out.caption = m.imageMessage.caption ?? undefined;
    ctx = media('image', m.imageMessage);
  } else if (m.videoMessage) {
    out.type = 'video';
    out.caption = m.videoMessage.caption ?? undefined;
    ctx = media('video', m.videoMessage);
  } else if (m.audioMessage) {
    out.type = 'audio';
    out.ptt = Boolean(m.audioMessage.ptt);
    ctx = media('audio', m.audioMessage);
  } else if (m.documentMessage) {
    out.type = 'document';
    out.caption = m.documentMessage.caption ?? undefined;
    ctx = media('document', m.documentMessage, { filename: m.documentMessage.fileName ?? undefined });
  } else if (m.stickerMessage) {
    out.type = 'sticker';
    ctx = media('sticker', m.stickerMessage);
  } else if (m.locationMessage) {
    const l = m.locationMessage;
    out.type = 'location';
    out.location = { latitude: l.degreesLatitude ?? 0, longitude: l.degreesLongitude ?? 0, name: l.name ?? undefined, address: l.address ?? undefined };
    ctx = l.contextInfo;
  } else if (m.contactMessage) {
    const c = m.contactMessage;
    const v = c.vcard ?? '';
    out.type = 'contact';
    out.contact = { name: c.displayName ?? '', vcard: v, phone: /waid=(\d+)/.exec(v)?.[1] };
    ctx = c.contextInfo;
  } else if (m.reactionMessage) {
    out.type = 'reaction';
    out.reaction = { targetId: m.reactionMessage.key?.id ?? '', emoji: m.reactionMessage.text ?? '', fromMe: Boolean(m.reactionMessage.key?.fromMe) };
  } else if (m.protocolMessage) {
    const p = m.protocolMessage;
    if (p.type === proto.Message.ProtocolMessage.Type.MESSAGE_EDIT) {
      const e = p.editedMessage;
      out.type = 'edit';
      out.edit = { targetId: p.key?.id ?? '', text: e?.conversation ?? e?.extendedTextMessage?.text ?? '' };
    } else if (p.type === proto.Message.ProtocolMessage.Type.REVOKE) {
      out.type = 'revoke';
      out.revoke = { targetId: p.key?.id ?? '' };
    } else {
      out.type = 'protocol';
    }
  } else if (m.senderKeyDistributionMessage || m.messageContextInfo) {
    out.type = 'protocol';
  } else {
    out.type = 'unknown';
  }
  if (ctx?.stanzaId) out.replyTo = { id: ctx.stanzaId, participant: ctx.participant ?? undefined };
  return out as ReceivedContent;
}
