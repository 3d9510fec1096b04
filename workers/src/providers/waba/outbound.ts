/**
 * Send arguments → the Cloud API's `POST /{phone-number-id}/messages` body,
 * as Meta's "Messages" reference documents it
 * (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages):
 * `{messaging_product: "whatsapp", recipient_type: "individual", to, type,
 * <type>: {...}, context?: {message_id}}`. Pure: the provider uploads media
 * first and passes the resulting `{id}` (or `{link}` for a URL).
 *
 * `audio.ptt` is not sent: the Cloud API has no such field, it shows an
 * OGG/Opus upload as a voice message by itself.
 */
import type { SendArgs } from '../../../protocol/frames';
import { ProviderError } from '../types';

export type MediaRef = { id: string } | { link: string };

type MediaSendType = 'image' | 'video' | 'audio' | 'document' | 'sticker';
const MEDIA_TYPES: readonly string[] = ['image', 'video', 'audio', 'document', 'sticker'];

export function isMediaSend(args: SendArgs): args is Extract<SendArgs, { type: MediaSendType }> {
  return MEDIA_TYPES.includes(args.type);
}

/** The send types the Cloud API has no equivalent for. */
export const UNSUPPORTED_SEND_TYPES = ['edit', 'revoke'] as const;

export function buildMessage(args: SendArgs, media?: MediaRef): Record<string, unknown> {
  const base: Record<string, unknown> = { messaging_product: 'whatsapp', recipient_type: 'individual', to: args.to, type: args.type };
  if (args.replyTo) base.context = { message_id: args.replyTo.id };
  switch (args.type) {
    case 'text':
      return { ...base, text: { body: args.text, preview_url: args.previewUrl ?? false } };
    case 'image':
    case 'video':
    case 'document': {
      const ref = requireMedia(media);
      const body: Record<string, unknown> = { ...ref };
      if (args.caption) body.caption = args.caption;
      if (args.type === 'document' && args.media.filename) body.filename = args.media.filename;
      return { ...base, [args.type]: body };
    }
    case 'audio':
    case 'sticker':
      return { ...base, [args.type]: { ...requireMedia(media) } };
    case 'location': {
      const { latitude, longitude, name, address } = args.location;
      return { ...base, location: { latitude, longitude, ...(name && { name }), ...(address && { address }) } };
    }
    case 'contact': {
      const { name, phone } = args.contact;
      return {
        ...base,
        type: 'contacts',
        contacts: [{ name: { formatted_name: name, first_name: firstName(name) }, phones: [{ phone: `+${phone}`, wa_id: phone, type: 'CELL' }] }],
      };
    }
    case 'reaction':
      // A reaction cannot quote: the target is the message reacted to.
      delete base.context;
      return { ...base, reaction: { message_id: args.target.id, emoji: args.emoji } };
    case 'template': {
      // `language.policy` ("deterministic", the only value) is optional and left out, as in Meta's current examples.
      const { name, language, components } = args.template;
      return { ...base, template: { name, language: { code: language }, ...(components && { components }) } };
    }
    case 'interactive':
      return { ...base, interactive: buildInteractive(args.interactive) };
    case 'edit':
    case 'revoke':
      throw new ProviderError('unsupported_command', `the waba provider does not support ${args.type} messages: the Cloud API cannot ${args.type} a sent message`);
    default: {
      const unknown: never = args;
      throw new ProviderError('unsupported_command', `the waba provider does not support send type ${JSON.stringify((unknown as { type: string }).type)}`);
    }
  }
}

function buildInteractive(i: Extract<SendArgs, { type: 'interactive' }>['interactive']): Record<string, unknown> {
  const common: Record<string, unknown> = {
    ...(i.header && { header: { type: 'text', text: i.header } }),
    body: { text: i.body },
    ...(i.footer && { footer: { text: i.footer } }),
  };
  if (i.kind === 'buttons') {
    return { type: 'button', ...common, action: { buttons: i.buttons.map((b) => ({ type: 'reply', reply: { id: b.id, title: b.title } })) } };
  }
  return {
    type: 'list',
    ...common,
    action: {
      button: i.button,
      sections: i.sections.map((s) => ({
        ...(s.title && { title: s.title }),
        rows: s.rows.map((r) => ({ id: r.id, title: r.title, ...(r.description && { description: r.description }) })),
      })),
    },
  };
}

/** `POST /{phone-number-id}/messages` marking one received message read. */
export function readReceipt(messageId: string): Record<string, unknown> {
  return { messaging_product: 'whatsapp', status: 'read', message_id: messageId };
}

/** The multipart body of `POST /{phone-number-id}/media`: file (with type and name), type, messaging_product. */
export function uploadForm(bytes: Uint8Array, mimetype: string, filename: string): FormData {
  const form = new FormData();
  form.append('messaging_product', 'whatsapp');
  form.append('type', mimetype);
  form.append('file', new Blob([bytes], { type: mimetype }), filename);
  return form;
}

/** A file name for an upload without one: `<type>.<extension from the MIME type>`. */
export function defaultFilename(type: string, mimetype: string): string {
  const sub = mimetype.split(';')[0]!.split('/')[1] ?? 'bin';
  const ext = { jpeg: 'jpg', mpeg: 'mp3', 'vnd.openxmlformats-officedocument.wordprocessingml.document': 'docx' }[sub] ?? sub.replace(/[^a-z0-9]/gi, '').slice(0, 8);
  return `${type}.${ext || 'bin'}`;
}

function requireMedia(media: MediaRef | undefined): MediaRef {
  if (!media) throw new ProviderError('invalid_args', '/media: needs data or url');
  return media;
}

function firstName(name: string): string {
  return name.trim().split(/\s+/)[0] ?? name;
}
