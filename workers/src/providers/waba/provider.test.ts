/**
 * The waba provider against the fake Meta Graph API
 * (simulator/src/graph/server.ts) and a real instance state schema, all on
 * 127.0.0.1. Webhooks the fake sends land on a tiny capture server; their
 * `value` is handed to the provider as the gateway would (waba.inbound).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { providerError } from '../../testing/provider-error';
import type { Server } from 'bun';
import { randomBytes } from 'node:crypto';
import { startFakeGraph, type FakeApp, type FakeGraph } from '../../../../simulator/src/graph/server';
import { ReceivedMessage, type SessionState, type WorkerEvent } from '../../../protocol/frames';
import { Value } from '@sinclair/typebox/value';
import { createLogger } from '../../logger';
import { openStateStore, type StateStore } from '../../state/store';
import { waitFor } from '../../testing/fake-gateway';
import { TestStateDb } from '../../testing/state-db';
import { closedLoopbackPort } from '../../../../tests/conformance/workers';
import type { ProviderContext } from '../types';
import { LOGOUT_REASON, PAIR_CODE_REFUSAL, WabaProvider, type WabaOptions } from './provider';

const PHONE_ID = '106540352242922';
const WABA_ID = '102290129340398';
const DISPLAY = '+1 555-000-1111';
const CUSTOMER = '5511988887777';

class RecordingContext implements ProviderContext {
  readonly states: { state: SessionState; reason?: string }[] = [];
  readonly events: { eventId?: string; event: WorkerEvent }[] = [];
  log = createLogger({ level: 'silent', instanceId: 9 });
  constructor(readonly store: StateStore) {}
  setState(state: SessionState, reason?: string) {
    this.states.push({ state, reason });
  }
  setQr() {
    throw new Error('waba never shows a QR');
  }
  emit(event: WorkerEvent, opts?: { eventId?: string }) {
    this.events.push({ eventId: opts?.eventId, event });
  }
  phone() {
    return '15550001111';
  }
  get state() {
    return this.states.at(-1);
  }
}

let db: TestStateDb;
let graph: FakeGraph;
let app: FakeApp;
let capture: Server<undefined>;
const webhooks: unknown[] = [];

beforeAll(async () => {
  db = await TestStateDb.create();
  capture = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch: async (req) => {
      webhooks.push(await req.json());
      return new Response('ok');
    },
  });
  graph = await startFakeGraph({ port: 0 });
  app = graph.addApp({ appSecret: 'app-secret', callbackUrl: `http://127.0.0.1:${capture.port}/webhook` });
});
afterAll(async () => {
  await graph.close();
  await capture.stop(true);
  await db.cleanup();
});

const started: WabaProvider[] = [];
const stores: StateStore[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop()));
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

let nextInstanceId = 1;
let nextPhone = 0;

/** A fresh number on the fake Graph (own token) and a provider started for it. */
async function setUp(over: Partial<WabaOptions> = {}, opts: { register?: boolean } = {}) {
  const phoneNumberId = `${PHONE_ID}${nextPhone}`;
  const wabaId = `${WABA_ID}${nextPhone++}`;
  const accessToken = `EAAG${randomBytes(16).toString('hex')}`;
  if (opts.register ?? true) {
    graph.addPhoneNumber({ phoneNumberId, wabaId, displayPhoneNumber: DISPLAY, verifiedName: 'Acme Support', accessToken, app, enforceWindow: false });
  }
  const inst = await db.createInstance();
  const store = await openStateStore({
    dsn: inst.dsn,
    schema: inst.schema,
    instanceId: nextInstanceId++,
    log: createLogger({ level: 'silent', instanceId: 9 }),
    onLost: (err) => {
      throw err;
    },
  });
  stores.push(store);
  const provider = new WabaProvider({
    graphBaseUrl: graph.url,
    graphVersion: 'v26.0',
    phoneNumberId,
    wabaId,
    accessToken,
    timeoutMs: 2_000,
    maxRetries: 3,
    checkIntervalMs: 60_000,
    mediaAllowPrivate: true,
    retryBaseMs: 5,
    recheckBackoff: { baseMs: 20, capMs: 100, jitter: 0.2 },
    ...over,
  });
  const ctx = new RecordingContext(store);
  started.push(provider);
  await provider.start(ctx);
  return { provider, ctx, phoneNumberId, wabaId, accessToken, store };
}

