/**
 * The protocol's messages ↔ Baileys: send arguments → the content and
 * options of `sock.sendMessage`, and a received WAMessage → the protocol's
 * received shape. Pure functions (media bytes are loaded and downloaded by
 * the provider).
 */
import {
  isJidBroadcast,
  isJidGroup,
  isJidNewsletter,
  isJidStatusBroadcast,
  isLidUser,
  jidDecode,
  normalizeMessageContent,
  proto,
  type AnyMessageContent,
  type MiscMessageGenerationOptions,
  type WAMessage,
  type WAMessageKey,
} from 'baileys';
import { ProviderError } from '../types';
import type { CommandArgs, MessageRef, ReceivedMessage } from '../../../protocol/frames';

type SendArgs = CommandArgs<'send'>;

/** A phone (digits) → its WhatsApp user JID. */
export function phoneJid(phone: string): string {
  return `${phone}@s.whatsapp.net`;
}

/** The phone of a user JID (`4915…:3@s.whatsapp.net` → `4915…`); undefined for LIDs, groups and the like. */
export function jidPhone(jid: string | null | undefined): string | undefined {
  if (!jid) return undefined;
  const decoded = jidDecode(jid);
  if (!decoded || decoded.server !== 's.whatsapp.net' || !/^\d+$/.test(decoded.user)) return undefined;
  return decoded.user;
}

/** The Baileys key of a message the gateway refers to (1:1 chats only). */
export function messageKey(ref: MessageRef): WAMessageKey {
  return { remoteJid: phoneJid(ref.chat), id: ref.id, fromMe: ref.fromMe };
}

const vcard = (name: string, phone: string) =>
  `BEGIN:VCARD\nVERSION:3.0\nFN:${name.replace(/\n/g, ' ')}\nTEL;type=CELL;type=VOICE;waid=${phone}:+${phone}\nEND:VCARD`;

export interface BuiltSend {
  jid: string;
  content: AnyMessageContent;
  options: MiscMessageGenerationOptions;
}

export const MEDIA_SEND_TYPES = ['image', 'video', 'audio', 'document', 'sticker'] as const;
export type MediaSendType = (typeof MEDIA_SEND_TYPES)[number];
export const isMediaSend = (args: SendArgs): args is Extract<SendArgs, { media: unknown }> =>
  (MEDIA_SEND_TYPES as readonly string[]).includes(args.type);

/**
 * What `sock.sendMessage(jid, content, options)` gets for a send. `media`
 * holds the bytes for the media types. The WhatsApp id is chosen by the
 * caller (`options.messageId`), so a redelivered send reuses it.
 */
export function buildSend(args: SendArgs, waId: string, media?: Buffer): BuiltSend {
  const jid = phoneJid(args.to);
  const options: MiscMessageGenerationOptions = { messageId: waId };
  if (args.replyTo) {
    // The quoted message's text is not known here; WhatsApp shows the original from the recipient's own copy.
    options.quoted = { key: messageKey(args.replyTo), message: { conversation: '' } } as WAMessage;
  }
  const needMedia = (): Buffer => {
    if (!media) throw new Error(`a ${args.type} message needs its media bytes`);
    return media;
  };
  let content: AnyMessageContent;
  switch (args.type) {
    case 'text':
      content = { text: args.text };
      break;
    case 'image':
      content = { image: needMedia(), mimetype: args.media.mimetype, ...(args.caption ? { caption: args.caption } : {}) };
      break;
    case 'video':
      content = { video: needMedia(), mimetype: args.media.mimetype, ...(args.caption ? { caption: args.caption } : {}) };
      break;
    case 'audio':
      content = { audio: needMedia(), mimetype: args.media.mimetype, ptt: args.ptt === true };
      break;
    case 'document':
      content = {
        document: needMedia(),
        mimetype: args.media.mimetype,
        fileName: args.media.filename ?? 'document',
        ...(args.caption ? { caption: args.caption } : {}),
      };
      break;
    case 'sticker':
      content = { sticker: needMedia(), mimetype: args.media.mimetype };
      break;
    case 'location':
      content = {
        location: {
          degreesLatitude: args.location.latitude,
          degreesLongitude: args.location.longitude,
          ...(args.location.name !== undefined && { name: args.location.name }),
          ...(args.location.address !== undefined && { address: args.location.address }),
        },
      };
      break;
    case 'contact':
      content = {
        contacts: {
          displayName: args.contact.name,
          contacts: [{ displayName: args.contact.name, vcard: vcard(args.contact.name, args.contact.phone) }],
        },
      };
      break;
    case 'reaction':
      content = { react: { text: args.emoji, key: messageKey(args.target) } };
      break;
    case 'edit':
      content = { text: args.text, edit: messageKey(args.target) };
      break;
    case 'revoke':
      content = { delete: messageKey(args.target) };
      break;
    case 'template':
    case 'interactive':
      throw new ProviderError('unsupported_command', `WhatsApp Web (baileys) cannot send ${args.type} messages; they are a Cloud API (waba) feature`);
  }
  return { jid, content, options };
}

