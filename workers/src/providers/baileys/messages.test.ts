import { describe, expect, test } from 'bun:test';
import { proto, type WAMessage } from 'baileys';
import type { CommandArgs } from '../../../protocol/frames';
import { buildSend, jidPhone, mapReceived, phoneJid, receiptStatus } from './messages';

type Send = CommandArgs<'send'>;
const to = '4915100000002';
const base = { messageId: 'msg_1', to };
const bytes = Buffer.from('media bytes');
const media = (mimetype: string, filename?: string) => ({ data: bytes.toString('base64'), mimetype, ...(filename ? { filename } : {}) });

describe('buildSend', () => {
  test('every send type → the content Baileys sends; the WhatsApp id is the one given', () => {
    const cases: [Send, unknown][] = [
      [{ ...base, type: 'text', text: 'hi' }, { text: 'hi' }],
      [{ ...base, type: 'image', media: media('image/png'), caption: 'c' }, { image: bytes, mimetype: 'image/png', caption: 'c' }],
      [{ ...base, type: 'video', media: media('video/mp4') }, { video: bytes, mimetype: 'video/mp4' }],
      [{ ...base, type: 'audio', media: media('audio/ogg') }, { audio: bytes, mimetype: 'audio/ogg', ptt: false }],
      [{ ...base, type: 'audio', media: media('audio/ogg'), ptt: true }, { audio: bytes, mimetype: 'audio/ogg', ptt: true }],
      [
        { ...base, type: 'document', media: media('application/pdf', 'plan.pdf'), caption: 'the plan' },
        { document: bytes, mimetype: 'application/pdf', fileName: 'plan.pdf', caption: 'the plan' },
      ],
      [{ ...base, type: 'sticker', media: media('image/webp') }, { sticker: bytes, mimetype: 'image/webp' }],
      [
        { ...base, type: 'location', location: { latitude: 52.5, longitude: 13.4, name: 'B', address: 'M' } },
        { location: { degreesLatitude: 52.5, degreesLongitude: 13.4, name: 'B', address: 'M' } },
      ],
      [
        { ...base, type: 'reaction', target: { id: 'W1', chat: to, fromMe: true }, emoji: '👍' },
        { react: { text: '👍', key: { remoteJid: `${to}@s.whatsapp.net`, id: 'W1', fromMe: true } } },
      ],
      [
        { ...base, type: 'reaction', target: { id: 'W1', chat: to, fromMe: false }, emoji: '' },
        { react: { text: '', key: { remoteJid: `${to}@s.whatsapp.net`, id: 'W1', fromMe: false } } },
      ],
      [
        { ...base, type: 'edit', target: { id: 'W1', chat: to, fromMe: true }, text: 'fixed' },
        { text: 'fixed', edit: { remoteJid: `${to}@s.whatsapp.net`, id: 'W1', fromMe: true } },
      ],
      [{ ...base, type: 'revoke', target: { id: 'W1', chat: to, fromMe: true } }, { delete: { remoteJid: `${to}@s.whatsapp.net`, id: 'W1', fromMe: true } }],
    ];
    for (const [args, content] of cases) {
      const built = buildSend(args, 'WAID1', 'media' in args ? bytes : undefined);
      expect(built.jid).toBe(`${to}@s.whatsapp.net`);
      expect(built.content).toEqual(content as never);
      expect(built.options).toEqual({ messageId: 'WAID1' });
    }
  });

  test('contact: a vCard with the waid, named', () => {
    const built = buildSend({ ...base, type: 'contact', contact: { name: 'Ann', phone: '4915100000042' } }, 'W');
    const contacts = (built.content as { contacts: { displayName: string; contacts: { vcard: string }[] } }).contacts;
    expect(contacts.displayName).toBe('Ann');
    expect(contacts.contacts[0]!.vcard).toContain('FN:Ann');
    expect(contacts.contacts[0]!.vcard).toContain('waid=4915100000042:+4915100000042');
  });

  test('replyTo on any type quotes the message by its key', () => {
    const built = buildSend({ ...base, type: 'location', location: { latitude: 1, longitude: 2 }, replyTo: { id: 'Q1', chat: to, fromMe: false } }, 'W');
    expect(built.options.quoted?.key).toEqual({ remoteJid: `${to}@s.whatsapp.net`, id: 'Q1', fromMe: false });
  });

  test('a media type without its bytes is a programming error, not a silent empty upload', () => {
    expect(() => buildSend({ ...base, type: 'image', media: media('image/png') }, 'W')).toThrow('media bytes');
  });
});

