/**
 * Every message type through the one send route, between two real sandbox
 * workers: what the sender's API accepts or refuses, and what the recipient
 * receives in the one received shape (media stored by the gateway, served by
 * URL). Plus read receipts and linking by pairing code.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createTestApp, type TestApp } from '../../../tests/support/app';
import { until } from '../../../tests/support/poll';
import { MAX_INLINE_MEDIA_BYTES } from '../../../workers/protocol/frames';
import { planSend } from './send-input';

let t: TestApp;
let alice: { id: number; apiKey: string };
let bob: { id: number; apiKey: string };
let a: { id: number; phone: string };
let b: { id: number; phone: string };

let seq = 0;
const phone = () => `4916${String(Date.now() % 1e6).padStart(6, '0')}${String(seq++ % 100).padStart(2, '0')}`;

async function paired(key: string) {
  const res = await t.call('POST', '/api/instances', { key, body: { provider: 'sandbox', phone: phone() } });
  if (res.status !== 200) throw new Error(`create failed: ${res.status} ${JSON.stringify(res.body)}`);
  expect((await t.call('POST', `/api/instances/${res.body.id}/sandbox/scan`, { key })).status).toBe(200);
  return res.body as { id: number; phone: string };
}

const send = (body: Record<string, unknown>, key = alice.apiKey, id = a.id) => t.call('POST', `/api/instances/${id}/send`, { key, body });

/** Waits for the recipient's message.received event with this provider id. */
async function receivedAtB(providerId: string) {
  return until(`b received ${providerId}`, async () => {
    const [row] = await t.db.database.sql`
      select data from events where instance_id = ${b.id} and type = 'message.received' and data->>'id' = ${providerId}`;
    return row?.data as Record<string, any> | undefined;
  });
}

/** Sends, expects 200, returns the provider id once the message is sent. */
async function sent(body: Record<string, unknown>) {
  const res = await send(body);
  expect(res.status).toBe(200);
  const [row] = await t.db.database.sql`select provider_message_id, type from messages where id = ${res.body.id}`;
  expect(row!.type).toBe(body.type ?? 'text');
  return { id: res.body.id as string, providerId: row!.provider_message_id as string };
}

beforeAll(async () => {
  t = await createTestApp({ listen: true });
  alice = await t.createUser();
  bob = await t.createUser();
  a = await paired(alice.apiKey);
  b = await paired(bob.apiKey); // another tenant: the sandbox network spans tenants, like WhatsApp
});
afterAll(() => t.close());