async function connected(over: Partial<WabaOptions> = {}) {
  const s = await setUp(over);
  await waitFor(() => s.ctx.state?.state === 'connected', 'connected');
  return s;
}


/** The webhook value the fake produces for an inbound message (delivered to the capture server). */
async function inboundValue(phoneNumberId: string, m: Parameters<FakeGraph['pushMessage']>[1]) {
  const res = await graph.pushMessage(phoneNumberId, m);
  expect(res.status).toBe(200);
  return (res.payload as { entry: { changes: { value: Record<string, unknown> }[] }[] }).entry[0]!.changes[0]!.value;
}

const lastSent = (phoneNumberId: string) => graph.sent(phoneNumberId).at(-1)!;
let messageSeq = 0;
const base = () => ({ messageId: `m-${++messageSeq}`, to: CUSTOMER });

describe('waba provider: connection', () => {
  test('connect: starting, then connected with the verified name and number; the lookup used the Bearer token', async () => {
    const { ctx, phoneNumberId, accessToken } = await connected();
    expect(ctx.states[0]).toEqual({ state: 'starting', reason: undefined });
    expect(ctx.state).toEqual({ state: 'connected', reason: `Cloud API: Acme Support (${DISPLAY})` });
    const lookup = graph.requests.find((r) => r.method === 'GET' && r.path === `/v26.0/${phoneNumberId}`)!;
    expect(lookup.headers.authorization).toBe(`Bearer ${accessToken}`);
    expect(lookup.query.fields).toBe('display_phone_number,verified_name,quality_rating');
  });

  test("expired token: failed with Meta's message, no retry loop; sends fail provider_auth_failed", async () => {
    const phoneNumberId = `${PHONE_ID}${nextPhone}`;
    const token = `EAAG${randomBytes(16).toString('hex')}`;
    graph.addPhoneNumber({ phoneNumberId, wabaId: `${WABA_ID}${nextPhone++}`, displayPhoneNumber: DISPLAY, accessToken: token, app });
    graph.expireToken(token);
    const { provider, ctx } = await setUp({ phoneNumberId, accessToken: token }, { register: false });
    await waitFor(() => ctx.state?.state === 'failed', 'failed');
    expect(ctx.state!.reason).toContain('Session has expired');
    expect(ctx.state!.reason).toContain('(Meta error 190/463)');
    // One lookup: an auth error is never retried (the next check waits WABA_CHECK_INTERVAL_MS).
    expect(graph.requests.filter((r) => r.path === `/v26.0/${phoneNumberId}`)).toHaveLength(1);
    const err = await providerError(provider.execute('send', { ...base(), type: 'text', text: 'hi' }));
    expect(err.code).toBe('provider_auth_failed');
    expect(err.details?.providerCode).toBe(190);
  });

  test('a number the token cannot see (100/33) is failed, not retried', async () => {
    const { ctx } = await setUp({ phoneNumberId: '999999999' });
    await waitFor(() => ctx.state?.state === 'failed', 'failed');
    expect(ctx.state!.reason).toContain('Meta error 100/33');
  });

  test('unreachable Graph API: reconnecting with the network reason, re-checked with backoff', async () => {
    const port = await closedLoopbackPort();
    const { provider, ctx } = await setUp({ graphBaseUrl: `http://127.0.0.1:${port}` }, { register: false });
    await waitFor(() => ctx.states.filter((s) => s.state === 'reconnecting').length >= 2, 'two re-checks');
    expect(ctx.state!.reason).toContain(`cannot reach the Graph API at http://127.0.0.1:${port}`);
    const err = await providerError(provider.execute('send', { ...base(), type: 'text', text: 'hi' }));
    expect([err.code, err.message]).toEqual(['not_connected', 'Client not connected']);
  });

  test('a 5xx on the lookup is reconnecting, then connected on the next check', async () => {
    const phoneNumberId = `${PHONE_ID}${nextPhone}`;
    const token = `EAAG${randomBytes(16).toString('hex')}`;
    graph.addPhoneNumber({ phoneNumberId, wabaId: `${WABA_ID}${nextPhone++}`, displayPhoneNumber: DISPLAY, verifiedName: 'Acme Support', accessToken: token, app });
    graph.injectError({ path: 'phone', phoneNumberId, code: 2, httpStatus: 503, times: 1 });
    const { ctx } = await setUp({ phoneNumberId, accessToken: token }, { register: false });
    await waitFor(() => ctx.state?.state === 'connected', 'connected after the 503');
    expect(ctx.states.map((s) => s.state)).toEqual(['starting', 'reconnecting', 'connected']);
  });

  test('pair-code, sandbox commands, edit and revoke are unsupported_command; logout stops sends', async () => {
    const { provider, ctx } = await connected();
    const pair = await providerError(provider.execute('pair-code', { phone: '15550001111' }));
    expect([pair.code, pair.message]).toEqual(['unsupported_command', PAIR_CODE_REFUSAL]);
    expect((await providerError(provider.execute('sandbox.scan', {}))).code).toBe('unsupported_command');
    for (const a of [
      { type: 'edit', target: { id: 'wamid.X', chat: CUSTOMER, fromMe: true }, text: 'x' },
      { type: 'revoke', target: { id: 'wamid.X', chat: CUSTOMER, fromMe: true } },
    ]) {
      const err = await providerError(provider.execute('send', { ...base(), ...a }));
      expect(err.code).toBe('unsupported_command');
      expect(err.message).toContain('waba');
    }
    expect(await provider.execute('logout', {})).toEqual({ state: 'logged_out' });
    expect(ctx.state).toEqual({ state: 'logged_out', reason: LOGOUT_REASON });
    expect((await providerError(provider.execute('send', { ...base(), type: 'text', text: 'hi' }))).code).toBe('not_connected');
  });
});