/** Media of a received message: where Baileys keeps it and what it says about itself. */
export interface ReceivedMediaInfo {
  mimetype: string;
  filename?: string;
  size?: number;
}

export interface MappedReceived {
  message: ReceivedMessage;
  /** Set when the message carries media the provider should download. */
  media?: ReceivedMediaInfo;
}

/**
 * A message from WhatsApp → the protocol's received shape, or undefined for
 * what the gateway does not deliver: the number's own messages, groups,
 * broadcasts, status, newsletters, and protocol messages other than edits
 * and revokes (key distribution, history sync, app state…).
 * `ownPhone` tells quotes of the number's own messages apart.
 */
export function mapReceived(msg: WAMessage, ownPhone: string | undefined): MappedReceived | undefined {
  const key = msg.key;
  if (!key || key.fromMe || !key.id) return undefined;
  const remote = key.remoteJid ?? '';
  if (!remote || isJidGroup(remote) || isJidBroadcast(remote) || isJidStatusBroadcast(remote) || isJidNewsletter(remote)) return undefined;
  // With LID addressing the chat is a LID; the phone is in the alternate JID.
  const chatJid = isLidUser(remote) ? (key.remoteJidAlt ?? '') : remote;
  const from = jidPhone(chatJid);
  if (!from) return undefined;
  const content = normalizeMessageContent(msg.message);
  if (!content || Object.values(content).every((v) => v == null)) return undefined;
  const timestamp = toDate(msg.messageTimestamp).toISOString();
  const base = { id: key.id, from, chat: from, timestamp };
  // A key inside a message the peer sent is from the peer's point of view, so fromMe flips. (The provider
  // corrects it from its own records of what it sent: Baileys may already have flipped it.)
  const peerRef = (k: proto.IMessageKey | null | undefined): MessageRef | undefined =>
    k?.id ? { id: k.id, chat: from, fromMe: !k.fromMe } : undefined;
  const replyTo = quoteRef(content, from, ownPhone);
  const withReply = <T extends object>(m: T) => (replyTo ? { ...m, replyTo } : m);

  if (content.protocolMessage) {
    const p = content.protocolMessage;
    if (p.type === proto.Message.ProtocolMessage.Type.REVOKE) {
      const target = peerRef(p.key);
      return target ? { message: { ...base, type: 'revoke', target } } : undefined;
    }
    if (p.type === proto.Message.ProtocolMessage.Type.MESSAGE_EDIT) {
      const target = peerRef(p.key);
      const edited = normalizeMessageContent(p.editedMessage);
      const text = edited?.conversation ?? edited?.extendedTextMessage?.text ?? undefined;
      return target && text ? { message: { ...base, type: 'edit', target, text } } : undefined;
    }
    return undefined;
  }
  if (content.reactionMessage) {
    const target = peerRef(content.reactionMessage.key);
    if (!target) return undefined;
    return { message: { ...base, type: 'reaction', emoji: content.reactionMessage.text ?? '', target } };
  }
  if (typeof content.conversation === 'string' && content.conversation !== '') {
    return { message: withReply({ ...base, type: 'text' as const, text: content.conversation }) };
  }
  if (content.extendedTextMessage?.text) {
    return { message: withReply({ ...base, type: 'text' as const, text: content.extendedTextMessage.text }) };
  }
  const media = (
    m: { mimetype?: string | null; fileLength?: unknown; caption?: string | null; fileName?: string | null },
    fallbackMime: string,
  ): ReceivedMediaInfo => {
    const size = m.fileLength == null ? undefined : Number(m.fileLength);
    return {
      mimetype: m.mimetype || fallbackMime,
      ...(m.fileName ? { filename: m.fileName } : {}),
      ...(size !== undefined && Number.isFinite(size) ? { size } : {}),
    };
  };
  const caption = (c: string | null | undefined) => (c ? { caption: c } : {});
  if (content.imageMessage) {
    const info = media(content.imageMessage, 'image/jpeg');
    return { message: withReply({ ...base, type: 'image' as const, ...caption(content.imageMessage.caption), media: info }), media: info };
  }
  if (content.videoMessage) {
    const info = media(content.videoMessage, 'video/mp4');
    return { message: withReply({ ...base, type: 'video' as const, ...caption(content.videoMessage.caption), media: info }), media: info };
  }
  if (content.audioMessage) {
    const info = media(content.audioMessage, 'audio/ogg');
    return { message: withReply({ ...base, type: 'audio' as const, ptt: Boolean(content.audioMessage.ptt), media: info }), media: info };
  }
  if (content.documentMessage) {
    const info = media(content.documentMessage, 'application/octet-stream');
    return { message: withReply({ ...base, type: 'document' as const, ...caption(content.documentMessage.caption), media: info }), media: info };
  }
  if (content.stickerMessage) {
    const info = media(content.stickerMessage, 'image/webp');
    return { message: withReply({ ...base, type: 'sticker' as const, media: info }), media: info };
  }
  if (content.locationMessage) {
    const l = content.locationMessage;
    return {
      message: withReply({
        ...base,
        type: 'location' as const,
        location: {
          latitude: l.degreesLatitude ?? 0,
          longitude: l.degreesLongitude ?? 0,
          ...(l.name ? { name: l.name } : {}),
          ...(l.address ? { address: l.address } : {}),
        },
      }),
    };
  }
  const contactMessage = content.contactMessage ?? content.contactsArrayMessage?.contacts?.[0];
  if (contactMessage) {
    const card = contactMessage.vcard ?? '';
    const phone = /waid=(\d+)/.exec(card)?.[1];
    return {
      message: withReply({
        ...base,
        type: 'contact' as const,
        contact: { name: contactMessage.displayName ?? '', ...(phone ? { phone } : {}), ...(card ? { vcard: card } : {}) },
      }),
    };
  }
  if (content.senderKeyDistributionMessage || content.messageContextInfo) {
    // Key distribution or context only: nothing for the user.
    const keys = Object.keys(content).filter((k) => content[k as keyof proto.IMessage] != null);
    if (keys.every((k) => k === 'senderKeyDistributionMessage' || k === 'messageContextInfo')) return undefined;
  }
  return { message: withReply({ ...base, type: 'unknown' as const }) };
}

/** The quoted message of a reply, as a MessageRef in this chat. */
function quoteRef(content: proto.IMessage, chat: string, ownPhone: string | undefined): MessageRef | undefined {
  for (const value of Object.values(content)) {
    const info = (value as { contextInfo?: proto.IContextInfo | null } | null)?.contextInfo;
    if (info?.stanzaId) {
      const participant = jidPhone(info.participant ?? undefined);
      return { id: info.stanzaId, chat, fromMe: ownPhone !== undefined && participant === ownPhone };
    }
  }
  return undefined;
}

function toDate(ts: WAMessage['messageTimestamp']): Date {
  const seconds = ts == null ? NaN : Number(ts);
  return Number.isFinite(seconds) && seconds > 0 ? new Date(seconds * 1000) : new Date();
}

/** proto.WebMessageInfo.Status → message.status; undefined for statuses before delivery. */
export function receiptStatus(status: number | null | undefined): 'delivered' | 'read' | undefined {
  if (status == null) return undefined;
  if (status === proto.WebMessageInfo.Status.DELIVERY_ACK) return 'delivered';
  if (status === proto.WebMessageInfo.Status.READ || status === proto.WebMessageInfo.Status.PLAYED) return 'read';
  return undefined;
}
