import { describe, expect, test } from 'bun:test';
import { Value } from '@sinclair/typebox/value';
import { ReceivedMessage } from '../../../protocol/frames';
import { mapValue } from './inbound';

const FROM = '5511988887777';
const msg = (extra: Record<string, unknown>) => ({ from: FROM, id: 'wamid.IN1', timestamp: '1750857384', ...extra });

describe('waba inbound mapping (webhook value → events)', () => {
  test('text: ids, chat, ISO timestamp; every mapped message fits the protocol schema', () => {
    const { messages } = mapValue({ messages: [msg({ type: 'text', text: { body: 'oi' } })] });
    expect(messages).toEqual([
      {
        eventId: 'waba:m:wamid.IN1',
        message: { id: 'wamid.IN1', from: FROM, chat: FROM, type: 'text', text: 'oi', timestamp: '2025-06-25T13:16:24.000Z' },
      },
    ]);
    expect(Value.Check(ReceivedMessage, messages[0]!.message)).toBe(true);
  });

  test('media: id to download, mimetype as given, caption, voice → ptt, document filename', () => {
    const { messages } = mapValue({
      messages: [
        msg({ id: 'w1', type: 'image', image: { id: 'M1', mime_type: 'image/jpeg', sha256: 'x', caption: 'c' } }),
        msg({ id: 'w2', type: 'audio', audio: { id: 'M2', mime_type: 'audio/ogg; codecs=opus', voice: true } }),
        msg({ id: 'w3', type: 'document', document: { id: 'M3', mime_type: 'application/pdf', filename: 'f.pdf', caption: 'doc' } }),
        msg({ id: 'w4', type: 'sticker', sticker: { id: 'M4', mime_type: 'image/webp', animated: false } }),
      ],
    });
    expect(messages.map((m) => [m.mediaId, m.message.type, m.message.media, m.message.caption, m.message.ptt])).toEqual([
      ['M1', 'image', { mimetype: 'image/jpeg' }, 'c', undefined],
      ['M2', 'audio', { mimetype: 'audio/ogg; codecs=opus' }, undefined, true],
      ['M3', 'document', { mimetype: 'application/pdf', filename: 'f.pdf' }, 'doc', undefined],
      ['M4', 'sticker', { mimetype: 'image/webp' }, undefined, undefined],
    ]);
    for (const m of messages) expect(Value.Check(ReceivedMessage, m.message)).toBe(true);
  });

  test('location, contacts, reaction (empty emoji = removed), context → replyTo', () => {
    const { messages } = mapValue({
      messages: [
        msg({ id: 'a', type: 'location', location: { latitude: -23.5, longitude: -46.6, name: 'SP', address: 'Av' } }),
        msg({ id: 'b', type: 'contacts', contacts: [{ name: { formatted_name: 'Ana M', first_name: 'Ana' }, phones: [{ phone: '+55 11 9999-0000', wa_id: '551199990000', type: 'CELL' }] }] }),
        msg({ id: 'c', type: 'reaction', reaction: { message_id: 'wamid.OUT', emoji: '👍' } }),
        msg({ id: 'd', type: 'reaction', reaction: { message_id: 'wamid.OUT' } }),
        msg({ id: 'e', type: 'text', text: { body: 'reply' }, context: { from: '15550001111', id: 'wamid.OURS' } }),
        msg({ id: 'f', type: 'text', text: { body: 'reply2' }, context: { from: FROM, id: 'wamid.THEIRS' } }),
      ],
    });
    expect(messages[0]!.message.location).toEqual({ latitude: -23.5, longitude: -46.6, name: 'SP', address: 'Av' });
    expect(messages[1]!.message).toMatchObject({ type: 'contact', contact: { name: 'Ana M', phone: '551199990000' } });
    expect(messages[2]!.message).toMatchObject({ type: 'reaction', emoji: '👍', target: { id: 'wamid.OUT', chat: FROM, fromMe: false } });
    expect(messages[2]!.reactionTarget).toBe('wamid.OUT');
    expect(messages[3]!.message.emoji).toBe('');
    expect(messages[4]!.message.replyTo).toEqual({ id: 'wamid.OURS', chat: FROM, fromMe: true });
    expect(messages[5]!.message.replyTo).toEqual({ id: 'wamid.THEIRS', chat: FROM, fromMe: false });
  });

  test('button replies, list replies and template quick replies become type button', () => {
    const { messages } = mapValue({
      messages: [
        msg({ id: 'a', type: 'interactive', interactive: { type: 'button_reply', button_reply: { id: 'yes', title: 'Yes' } } }),
        msg({ id: 'b', type: 'interactive', interactive: { type: 'list_reply', list_reply: { id: 'r1', title: 'One', description: 'd' } } }),
        msg({ id: 'c', type: 'button', button: { payload: 'STOP', text: 'Stop promotions' } }),
      ],
    });
    expect(messages.map((m) => [m.message.type, m.message.button])).toEqual([
      ['button', { id: 'yes', title: 'Yes' }],
      ['button', { id: 'r1', title: 'One' }],
      ['button', { id: 'STOP', title: 'Stop promotions' }],
    ]);
  });

  test('unsupported, unknown and system messages are kept as unknown with the raw type', () => {
    const { messages } = mapValue({
      messages: [
        msg({ id: 'a', type: 'unsupported', errors: [{ code: 131051, title: 'Message type unknown' }] }),
        msg({ id: 'b', type: 'order', order: {} }),
      ],
    });
    expect(messages.map((m) => [m.message.type, m.message.text])).toEqual([
      ['unknown', 'unsupported: Message type unknown'],
      ['unknown', 'order'],
    ]);
  });

  test('statuses: known ones kept with the first error; unknown statuses and malformed entries skipped', () => {
    const out = mapValue({
      statuses: [
        { id: 'wamid.S', status: 'delivered', timestamp: '1750857384', recipient_id: FROM },
        { id: 'wamid.S', status: 'failed', timestamp: '1750857385', errors: [{ code: 131026, title: 'Message Undeliverable', message: 'Message Undeliverable', error_data: { details: 'd' } }] },
        { id: 'wamid.S', status: 'deleted', timestamp: '1' },
        { status: 'read' },
      ],
      messages: [{ type: 'text' }],
    });
    expect(out.statuses).toEqual([
      { wamid: 'wamid.S', status: 'delivered', timestamp: '2025-06-25T13:16:24.000Z', recipient: FROM },
      { wamid: 'wamid.S', status: 'failed', timestamp: '2025-06-25T13:16:25.000Z', error: { code: 131026, title: 'Message Undeliverable', message: 'Message Undeliverable', details: 'd' } },
    ]);
    expect(out.messages).toEqual([]);
    expect(out.skipped).toHaveLength(3);
  });
});