describe('POST /api/instances/:id/send, every type', () => {
  test('text, location, contact: the recipient gets the same content under the same id', async () => {
    const text = await sent({ to: b.phone, text: 'hello' });
    expect(await receivedAtB(text.providerId)).toMatchObject({ type: 'text', text: 'hello', from: a.phone, chat: a.phone });
    const loc = await sent({ to: b.phone, type: 'location', location: { latitude: 52.52, longitude: 13.405, name: 'Berlin' } });
    expect(await receivedAtB(loc.providerId)).toMatchObject({ type: 'location', location: { latitude: 52.52, longitude: 13.405, name: 'Berlin' } });
    const card = await sent({ to: b.phone, type: 'contact', contact: { name: 'Ada', phone: '+44 20 7946 0000' } });
    expect(await receivedAtB(card.providerId)).toMatchObject({ type: 'contact', contact: { name: 'Ada', phone: '442079460000' } });
  });

  test('inline media is stored by the gateway and served by URL; events carry no bytes', async () => {
    const bytes = Buffer.from('\x89PNG fake image bytes \x00\x01\x02');
    const img = await sent({ to: b.phone, type: 'image', caption: 'look', media: { data: bytes.toString('base64'), mimetype: 'image/png' } });
    const got = await receivedAtB(img.providerId);
    expect(got).toMatchObject({ type: 'image', caption: 'look', media: { mimetype: 'image/png', size: bytes.length } });
    expect(got.media.data).toBeUndefined();
    expect(got.media.url).toMatch(new RegExp(`^/api/instances/${b.id}/media/med_[0-9a-f]{24}$`));
    const download = await t.call('GET', got.media.url, { key: bob.apiKey });
    expect(download.status).toBe(200);
    expect(download.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(download.bytes).equals(bytes)).toBe(true);
    // Only the owner of the instance may fetch it.
    expect((await t.call('GET', got.media.url, { key: alice.apiKey })).status).toBe(404);
    expect((await t.call('GET', `/api/instances/${b.id}/media/med_${'0'.repeat(24)}`, { key: bob.apiKey })).status).toBe(404);
    expect((await t.call('GET', `/api/instances/${b.id}/media/nope`, { key: bob.apiKey })).status).toBe(400);

    const doc = await sent({ to: b.phone, type: 'document', media: { data: Buffer.from('%PDF-1.4').toString('base64'), mimetype: 'application/pdf', filename: 'invoice 7.pdf' } });
    const docAtB = await receivedAtB(doc.providerId);
    expect(docAtB.media).toMatchObject({ mimetype: 'application/pdf', filename: 'invoice 7.pdf' });
    const file = await t.call('GET', docAtB.media.url, { key: bob.apiKey });
    expect(file.headers.get('content-disposition')).toBe("attachment; filename*=UTF-8''invoice%207.pdf");

    const voice = await sent({ to: b.phone, type: 'audio', ptt: true, media: { data: Buffer.from('OggS').toString('base64'), mimetype: 'audio/ogg; codecs=opus' } });
    expect(await receivedAtB(voice.providerId)).toMatchObject({ type: 'audio', ptt: true });
    const sticker = await sent({ to: b.phone, type: 'sticker', media: { data: Buffer.from('RIFF').toString('base64'), mimetype: 'image/webp' } });
    expect(await receivedAtB(sticker.providerId)).toMatchObject({ type: 'sticker', media: { mimetype: 'image/webp' } });
    // By URL: the worker fetches it (the sandbox has no network and passes the type on without bytes).
    const video = await sent({ to: b.phone, type: 'video', media: { url: 'https://cdn.example.com/v.mp4', mimetype: 'video/mp4' } });
    expect((await receivedAtB(video.providerId)).media).toEqual({ mimetype: 'video/mp4' });
  });

  test('reply, reaction, edit and revoke point at messages by the ids the API gave', async () => {
    const original = await sent({ to: b.phone, text: 'first version' });
    // B writes to A; A quotes it and reacts to it, by its provider id.
    const fromB = await t.call('POST', `/api/instances/${b.id}/send`, { key: bob.apiKey, body: { to: a.phone, text: 'a question' } });
    expect(fromB.status).toBe(200);
    const [bRow] = await t.db.database.sql`select provider_message_id from messages where id = ${fromB.body.id}`;
    const questionId = bRow!.provider_message_id as string;
    await until('a received the question', async () => (await t.db.database.sql`select 1 from events where instance_id = ${a.id} and data->>'id' = ${questionId}`).length > 0);

    const reply = await sent({ to: b.phone, text: 'the answer', replyTo: questionId });
    expect(await receivedAtB(reply.providerId)).toMatchObject({ replyTo: { id: questionId, chat: a.phone, fromMe: true } });
    const reaction = await sent({ type: 'reaction', target: questionId, emoji: '👍' });
    expect(await receivedAtB(reaction.providerId)).toMatchObject({ type: 'reaction', emoji: '👍', target: { id: questionId, fromMe: true } });

    const edit = await sent({ type: 'edit', target: original.id, text: 'second version' });
    expect(await receivedAtB(edit.providerId)).toMatchObject({ type: 'edit', text: 'second version', target: { id: original.providerId, chat: a.phone, fromMe: false } });
    const revoke = await sent({ type: 'revoke', target: original.id });
    expect(await receivedAtB(revoke.providerId)).toMatchObject({ type: 'revoke', target: { id: original.providerId, fromMe: false } });

    // A received message cannot be edited or revoked by its recipient.
    const editTheirs = await send({ type: 'edit', target: questionId, text: 'x' });
    expect(editTheirs.status).toBe(422);
    expect(editTheirs.body.error).toContain('only messages this instance sent can be edited');
    expect((await send({ type: 'revoke', target: questionId })).status).toBe(422);
    // Unknown targets are 404; another instance's messages are unknown here.
    expect((await send({ type: 'reaction', target: 'msg_000000000000000000000000', emoji: '👍' })).status).toBe(404);
    expect((await send({ type: 'reaction', target: fromB.body.id, emoji: '👍' })).status).toBe(404);
    expect((await send({ to: b.phone, text: 'x', replyTo: 'NOPE' })).status).toBe(404);
  });

  test('bad sends are 400 naming the field, before anything is queued', async () => {
    const [{ n: before }] = (await t.db.database.sql`select count(*)::int as n from commands where instance_id = ${a.id}`) as unknown as [{ n: number }];
    const cases: [Record<string, unknown>, string][] = [
      [{ text: 'no recipient' }, "'to'"],
      [{ to: b.phone, type: 'gif' }, "'type'"],
      [{ to: b.phone, type: 'image' }, "'media'"],
      [{ to: b.phone, type: 'image', media: { mimetype: 'image/png' } }, "'media': give exactly one of url or data"],
      [{ to: b.phone, type: 'image', media: { url: 'https://x.example/a.png', data: 'AAAA', mimetype: 'image/png' } }, "'media': give exactly one"],
      [{ to: b.phone, type: 'image', media: { data: 'not base64!', mimetype: 'image/png' } }, "'media.data': is not base64"],
      [{ to: b.phone, type: 'image', media: { data: 'AAAA', mimetype: 'video/mp4' } }, "'media.mimetype'"],
      [{ to: b.phone, type: 'sticker', media: { data: 'AAAA', mimetype: 'image/png' } }, "'media.mimetype': a sticker must be image/webp"],
      [{ to: b.phone, type: 'video', media: { url: 'http://cdn.example.com/v.mp4', mimetype: 'video/mp4' } }, "'media.url': must be an https:// URL"],
      [{ to: b.phone, type: 'text', text: 'x', media: { data: 'AAAA', mimetype: 'image/png' } }, "'media': a text message carries no media"],
      [{ to: b.phone, type: 'location', location: { latitude: 91, longitude: 0 } }, "'location.latitude'"],
      [{ to: b.phone, type: 'location' }, "'location'"],
      [{ to: b.phone, type: 'contact', contact: { name: 'Ada', phone: 'none' } }, "'contact.phone'"],
      [{ type: 'reaction', emoji: '👍' }, "'target'"],
      [{ to: b.phone, text: 'x', target: 'msg_1' }, "'target': only reaction, edit and revoke"],
      [{ type: 'edit', target: 'msg_x' }, "'text'"],
    ];
    for (const [body, field] of cases) {
      const res = await send(body);
      expect([res.status, res.body.error]).toEqual([400, expect.stringContaining(field)]);
    }
    const [{ n: after }] = (await t.db.database.sql`select count(*)::int as n from commands where instance_id = ${a.id}`) as unknown as [{ n: number }];
    expect(after).toBe(before);
  });

  test('limits and private media URLs are refused by the planner', async () => {
    const db = t.db.database.db;
    const big = Buffer.alloc(MAX_INLINE_MEDIA_BYTES + 3).toString('base64');
    const tooBig = planSend(db, a.id, { to: b.phone, type: 'document', media: { data: big, mimetype: 'application/pdf' } }, { allowPrivateMedia: false, provider: 'sandbox' });
    await expect(tooBig).rejects.toThrow(`at most ${MAX_INLINE_MEDIA_BYTES} (16 MiB); send larger files by url`);
    for (const url of ['https://127.0.0.1/a.png', 'https://[::1]/a.png', 'https://10.0.0.8/a.png', 'https://localhost/a.png']) {
      const plan = planSend(db, a.id, { to: b.phone, type: 'image', media: { url, mimetype: 'image/png' } }, { allowPrivateMedia: false, provider: 'sandbox' });
      await expect(plan).rejects.toThrow('private or loopback address');
    }
    const ok = await planSend(db, a.id, { to: b.phone, type: 'image', media: { url: 'https://127.0.0.1/a.png', mimetype: 'image/png' } }, { allowPrivateMedia: true, provider: 'sandbox' });
    expect(ok.args).toMatchObject({ type: 'image', to: b.phone });
  });

  test('a type the engine cannot send is 422 unsupported_for_provider naming it; template and interactive fields are checked', async () => {
    const db = t.db.database.db;
    const template = { name: 'order_update', language: 'en_US' };
    for (const provider of ['whatsmeow', 'baileys']) {
      const plan = planSend(db, a.id, { to: b.phone, type: 'template', template }, { allowPrivateMedia: false, provider });
      await expect(plan).rejects.toMatchObject({ status: 422, code: 'unsupported_for_provider', message: `provider ${provider} cannot send template messages` });
    }
    const revoke = planSend(db, a.id, { type: 'revoke', target: 'msg_x' }, { allowPrivateMedia: false, provider: 'waba' });
    await expect(revoke).rejects.toMatchObject({ status: 422, code: 'unsupported_for_provider', message: 'provider waba cannot send revoke messages' });
    const planned = await planSend(db, a.id, { to: b.phone, type: 'template', template }, { allowPrivateMedia: false, provider: 'waba' });
    expect(planned).toMatchObject({ type: 'template', text: 'order_update', args: { template } });
    const refused: [Record<string, unknown>, string][] = [
      [{ to: b.phone, type: 'template', template: { name: 'Bad Name', language: 'en_US' } }, "'template.name'"],
      [{ to: b.phone, type: 'template', template: { name: 'ok', language: 'english' } }, "'template.language'"],
      [{ to: b.phone, type: 'interactive', interactive: { kind: 'buttons', body: 'x', buttons: [] } }, "'interactive"],
      [{ to: b.phone, type: 'interactive', interactive: { kind: 'list', body: 'x', sections: [{ rows: [{ id: '1', title: 't' }] }] } }, "'interactive"],
      [{ to: b.phone, text: 'x', template }, "'template': only a template message"],
      [{ to: b.phone, type: 'location', location: { latitude: 1, longitude: 2 }, previewUrl: true }, "'previewUrl'"],
    ];
    for (const [body, field] of refused) {
      const plan = planSend(db, a.id, body as never, { allowPrivateMedia: false, provider: 'waba' });
      await expect(plan).rejects.toThrow(field);
    }
  });
});

