/**
 * Two simulated phones talk through the control API (no client involved):
 * libsignal sessions from prekey bundles (pkmsg, then msg), receipts, read,
 * settings, media by sha256, and the API's errors.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { until } from '../../../tests/support/poll';
import { startSimulator, type RunningSimulator } from '../server';
import { control } from '../testing';

let sim: RunningSimulator;
const A = '4915200000001';
const B = '4915200000002';
beforeAll(async () => {
  sim = startSimulator({ port: 0 });
  await control(sim, 'POST', '/phones', { phone: A });
  await control(sim, 'POST', '/phones', { phone: B });
});
afterAll(async () => {
  await sim?.stop();
});

test('phone → phone: texts arrive decrypted, each once, with delivery receipts back to the sender', async () => {
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const sent = await control(sim, 'POST', `/phones/${A}/messages`, { to: `+${B}`, type: 'text', text: `hello ${i}` });
    expect(sent.status).toBe(200);
    ids.push(sent.body.id);
  }
  const got = await until('five messages on B', async () => {
    const r = await control(sim, 'GET', `/phones/${B}/messages`);
    return r.body.length === 5 ? r.body : undefined;
  });
  expect(got.map((m: any) => m.text)).toEqual([0, 1, 2, 3, 4].map((i) => `hello ${i}`));
  expect(got.map((m: any) => m.id)).toEqual(ids);
  expect(got[0]).toMatchObject({ from: A, type: 'text', fromDevice: `${A}@s.whatsapp.net` });
  // the cursor
  const after = await control(sim, 'GET', `/phones/${B}/messages?since=${got[2].seq}`);
  expect(after.body.map((m: any) => m.id)).toEqual(ids.slice(3));
  await until('delivery receipts on A', async () => {
    const s = await control(sim, 'GET', `/phones/${A}/sent`);
    return s.body.filter((m: any) => m.receipts.some((r: any) => r.type === 'delivery')).length === 5;
  });
  const read = await control(sim, 'POST', `/phones/${B}/read`, { chat: A, ids: ids.slice(0, 2) });
  expect(read.status).toBe(200);
  await until('read receipts on A', async () => {
    const s = await control(sim, 'GET', `/phones/${A}/sent`);
    return s.body.filter((m: any) => m.receipts.some((r: any) => r.type === 'read')).length === 2;
  });
  // and back: B answers A (B already has a session from A's pkmsg)
  const back = await control(sim, 'POST', `/phones/${B}/messages`, { to: A, type: 'text', text: 'hi back', replyTo: ids[0] });
  expect(back.status).toBe(200);
  const reply = await until('the reply on A', async () => (await control(sim, 'GET', `/phones/${A}/messages`)).body[0]);
  expect(reply).toMatchObject({ id: back.body.id, text: 'hi back', replyTo: { id: ids[0], participant: `${A}@s.whatsapp.net` } });
});

test('phone → phone: media (image, document) by sha256, location, contact, reaction, edit, revoke', async () => {
  const bytes = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));
  const sha = createHash('sha256').update(bytes).digest('hex');
  const image = await control(sim, 'POST', `/phones/${A}/messages`, { to: B, type: 'image', caption: 'pic', media: { base64: bytes.toString('base64'), mimetype: 'image/png' } });
  expect(image.status).toBe(200);
  const doc = await control(sim, 'POST', `/phones/${A}/messages`, { to: B, type: 'document', media: { base64: bytes.toString('base64'), mimetype: 'application/pdf', filename: 'a.pdf' } });
  const loc = await control(sim, 'POST', `/phones/${A}/messages`, { to: B, type: 'location', location: { latitude: 52.5, longitude: 13.4, name: 'Berlin' } });
  const contact = await control(sim, 'POST', `/phones/${A}/messages`, { to: B, type: 'contact', contact: { name: 'Ann', phone: '+4915100000009' } });
  const reaction = await control(sim, 'POST', `/phones/${A}/messages`, { to: B, type: 'reaction', reaction: { targetId: image.body.id, emoji: '👍' } });
  const edit = await control(sim, 'POST', `/phones/${A}/messages`, { to: B, type: 'edit', edit: { targetId: image.body.id, text: 'new' } });
  const revoke = await control(sim, 'POST', `/phones/${A}/messages`, { to: B, type: 'revoke', revoke: { targetId: doc.body.id } });
  for (const r of [doc, loc, contact, reaction, edit, revoke]) expect(r.status).toBe(200);
  const byId = await until('seven more on B', async () => {
    const r = await control(sim, 'GET', `/phones/${B}/messages`);
    const m = new Map<string, any>(r.body.map((x: any) => [x.id, x]));
    return [image, doc, loc, contact, reaction, edit, revoke].every((x) => m.has(x.body.id)) ? m : undefined;
  });
  expect(byId.get(image.body.id)).toMatchObject({ type: 'image', caption: 'pic', media: { mimetype: 'image/png', size: 5000, sha256: sha } });
  expect(byId.get(doc.body.id)).toMatchObject({ type: 'document', media: { mimetype: 'application/pdf', sha256: sha, filename: 'a.pdf' } });
  expect(byId.get(loc.body.id)).toMatchObject({ type: 'location', location: { latitude: 52.5, longitude: 13.4, name: 'Berlin' } });
  expect(byId.get(contact.body.id)).toMatchObject({ type: 'contact', contact: { name: 'Ann', phone: '4915100000009' } });
  expect(byId.get(reaction.body.id)).toMatchObject({ type: 'reaction', reaction: { targetId: image.body.id, emoji: '👍' } });
  expect(byId.get(edit.body.id)).toMatchObject({ type: 'edit', edit: { targetId: image.body.id, text: 'new' } });
  expect(byId.get(revoke.body.id)).toMatchObject({ type: 'revoke', revoke: { targetId: doc.body.id } });
});

test('control API: errors are {error, code} with 400/404/422', async () => {
  expect(await control(sim, 'POST', `/phones/${A}/messages`, { to: B, type: 'nope' })).toMatchObject({ status: 400, body: { code: 'invalid_field' } });
  expect(await control(sim, 'POST', `/phones/${A}/messages`, { to: '12', type: 'text', text: 'x' })).toMatchObject({ status: 400, body: { code: 'invalid_phone' } });
  expect(await control(sim, 'POST', `/phones/${A}/messages`, { to: B, type: 'text' })).toMatchObject({ status: 400, body: { code: 'invalid_field' } });
  expect(await control(sim, 'POST', `/phones/${A}/messages`, { to: '4915299999999', type: 'text', text: 'x' })).toMatchObject({ status: 404, body: { code: 'unknown_recipient' } });
  expect(await control(sim, 'POST', `/phones/4915299999999/messages`, { to: B, type: 'text', text: 'x' })).toMatchObject({ status: 404, body: { code: 'unknown_phone' } });
  expect(await control(sim, 'POST', `/phones/${A}/messages`, { to: B, type: 'edit', edit: { targetId: 'NOPE', text: 'x' } })).toMatchObject({ status: 422, body: { code: 'unknown_target' } });
  expect(await control(sim, 'POST', `/phones/${B}/read`, { chat: A, ids: ['NOPE'] })).toMatchObject({ status: 404, body: { code: 'unknown_message' } });
  expect(await control(sim, 'POST', `/phones/${B}/read`, { chat: A, ids: [] })).toMatchObject({ status: 400, body: { code: 'invalid_field' } });
  expect(await control(sim, 'GET', `/phones/${B}/messages?since=yesterday`)).toMatchObject({ status: 400, body: { code: 'invalid_field' } });
  expect(await control(sim, 'PUT', `/phones/${B}/settings`, { autoRead: 'yes' })).toMatchObject({ status: 400, body: { code: 'invalid_field' } });
  expect(await control(sim, 'PUT', `/phones/${B}/settings`, { autoRead: true })).toEqual({ status: 200, body: { autoDeliver: true, autoRead: true } });
});

test('control API: message routes answer 405 to other methods; settings change only what is given', async () => {
  expect(await control(sim, 'DELETE', `/phones/${A}/messages`)).toMatchObject({ status: 405, body: { code: 'method_not_allowed' } });
  expect(await control(sim, 'GET', `/phones/${A}/read`)).toMatchObject({ status: 405, body: { code: 'method_not_allowed' } });
  expect(await control(sim, 'POST', `/phones/${A}/settings`, { autoRead: true })).toMatchObject({ status: 405, body: { code: 'method_not_allowed' } });
  expect(await control(sim, 'PUT', `/phones/${A}/settings`, {})).toMatchObject({ status: 400, body: { code: 'invalid_field' } });
  expect(await control(sim, 'PUT', `/phones/${A}/settings`, { autoDeliver: false })).toEqual({ status: 200, body: { autoDeliver: false, autoRead: false } });
  expect(await control(sim, 'PUT', `/phones/${A}/settings`, { autoDeliver: true })).toEqual({ status: 200, body: { autoDeliver: true, autoRead: false } });
  expect(await control(sim, 'PUT', `/phones/4915299999999/settings`, { autoDeliver: true })).toMatchObject({ status: 404, body: { code: 'unknown_phone' } });
});