describe('waba provider: sending', () => {
  test('every send type arrives at the Cloud API as documented; wamid is the providerMessageId', async () => {
    const { provider, phoneNumberId } = await connected();
    const cases: [Record<string, unknown>, Record<string, unknown>][] = [
      [{ type: 'text', text: 'hello https://example.com', previewUrl: true }, { type: 'text', text: { body: 'hello https://example.com', preview_url: true } }],
      [
        { type: 'image', media: { url: 'https://cdn.example.com/a.jpg', mimetype: 'image/jpeg' }, caption: 'pic' },
        { type: 'image', image: { link: 'https://cdn.example.com/a.jpg', caption: 'pic' } },
      ],
      [{ type: 'location', location: { latitude: 1.5, longitude: 2.5, name: 'HQ', address: 'Main St' } }, { type: 'location', location: { latitude: 1.5, longitude: 2.5, name: 'HQ', address: 'Main St' } }],
      [
        { type: 'contact', contact: { name: 'Ana Maria', phone: '5511999990000' } },
        { type: 'contacts', contacts: [{ name: { formatted_name: 'Ana Maria', first_name: 'Ana' }, phones: [{ phone: '+5511999990000', wa_id: '5511999990000', type: 'CELL' }] }] },
      ],
      [{ type: 'reaction', target: { id: 'wamid.T', chat: CUSTOMER, fromMe: false }, emoji: '👍' }, { type: 'reaction', reaction: { message_id: 'wamid.T', emoji: '👍' } }],
      [
        { type: 'text', text: 'quoted', replyTo: { id: 'wamid.Q', chat: CUSTOMER, fromMe: false } },
        { type: 'text', text: { body: 'quoted', preview_url: false }, context: { message_id: 'wamid.Q' } },
      ],
      [
        { type: 'interactive', interactive: { kind: 'buttons', header: 'Hi', body: 'Choose', footer: 'f', buttons: [{ id: 'yes', title: 'Yes' }, { id: 'no', title: 'No' }] } },
        {
          type: 'interactive',
          interactive: {
            type: 'button',
            header: { type: 'text', text: 'Hi' },
            body: { text: 'Choose' },
            footer: { text: 'f' },
            action: { buttons: [{ type: 'reply', reply: { id: 'yes', title: 'Yes' } }, { type: 'reply', reply: { id: 'no', title: 'No' } }] },
          },
        },
      ],
      [
        { type: 'interactive', interactive: { kind: 'list', body: 'Pick', button: 'Menu', sections: [{ title: 'S', rows: [{ id: 'r1', title: 'One', description: 'first' }] }] } },
        { type: 'interactive', interactive: { type: 'list', body: { text: 'Pick' }, action: { button: 'Menu', sections: [{ title: 'S', rows: [{ id: 'r1', title: 'One', description: 'first' }] }] } } },
      ],
    ];
    for (const [args, expected] of cases) {
      const b = base();
      const result = await provider.execute('send', { ...b, ...args });
      const sent = lastSent(phoneNumberId);
      expect(result).toEqual({ messageId: b.messageId, providerMessageId: sent.wamid, status: 'sent' });
      expect(sent.payload).toEqual({ messaging_product: 'whatsapp', recipient_type: 'individual', to: CUSTOMER, ...expected });
    }
  });

  test('media given as data is uploaded (multipart) and sent by id; the fake stored the same bytes', async () => {
    const { provider, phoneNumberId } = await connected();
    const bytes = randomBytes(2048);
    for (const [type, mimetype, filename, caption] of [
      ['document', 'application/pdf', 'report.pdf', 'the report'],
      ['audio', 'audio/ogg', undefined, undefined],
      ['video', 'video/mp4', undefined, 'clip'],
    ] as const) {
      await provider.execute('send', { ...base(), type, media: { data: bytes.toString('base64'), mimetype, ...(filename && { filename }) }, ...(caption && { caption }), ...(type === 'audio' && { ptt: true }) });
      const payload = lastSent(phoneNumberId).payload;
      const ref = payload[type];
      expect(ref.link).toBeUndefined();
      expect(Buffer.from(graph.media(ref.id)!.bytes)).toEqual(bytes);
      expect(graph.media(ref.id)!.mimeType).toBe(mimetype);
      expect(ref).toEqual({ id: ref.id, ...(caption && { caption }), ...(filename && { filename }) });
    }
  });

  test('template: name, language code, components', async () => {
    const { provider, phoneNumberId, wabaId } = await connected();
    graph.addTemplate(wabaId, { name: 'order_update', language: 'en_US', status: 'APPROVED', category: 'UTILITY', components: [{ type: 'BODY', text: 'Hi {{1}}' }] });
    const components = [{ type: 'body', parameters: [{ type: 'text', text: 'Ana' }] }];
    await provider.execute('send', { ...base(), type: 'template', template: { name: 'order_update', language: 'en_US', components } });
    expect(lastSent(phoneNumberId).payload).toEqual({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: CUSTOMER,
      type: 'template',
      template: { name: 'order_update', language: { code: 'en_US' }, components },
    });
  });

  test('waba.templates lists every template, following paging.next', async () => {
    const { provider, wabaId } = await connected();
    for (let i = 0; i < 130; i++) {
      graph.addTemplate(wabaId, { name: `t_${i}`, language: 'en_US', status: 'APPROVED', category: 'MARKETING', components: [{ type: 'BODY', text: `n ${i}` }] });
    }
    const { templates } = (await provider.execute('waba.templates', {})) as { templates: Record<string, unknown>[] };
    expect(templates).toHaveLength(130);
    expect(templates[129]).toEqual({ name: 't_129', language: 'en_US', status: 'APPROVED', category: 'MARKETING', components: [{ type: 'BODY', text: 'n 129' }] });
  });

  test('read: one read receipt per id', async () => {
    const { provider, phoneNumberId } = await connected();
    expect(await provider.execute('read', { chat: CUSTOMER, messageIds: ['wamid.A', 'wamid.B'] })).toEqual({});
    expect(graph.readReceipts(phoneNumberId)).toEqual([
      { messageId: 'wamid.A', phoneNumberId },
      { messageId: 'wamid.B', phoneNumberId },
    ]);
  });

  test('130429 (throughput) and a 500 are retried, then the message goes out once', async () => {
    const { provider, phoneNumberId } = await connected();
    graph.injectError({ path: 'messages', phoneNumberId, code: 130429, times: 2 });
    await provider.execute('send', { ...base(), type: 'text', text: 'after throttling' });
    graph.injectError({ path: 'messages', phoneNumberId, code: 131000, httpStatus: 500, times: 1 });
    await provider.execute('send', { ...base(), type: 'text', text: 'after a 500' });
    expect(graph.sent(phoneNumberId).map((s) => s.payload.text.body)).toEqual(['after throttling', 'after a 500']);
  });

  test('throughput limit that outlasts the retries: rate_limited with providerCode and retryAfter', async () => {
    const { provider, phoneNumberId } = await connected({ maxRetries: 1 });
    graph.injectError({ path: 'messages', phoneNumberId, code: 130429, times: 5 });
    const err = await providerError(provider.execute('send', { ...base(), type: 'text', text: 'x' }));
    expect(err.code).toBe('rate_limited');
    expect(err.details?.providerCode).toBe(130429);
    expect(err.details?.retryAfter).toBeGreaterThan(0);
    expect(graph.sent(phoneNumberId)).toEqual([]);
  });

  test('permanent errors are not retried: 131047 → template_required, 132001 → template_error, 100 → provider_rejected', async () => {
    const { provider, phoneNumberId } = await connected();
    const posts = () => graph.requests.filter((r) => r.method === 'POST' && r.path === `/v26.0/${phoneNumberId}/messages`).length;
    for (const [code, expected] of [
      [131047, 'template_required'],
      [132001, 'template_error'],
      [131026, 'undeliverable'],
      [100, 'provider_rejected'],
    ] as const) {
      const before = posts();
      graph.injectError({ path: 'messages', phoneNumberId, code, times: 1 });
      const err = await providerError(provider.execute('send', { ...base(), type: 'text', text: 'x' }));
      expect({ code: err.code, providerCode: err.details?.providerCode }).toEqual({ code: expected, providerCode: code });
      expect(err.message).toContain(`(Meta error ${code}`);
      expect(posts() - before).toBe(1);
    }
  });

  test('a 190 on a send turns the instance failed', async () => {
    const { provider, ctx, phoneNumberId } = await connected();
    graph.injectError({ path: 'messages', phoneNumberId, code: 190, times: 1 });
    const err = await providerError(provider.execute('send', { ...base(), type: 'text', text: 'x' }));
    expect(err.code).toBe('provider_auth_failed');
    expect(ctx.state?.state).toBe('failed');
  });

  test('a send redelivered with the same messageId is not sent twice', async () => {
    const { provider, phoneNumberId } = await connected();
    const b = base();
    const first = await provider.execute('send', { ...b, type: 'text', text: 'once' });
    const again = await provider.execute('send', { ...b, type: 'text', text: 'once' });
    expect(again).toEqual(first);
    expect(graph.sent(phoneNumberId)).toHaveLength(1);
  });
});