const peer = '4915100000003';
const own = '4915100000001';
const msg = (message: proto.IMessage, key: Partial<WAMessage['key']> = {}): WAMessage =>
  ({ key: { remoteJid: `${peer}@s.whatsapp.net`, id: 'IN1', fromMe: false, ...key }, message, messageTimestamp: 1_700_000_000 }) as WAMessage;

describe('mapReceived', () => {
  const common = { id: 'IN1', from: peer, chat: peer, timestamp: new Date(1_700_000_000_000).toISOString() };

  test('text (plain and extended), with the time from the message', () => {
    expect(mapReceived(msg({ conversation: 'hi' }), own)?.message).toEqual({ ...common, type: 'text', text: 'hi' });
    expect(mapReceived(msg({ extendedTextMessage: { text: 'long' } }), own)?.message).toEqual({ ...common, type: 'text', text: 'long' });
  });

  test('media types: caption, ptt, filename, size, and the media to download', () => {
    const image = mapReceived(msg({ imageMessage: { mimetype: 'image/png', caption: 'c', fileLength: 42 } }), own);
    expect(image).toEqual({
      message: { ...common, type: 'image', caption: 'c', media: { mimetype: 'image/png', size: 42 } },
      media: { mimetype: 'image/png', size: 42 },
    });
    expect(mapReceived(msg({ audioMessage: { mimetype: 'audio/ogg', ptt: true } }), own)?.message).toMatchObject({ type: 'audio', ptt: true });
    expect(mapReceived(msg({ audioMessage: { mimetype: 'audio/ogg' } }), own)?.message).toMatchObject({ type: 'audio', ptt: false });
    expect(mapReceived(msg({ documentMessage: { mimetype: 'application/pdf', fileName: 'a.pdf', caption: 'd' } }), own)?.message).toMatchObject({
      type: 'document',
      caption: 'd',
      media: { filename: 'a.pdf' },
    });
    expect(mapReceived(msg({ videoMessage: { mimetype: 'video/mp4' } }), own)?.message).toMatchObject({ type: 'video', media: { mimetype: 'video/mp4' } });
    expect(mapReceived(msg({ stickerMessage: {} }), own)?.message).toMatchObject({ type: 'sticker', media: { mimetype: 'image/webp' } });
  });

  test('location and contact', () => {
    expect(mapReceived(msg({ locationMessage: { degreesLatitude: 1.5, degreesLongitude: -2, name: 'n' } }), own)?.message).toEqual({
      ...common,
      type: 'location',
      location: { latitude: 1.5, longitude: -2, name: 'n' },
    });
    const vcard = 'BEGIN:VCARD\nFN:Bob\nTEL;waid=4915100000043:+4915100000043\nEND:VCARD';
    expect(mapReceived(msg({ contactMessage: { displayName: 'Bob', vcard } }), own)?.message).toEqual({
      ...common,
      type: 'contact',
      contact: { name: 'Bob', phone: '4915100000043', vcard },
    });
  });

  test('reaction, edit and revoke point at their target (fromMe flipped from the sender\'s key); a reply carries replyTo', () => {
    const key = { remoteJid: `${own}@s.whatsapp.net`, id: 'MINE', fromMe: false };
    expect(mapReceived(msg({ reactionMessage: { key, text: '👍' } }), own)?.message).toEqual({
      ...common,
      type: 'reaction',
      emoji: '👍',
      target: { id: 'MINE', chat: peer, fromMe: true },
    });
    const theirs = { remoteJid: `${own}@s.whatsapp.net`, id: 'THEIRS', fromMe: true };
    const edit = {
      editedMessage: {
        message: {
          protocolMessage: { type: proto.Message.ProtocolMessage.Type.MESSAGE_EDIT, key: theirs, editedMessage: { conversation: 'fixed' } },
        },
      },
    };
    expect(mapReceived(msg(edit), own)?.message).toEqual({ ...common, type: 'edit', text: 'fixed', target: { id: 'THEIRS', chat: peer, fromMe: false } });
    expect(mapReceived(msg({ protocolMessage: { type: proto.Message.ProtocolMessage.Type.REVOKE, key: theirs } }), own)?.message).toEqual({
      ...common,
      type: 'revoke',
      target: { id: 'THEIRS', chat: peer, fromMe: false },
    });
    const reply = { extendedTextMessage: { text: 'r', contextInfo: { stanzaId: 'MINE', participant: `${own}@s.whatsapp.net` } } };
    expect(mapReceived(msg(reply), own)?.message).toMatchObject({ type: 'text', replyTo: { id: 'MINE', chat: peer, fromMe: true } });
    const replyToTheirs = { imageMessage: { mimetype: 'image/jpeg', contextInfo: { stanzaId: 'T', participant: `${peer}@s.whatsapp.net` } } };
    expect(mapReceived(msg(replyToTheirs), own)?.message).toMatchObject({ type: 'image', replyTo: { id: 'T', fromMe: false } });
  });

  test('not delivered: own messages, groups, status, broadcasts, key distribution and other protocol messages', () => {
    expect(mapReceived(msg({ conversation: 'x' }, { fromMe: true }), own)).toBeUndefined();
    expect(mapReceived(msg({ conversation: 'x' }, { remoteJid: '1203630@g.us' }), own)).toBeUndefined();
    expect(mapReceived(msg({ conversation: 'x' }, { remoteJid: 'status@broadcast' }), own)).toBeUndefined();
    expect(mapReceived(msg({ senderKeyDistributionMessage: { groupId: 'g' } }), own)).toBeUndefined();
    expect(mapReceived(msg({ protocolMessage: { type: proto.Message.ProtocolMessage.Type.HISTORY_SYNC_NOTIFICATION } }), own)).toBeUndefined();
    expect(mapReceived(msg({}), own)).toBeUndefined();
  });

  test('a LID chat is delivered under the phone from the alternate JID; unknown content is type unknown', () => {
    expect(mapReceived(msg({ conversation: 'x' }, { remoteJid: '123@lid', remoteJidAlt: `${peer}@s.whatsapp.net` }), own)?.message).toMatchObject({
      from: peer,
      chat: peer,
    });
    expect(mapReceived(msg({ conversation: 'x' }, { remoteJid: '123@lid' }), own)).toBeUndefined();
    expect(mapReceived(msg({ pollCreationMessage: { name: 'p' } }), own)?.message).toEqual({ ...common, type: 'unknown' });
  });
});

test('receiptStatus: delivery → delivered, read and played → read, the rest nothing', () => {
  const S = proto.WebMessageInfo.Status;
  expect(receiptStatus(S.DELIVERY_ACK)).toBe('delivered');
  expect(receiptStatus(S.READ)).toBe('read');
  expect(receiptStatus(S.PLAYED)).toBe('read');
  expect(receiptStatus(S.SERVER_ACK)).toBeUndefined();
  expect(receiptStatus(S.PENDING)).toBeUndefined();
  expect(receiptStatus(undefined)).toBeUndefined();
});

test('phoneJid and jidPhone', () => {
  expect(phoneJid('4915100000001')).toBe('4915100000001@s.whatsapp.net');
  expect(jidPhone('4915100000001:3@s.whatsapp.net')).toBe('4915100000001');
  expect(jidPhone('123@lid')).toBeUndefined();
  expect(jidPhone('1203630@g.us')).toBeUndefined();
  expect(jidPhone(undefined)).toBeUndefined();
});
