import { describe, expect, test } from 'bun:test';
import type { SendArgs } from '../../../protocol/frames';
import { ProviderError } from '../types';
import { buildMessage, defaultFilename, readReceipt, uploadForm } from './outbound';

const BASE = { messaging_product: 'whatsapp', recipient_type: 'individual', to: '15550002222' };
const send = (a: Record<string, unknown>) => ({ messageId: 'm-1', to: '15550002222', ...a }) as SendArgs;

describe('waba outbound payloads (Cloud API messages reference)', () => {
  test('text with preview_url, and a reply carries context.message_id', () => {
    expect(buildMessage(send({ type: 'text', text: 'see https://example.com', previewUrl: true }))).toEqual({
      ...BASE,
      type: 'text',
      text: { body: 'see https://example.com', preview_url: true },
    });
    expect(buildMessage(send({ type: 'text', text: 'hi', replyTo: { id: 'wamid.Q', chat: '15550002222', fromMe: false } }))).toEqual({
      ...BASE,
      type: 'text',
      text: { body: 'hi', preview_url: false },
      context: { message_id: 'wamid.Q' },
    });
  });

  test('media by link or uploaded id; caption except audio/sticker; document filename; ptt is not sent', () => {
    const media = { url: 'https://cdn.example.com/a.jpg', mimetype: 'image/jpeg' };
    expect(buildMessage(send({ type: 'image', media, caption: 'look' }), { link: media.url })).toEqual({
      ...BASE,
      type: 'image',
      image: { link: media.url, caption: 'look' },
    });
    expect(buildMessage(send({ type: 'document', media: { data: 'AA==', mimetype: 'application/pdf', filename: 'r.pdf' }, caption: 'c' }), { id: '77' })).toEqual({
      ...BASE,
      type: 'document',
      document: { id: '77', caption: 'c', filename: 'r.pdf' },
    });
    expect(buildMessage(send({ type: 'audio', media: { data: 'AA==', mimetype: 'audio/ogg' }, ptt: true }), { id: '78' })).toEqual({
      ...BASE,
      type: 'audio',
      audio: { id: '78' },
    });
    expect(buildMessage(send({ type: 'sticker', media: { data: 'AA==', mimetype: 'image/webp' } }), { id: '79' })).toEqual({ ...BASE, type: 'sticker', sticker: { id: '79' } });
    expect(buildMessage(send({ type: 'video', media: { data: 'AA==', mimetype: 'video/mp4' } }), { id: '80' })).toEqual({ ...BASE, type: 'video', video: { id: '80' } });
  });

  test('location, contact (contacts with +phone, wa_id, CELL), reaction (no context)', () => {
    expect(buildMessage(send({ type: 'location', location: { latitude: 1.5, longitude: -2, name: 'HQ' } }))).toEqual({
      ...BASE,
      type: 'location',
      location: { latitude: 1.5, longitude: -2, name: 'HQ' },
    });
    expect(buildMessage(send({ type: 'contact', contact: { name: 'Ana Maria', phone: '5511999990000' } }))).toEqual({
      ...BASE,
      type: 'contacts',
      contacts: [{ name: { formatted_name: 'Ana Maria', first_name: 'Ana' }, phones: [{ phone: '+5511999990000', wa_id: '5511999990000', type: 'CELL' }] }],
    });
    expect(
      buildMessage(send({ type: 'reaction', target: { id: 'wamid.T', chat: '15550002222', fromMe: false }, emoji: '' , replyTo: { id: 'x', chat: '15550002222', fromMe: false } })),
    ).toEqual({ ...BASE, type: 'reaction', reaction: { message_id: 'wamid.T', emoji: '' } });
  });

  test('template with its language code and components passed through', () => {
    const components = [{ type: 'body', parameters: [{ type: 'text', text: 'Ana' }] }];
    expect(buildMessage(send({ type: 'template', template: { name: 'order_update', language: 'pt_BR', components } }))).toEqual({
      ...BASE,
      type: 'template',
      template: { name: 'order_update', language: { code: 'pt_BR' }, components },
    });
  });

  test('interactive buttons and list', () => {
    expect(
      buildMessage(send({ type: 'interactive', interactive: { kind: 'buttons', header: 'H', body: 'B', footer: 'F', buttons: [{ id: 'y', title: 'Yes' }] } })),
    ).toEqual({
      ...BASE,
      type: 'interactive',
      interactive: {
        type: 'button',
        header: { type: 'text', text: 'H' },
        body: { text: 'B' },
        footer: { text: 'F' },
        action: { buttons: [{ type: 'reply', reply: { id: 'y', title: 'Yes' } }] },
      },
    });
    expect(
      buildMessage(
        send({ type: 'interactive', interactive: { kind: 'list', body: 'Pick', button: 'Menu', sections: [{ title: 'S', rows: [{ id: 'r1', title: 'One', description: 'd' }] }] } }),
      ),
    ).toEqual({
      ...BASE,
      type: 'interactive',
      interactive: { type: 'list', body: { text: 'Pick' }, action: { button: 'Menu', sections: [{ title: 'S', rows: [{ id: 'r1', title: 'One', description: 'd' }] }] } },
    });
  });

  test('edit and revoke are refused as unsupported_command', () => {
    for (const a of [{ type: 'edit', target: { id: 'w', chat: '15550002222', fromMe: true }, text: 'x' }, { type: 'revoke', target: { id: 'w', chat: '15550002222', fromMe: true } }]) {
      let err: unknown;
      try {
        buildMessage(send(a));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ProviderError);
      expect((err as ProviderError).code).toBe('unsupported_command');
      expect((err as ProviderError).message).toContain('waba');
    }
  });

  test('read receipt and upload form', async () => {
    expect(readReceipt('wamid.R')).toEqual({ messaging_product: 'whatsapp', status: 'read', message_id: 'wamid.R' });
    const form = uploadForm(new Uint8Array([1, 2, 3]), 'image/png', 'x.png');
    expect(form.get('messaging_product')).toBe('whatsapp');
    expect(form.get('type')).toBe('image/png');
    const file = form.get('file') as File;
    expect(file.name).toBe('x.png');
    expect(file.type).toBe('image/png');
    expect(new Uint8Array(await file.arrayBuffer())).toEqual(new Uint8Array([1, 2, 3]));
    expect(defaultFilename('image', 'image/jpeg')).toBe('image.jpg');
    expect(defaultFilename('audio', 'audio/ogg; codecs=opus')).toBe('audio.ogg');
  });
});