describe('waba provider: inbound', () => {
  const received = (ctx: RecordingContext) => ctx.events.filter((e) => e.event.type === 'message.received');

  test('text, media (downloaded), reaction to our message, button and quoted reply map to message.received with stable ids', async () => {
    const { provider, ctx, phoneNumberId } = await connected();
    const sent = await provider.execute('send', { ...base(), type: 'text', text: 'ours' });
    const ours = sent.providerMessageId as string;
    const image = randomBytes(4096);
    const values = [
      await inboundValue(phoneNumberId, { from: CUSTOMER, id: 'wamid.T1', type: 'text', text: { body: 'oi' } }),
      await inboundValue(phoneNumberId, { from: CUSTOMER, id: 'wamid.I1', type: 'image', image: { caption: 'foto' }, mediaBytes: image, mimeType: 'image/jpeg' }),
      await inboundValue(phoneNumberId, { from: CUSTOMER, id: 'wamid.V1', type: 'audio', audio: { voice: true }, mediaBytes: randomBytes(512), mimeType: 'audio/ogg' }),
      await inboundValue(phoneNumberId, { from: CUSTOMER, id: 'wamid.R1', type: 'reaction', reaction: { message_id: ours, emoji: '❤️' } }),
      await inboundValue(phoneNumberId, { from: CUSTOMER, id: 'wamid.B1', type: 'interactive', interactive: { type: 'button_reply', button_reply: { id: 'yes', title: 'Yes' } } }),
      await inboundValue(phoneNumberId, { from: CUSTOMER, id: 'wamid.Q1', type: 'text', text: { body: 're' }, context: { from: '15550001111', id: ours } }),
    ];
    for (const value of values) expect(await provider.execute('waba.inbound', { value })).toEqual({ messages: 1, statuses: 0 });
    const events = received(ctx);
    expect(events.map((e) => e.eventId)).toEqual(['waba:m:wamid.T1', 'waba:m:wamid.I1', 'waba:m:wamid.V1', 'waba:m:wamid.R1', 'waba:m:wamid.B1', 'waba:m:wamid.Q1']);
    const data = events.map((e) => (e.event as Extract<WorkerEvent, { type: 'message.received' }>).data);
    for (const d of data) expect(Value.Check(ReceivedMessage, d)).toBe(true);
    expect(data[0]).toMatchObject({ id: 'wamid.T1', from: CUSTOMER, chat: CUSTOMER, type: 'text', text: 'oi' });
    expect(data[1]).toMatchObject({ type: 'image', caption: 'foto', media: { mimetype: 'image/jpeg', size: 4096 } });
    expect(Buffer.from(data[1]!.media!.data!, 'base64')).toEqual(image);
    expect(data[2]).toMatchObject({ type: 'audio', ptt: true, media: { mimetype: 'audio/ogg', size: 512 } });
    expect(data[3]).toMatchObject({ type: 'reaction', emoji: '❤️', target: { id: ours, chat: CUSTOMER, fromMe: true } });
    expect(data[4]).toMatchObject({ type: 'button', button: { id: 'yes', title: 'Yes' } });
    expect(data[5]).toMatchObject({ type: 'text', text: 're', replyTo: { id: ours, chat: CUSTOMER, fromMe: true } });

    // The gateway redelivers a value (a retried webhook): same event ids, stored once by the gateway.
    const count = events.length;
    await provider.execute('waba.inbound', { value: values[0]! });
    expect(received(ctx).slice(count).map((e) => e.eventId)).toEqual(['waba:m:wamid.T1']);
  });

  test('a media download that fails keeps the message: media without data', async () => {
    const { provider, ctx, phoneNumberId } = await connected();
    const value = await inboundValue(phoneNumberId, { from: CUSTOMER, id: 'wamid.D1', type: 'document', document: { filename: 'a.pdf' }, mediaBytes: randomBytes(100), mimeType: 'application/pdf' });
    graph.injectError({ path: 'download', phoneNumberId, code: 131052, httpStatus: 404, times: 10 });
    await provider.execute('waba.inbound', { value });
    const [event] = received(ctx);
    const data = (event!.event as Extract<WorkerEvent, { type: 'message.received' }>).data;
    expect(data).toMatchObject({ id: 'wamid.D1', type: 'document', media: { mimetype: 'application/pdf', filename: 'a.pdf', size: 100 } });
    expect(data.media!.data).toBeUndefined();
  });

  test('statuses: ours become message.status with the gateway messageId; failed carries code and providerCode; others are skipped', async () => {
    const { provider, ctx, phoneNumberId } = await connected();
    const b = base();
    const { providerMessageId: wamid } = (await provider.execute('send', { ...b, type: 'text', text: 'tracked' })) as { providerMessageId: string };
    const delivered = await graph.pushStatus(phoneNumberId, { wamid, status: 'delivered', recipientId: CUSTOMER });
    const failed = await graph.pushStatus(phoneNumberId, { wamid, status: 'failed', recipientId: CUSTOMER, errors: [{ code: 131026 }] });
    const foreign = await graph.pushStatus(phoneNumberId, { wamid: 'wamid.NOT_OURS', status: 'read', recipientId: CUSTOMER });
    const valueOf = (r: { payload: unknown }) => (r.payload as { entry: { changes: { value: Record<string, unknown> }[] }[] }).entry[0]!.changes[0]!.value;
    expect(await provider.execute('waba.inbound', { value: valueOf(delivered) })).toEqual({ messages: 0, statuses: 1 });
    expect(await provider.execute('waba.inbound', { value: valueOf(failed) })).toEqual({ messages: 0, statuses: 1 });
    expect(await provider.execute('waba.inbound', { value: valueOf(foreign) })).toEqual({ messages: 0, statuses: 0 });
    const statuses = ctx.events.filter((e) => e.event.type === 'message.status');
    expect(statuses.map((e) => e.eventId)).toEqual([`waba:s:${wamid}:delivered`, `waba:s:${wamid}:failed`]);
    expect(statuses[0]!.event.data).toMatchObject({ messageId: b.messageId, status: 'delivered' });
    expect(statuses[1]!.event.data).toMatchObject({ messageId: b.messageId, status: 'failed', code: 'undeliverable', providerCode: 131026 });
    expect((statuses[1]!.event.data as { error: string }).error).toContain('Message Undeliverable');
  });
});