describe('read receipts and pairing codes', () => {
  test('POST /read marks received messages read; 503 when not connected; bad bodies 400', async () => {
    const ok = await t.call('POST', `/api/instances/${a.id}/read`, { key: alice.apiKey, body: { chat: b.phone, messageIds: ['X1', 'X2'] } });
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ status: 'ok' });
    expect((await t.call('POST', `/api/instances/${a.id}/read`, { key: alice.apiKey, body: { chat: b.phone, messageIds: [] } })).status).toBe(400);
    expect((await t.call('POST', `/api/instances/${a.id}/read`, { key: alice.apiKey, body: { chat: 'x', messageIds: ['X1'] } })).status).toBe(400);
    expect((await t.call('POST', `/api/instances/${a.id}/read`, { key: bob.apiKey, body: { chat: b.phone, messageIds: ['X1'] } })).status).toBe(404);
    const fresh = await t.call('POST', '/api/instances', { key: alice.apiKey, body: { provider: 'sandbox', phone: phone() } });
    const notPaired = await t.call('POST', `/api/instances/${fresh.body.id}/read`, { key: alice.apiKey, body: { chat: b.phone, messageIds: ['X1'] } });
    expect(notPaired.status).toBe(503);
    expect(notPaired.body.code).toBe('not_connected');
  });

  test('POST /pair-code links by phone number: a code, then the phone enters it; 409 once connected', async () => {
    const fresh = await t.call('POST', '/api/instances', { key: alice.apiKey, body: { provider: 'sandbox', phone: phone() } });
    const id = fresh.body.id;
    const wrong = await t.call('POST', `/api/instances/${id}/pair-code`, { key: alice.apiKey, body: { phone: '15550009999' } });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toContain("is not this instance's number");
    const res = await t.call('POST', `/api/instances/${id}/pair-code`, { key: alice.apiKey, body: {} });
    expect(res.status).toBe(200);
    expect(res.body.code).toMatch(/^[A-Z0-9]{8}$/);
    const pairing = await until('pairing', async () => {
      const r = (await t.call('GET', `/api/instances/${id}`, { key: alice.apiKey })).body;
      return r.state === 'pairing' && r;
    });
    expect(pairing.stateReason).toContain(`${res.body.code.slice(0, 4)}-${res.body.code.slice(4)}`);
    expect((await t.call('POST', `/api/instances/${id}/sandbox/scan`, { key: alice.apiKey })).status).toBe(200);
    const linked = (await t.call('GET', `/api/instances/${id}`, { key: alice.apiKey })).body;
    expect(linked).toMatchObject({ state: 'connected', stateReason: 'paired by sandbox pairing code' });
    const again = await t.call('POST', `/api/instances/${id}/pair-code`, { key: alice.apiKey, body: {} });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('already_connected');
  });
});
