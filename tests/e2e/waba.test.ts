/**
 * The Cloud API engine end to end: a real gateway process with real waba
 * workers (Bun), the in-repo fake Graph API on loopback standing in for
 * graph.facebook.com (WABA_GRAPH_BASE_URL, the operator setting a user
 * would change), Meta's signed webhooks pushed by the fake to the gateway's
 * callback URL, and the customer's Standard Webhooks receiver checking every
 * signature it gets.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHmac } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../gateway/src/lib/net';
import { startFakeGraph, type FakeApp, type FakeGraph } from '../../simulator/src/graph/server';
import { LABELS } from '../../gateway/src/engines/docker-spec';
import { buildImages, dockerAvailable, removeLabelled } from '../support/docker';
import { gatewayApi, startGatewayProcess, waitConnected, workerPids, type GatewayProcess } from '../support/gateway-process';
import { until } from '../support/poll';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { webhookReceiver, type Receiver } from '../support/receiver';

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
});

const WABA_ID = '102290129340398';
const APP_SECRET = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
const VERIFY_TOKEN = 'my-verify-token-42';
const CUSTOMER = '4915123450001';

let graph: FakeGraph;
let app: FakeApp;
let db: TestDatabase;
let g: GatewayProcess;
let key: string;
let receiver: Receiver;
let seq = 0;
let docker = false;
const GATEWAY_ID = `e2e-waba-${process.pid}`;

/** A Cloud API number registered at the fake, with its own token. */
function newNumber() {
  seq += 1;
  const phoneNumberId = `10${String(Date.now() % 1e9).padStart(9, '0')}${seq}`;
  const phone = `1555000${String(1000 + seq)}`;
  const accessToken = `EAAG${'x'.repeat(40)}${seq}tk${seq}`;
  graph.addPhoneNumber({ phoneNumberId, wabaId: WABA_ID, displayPhoneNumber: phone, verifiedName: `Shop ${seq}`, accessToken, app });
  return { phoneNumberId, phone, accessToken, waba: { phoneNumberId, wabaId: WABA_ID, accessToken, appSecret: APP_SECRET, verifyToken: VERIFY_TOKEN } };
}

const api = (method: string, path: string, body?: unknown, apiKey = key) => gatewayApi(g, method, path, apiKey, body);

async function createWaba(n = newNumber(), apiKey = key) {
  const created = await api('POST', '/api/instances', { provider: 'waba', phone: n.phone, waba: n.waba }, apiKey);
  expect(created.status).toBe(200);
  return { ...n, id: created.body.id as number, view: created.body };
}

async function eventsOf(id: number, type: string): Promise<any[]> {
  const rows = await db.database.sql`select data from events where instance_id = ${id} and type = ${type} order by id`;
  return rows.map((r) => r.data);
}

async function inboundCommandsDone(id: number): Promise<boolean> {
  const [row] = await db.database.sql`select count(*)::int as n from commands where instance_id = ${id} and name = 'waba.inbound' and status = 'pending'`;
  return row!.n === 0;
}

async function messageStatus(id: number, messageId: string): Promise<string> {
  return (await api('GET', `/api/instances/${id}/messages/${messageId}`)).body?.status;
}

let main: Awaited<ReturnType<typeof createWaba>>;

beforeAll(async () => {
  graph = await startFakeGraph({ port: 0 });
  cleanup.push(() => graph.close());
  app = graph.addApp({ appSecret: APP_SECRET, verifyToken: VERIFY_TOKEN });
  db = await createTestDatabase();
  cleanup.push(() => db.drop());
  const dir = await mkdtemp(join(tmpdir(), 'wgs-e2e-waba-'));
  await chmod(dir, 0o755);
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  docker = await dockerAvailable();
  if (docker) cleanup.push(() => removeLabelled(`${LABELS.gateway}=${GATEWAY_ID}`));
  g = await startGatewayProcess(
    {
      DATABASE_URL: db.url,
      ADMIN_API_SECRET: 's',
      DATA_DIR: dir,
      GATEWAY_ID,
      WABA_GRAPH_BASE_URL: graph.url,
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
      ...(docker && { WORKER_IMAGE: buildImages().typescript }),
    },
    cleanup,
  );
  key = (await gatewayApi(g, 'POST', '/admin/users', undefined, { email: 'waba@example.com' })).body.apiKey;
  receiver = webhookReceiver(await freePort(), cleanup);
  main = await createWaba();
  // The Meta app's one callback URL: this instance's.
  app.callbackUrl = `${g.url}/webhooks/waba/${main.id}`;
  const hook = await api('POST', `/api/instances/${main.id}/webhooks`, { url: receiver.url('/waba') });
  expect(hook.status).toBe(201);
  receiver.secrets.set('/waba', hook.body.secret);
}, 90_000);

describe('a waba instance', () => {
  test('is connected once the phone number lookup succeeds; secrets are never shown', async () => {
    const view = await waitConnected(g, main.id, key);
    expect(view.stateReason).toContain('Shop');
    expect(view.waba).toEqual({
      phoneNumberId: main.phoneNumberId,
      wabaId: WABA_ID,
      accessToken: `…${main.accessToken.slice(-4)}`,
      appSecret: true,
      verifyToken: true,
      callbackPath: `/webhooks/waba/${main.id}`,
    });
    const listed = JSON.stringify((await api('GET', '/api/instances')).body);
    for (const secret of [main.accessToken, APP_SECRET, VERIFY_TOKEN]) expect(listed).not.toContain(secret);
    // Sealed at rest too.
    const [row] = await db.database.sql`select * from waba_accounts where instance_id = ${main.id}`;
    for (const secret of [main.accessToken, APP_SECRET, VERIFY_TOKEN]) expect(JSON.stringify(row)).not.toContain(secret);
    // The worker asked Meta with the token, on the configured version's path.
    const lookup = graph.requests.find((r) => r.method === 'GET' && r.path.endsWith(`/${main.phoneNumberId}`));
    expect(lookup?.headers.authorization).toBe(`Bearer ${main.accessToken}`);
  });

  test('bad account input is 422 naming the field, and nothing is created', async () => {
    const n = newNumber();
    const cases: [unknown, string][] = [
      [undefined, "'waba'"],
      [{ ...n.waba, phoneNumberId: undefined }, "'waba.phoneNumberId'"],
      [{ ...n.waba, wabaId: 'abc' }, "'waba.wabaId'"],
      [{ ...n.waba, accessToken: 'short' }, "'waba.accessToken'"],
      [{ ...n.waba, appSecret: 'has space in it' }, "'waba.appSecret'"],
      [{ ...n.waba, verifyToken: '' }, "'waba.verifyToken'"],
      [{ ...n.waba, extra: 1 }, "'waba.extra'"],
      ['not an object', "'waba'"],
    ];
    for (const [waba, field] of cases) {
      const r = await api('POST', '/api/instances', { provider: 'waba', phone: n.phone, ...(waba !== undefined && { waba }) });
      expect(r.status).toBe(422);
      expect(r.body.error).toContain(field);
    }
    const onSandbox = await api('POST', '/api/instances', { provider: 'sandbox', phone: n.phone, waba: n.waba });
    expect(onSandbox.status).toBe(422);
    expect(onSandbox.body.error).toContain('only for provider waba');
    // The same Cloud API number twice for one tenant: 409.
    const twice = await api('POST', '/api/instances', { provider: 'waba', phone: '15550009999', waba: main.waba });
    expect(twice.status).toBe(409);
    expect(twice.body.code).toBe('phone_number_id_taken');
    expect((await api('GET', '/api/instances')).body.map((i: any) => i.phone)).not.toContain(n.phone);
  });

  test("Meta's verification handshake: the challenge echoed for the right verify token, 403 otherwise", async () => {
    const verified = await graph.verifyCallback(app);
    expect(verified.ok).toBe(true);
    const url = (token: string) => `${g.url}/webhooks/waba/${main.id}?hub.mode=subscribe&hub.verify_token=${token}&hub.challenge=1158201444`;
    const ok = await fetch(url(VERIFY_TOKEN));
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('1158201444');
    expect((await fetch(url('wrong'))).status).toBe(403);
    expect((await fetch(`${g.url}/webhooks/waba/${main.id}?hub.mode=unsubscribe&hub.verify_token=${VERIFY_TOKEN}&hub.challenge=1`)).status).toBe(403);
    expect((await fetch(`${g.url}/webhooks/waba/999999?hub.mode=subscribe&hub.verify_token=${VERIFY_TOKEN}&hub.challenge=1`)).status).toBe(404);
  });

  test('no QR and no pairing code: 422 unsupported_for_provider', async () => {
    const qr = await api('GET', `/api/instances/${main.id}/qr?format=json`);
    expect(qr.status).toBe(422);
    expect(qr.body.code).toBe('unsupported_for_provider');
    const code = await api('POST', `/api/instances/${main.id}/pair-code`, {});
    expect(code.status).toBe(422);
    expect(code.body.code).toBe('unsupported_for_provider');
  });
});

describe('sending through the Cloud API', () => {
  beforeAll(async () => {
    await waitConnected(g, main.id, key);
    // The customer wrote first: the 24-hour window is open for free-form messages.
    const opened = await graph.pushMessage(main.phoneNumberId, { from: CUSTOMER, name: 'Ana', type: 'text', text: { body: 'hi shop' } });
    expect(opened.status).toBe(200);
  });

  test("a text goes out with exactly Meta's payload, and Meta's statuses advance it to delivered, signed to the customer's webhook", async () => {
    const sent = await api('POST', `/api/instances/${main.id}/send`, { to: CUSTOMER, text: 'Your order shipped: https://example.com/t/1', previewUrl: true });
    expect(sent.status).toBe(200);
    const out = graph.sent(main.phoneNumberId).at(-1)!;
    expect(out.payload).toEqual({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: CUSTOMER,
      type: 'text',
      text: { body: 'Your order shipped: https://example.com/t/1', preview_url: true },
    });
    const message = (await api('GET', `/api/instances/${main.id}/messages/${sent.body.id}`)).body;
    expect(message.providerMessageId).toBe(out.wamid);
    await until('delivered', async () => (await messageStatus(main.id, sent.body.id)) === 'delivered');
    await until('the delivered status at the customer webhook', () =>
      receiver.delivered.some((d) => d.type === 'message.status' && d.data.messageId === sent.body.id && d.data.status === 'delivered'),
    );
    // Read, pushed by Meta later.
    expect((await graph.pushStatus(main.phoneNumberId, { wamid: out.wamid, status: 'read', recipientId: CUSTOMER })).status).toBe(200);
    await until('read', async () => (await messageStatus(main.id, sent.body.id)) === 'read');
  });

  test('a template with parameters', async () => {
    graph.addTemplate(WABA_ID, {
      name: 'order_update',
      language: 'en_US',
      category: 'UTILITY',
      components: [{ type: 'BODY', text: 'Hi {{1}}, order {{2}} is on its way' }],
    });
    const template = {
      name: 'order_update',
      language: 'en_US',
      components: [{ type: 'body', parameters: [{ type: 'text', text: 'Ana' }, { type: 'text', text: '#1042' }] }],
    };
    const sent = await api('POST', `/api/instances/${main.id}/send`, { to: CUSTOMER, type: 'template', template });
    expect(sent.status).toBe(200);
    expect(graph.sent(main.phoneNumberId).at(-1)!.payload).toEqual({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: CUSTOMER,
      type: 'template',
      template: { name: 'order_update', language: { code: 'en_US' }, components: template.components },
    });
    const missing = await api('POST', `/api/instances/${main.id}/send`, { to: CUSTOMER, type: 'template', template: { name: 'no_such_template', language: 'en_US' } });
    expect(missing.status).toBe(422);
    expect(missing.body).toMatchObject({ code: 'template_error', providerCode: 132001 });
    const templates = await api('GET', `/api/instances/${main.id}/templates?refresh=true`);
    expect(templates.status).toBe(200);
    expect(templates.body.templates).toContainEqual(expect.objectContaining({ name: 'order_update', language: 'en_US', status: 'APPROVED' }));
    expect(templates.body.stale).toBe(false);
  });

  test('every other type the Cloud API has, as Meta documents it', async () => {
    const png = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');
    const before = graph.sent(main.phoneNumberId).length;
    const first = graph.sent(main.phoneNumberId).at(-1)!;
    const bodies: Record<string, unknown>[] = [
      { type: 'image', media: { url: 'https://cdn.example.com/a.jpg', mimetype: 'image/jpeg' }, caption: 'look' },
      { type: 'image', media: { data: png.toString('base64'), mimetype: 'image/png' } },
      { type: 'video', media: { url: 'https://cdn.example.com/v.mp4', mimetype: 'video/mp4' } },
      { type: 'audio', media: { url: 'https://cdn.example.com/a.ogg', mimetype: 'audio/ogg' }, ptt: true },
      { type: 'document', media: { url: 'https://cdn.example.com/i.pdf', mimetype: 'application/pdf', filename: 'invoice.pdf' }, caption: 'your invoice' },
      { type: 'sticker', media: { url: 'https://cdn.example.com/s.webp', mimetype: 'image/webp' } },
      { type: 'location', location: { latitude: 52.52, longitude: 13.405, name: 'Shop', address: 'Alexanderplatz 1' } },
      { type: 'contact', contact: { name: 'Support', phone: '+49 30 1234567' } },
      { type: 'reaction', target: first.wamid, emoji: '👍' },
      { type: 'text', text: 'a reply', replyTo: first.wamid },
      { type: 'interactive', interactive: { kind: 'buttons', body: 'Confirm?', buttons: [{ id: 'yes', title: 'Yes' }, { id: 'no', title: 'No' }] } },
      {
        type: 'interactive',
        interactive: { kind: 'list', body: 'Pick a slot', button: 'Slots', sections: [{ title: 'Today', rows: [{ id: 's1', title: '10:00' }] }] },
      },
    ];
    // Replies and reactions point at messages the API knows: a received one by its provider id.
    const received = (await eventsOf(main.id, 'message.received')).at(-1);
    bodies[8] = { type: 'reaction', target: received.id, emoji: '👍' };
    bodies[9] = { type: 'text', text: 'a reply', replyTo: received.id };
    for (const body of bodies) {
      const r = await api('POST', `/api/instances/${main.id}/send`, { to: CUSTOMER, ...body });
      expect({ type: body.type, status: r.status, body: r.body }).toMatchObject({ type: body.type, status: 200 });
    }
    const payloads = graph.sent(main.phoneNumberId).slice(before).map((s) => s.payload);
    expect(payloads.map((p) => p.type)).toEqual(['image', 'image', 'video', 'audio', 'document', 'sticker', 'location', 'contacts', 'reaction', 'text', 'interactive', 'interactive']);
    expect(payloads[0].image).toEqual({ link: 'https://cdn.example.com/a.jpg', caption: 'look' });
    // Inline bytes were uploaded through the media endpoint first, then sent by id.
    const uploaded = graph.media(payloads[1].image.id);
    expect(Buffer.from(uploaded!.bytes)).toEqual(png);
    expect(payloads[4].document).toEqual({ link: 'https://cdn.example.com/i.pdf', caption: 'your invoice', filename: 'invoice.pdf' });
    expect(payloads[6].location).toEqual({ latitude: 52.52, longitude: 13.405, name: 'Shop', address: 'Alexanderplatz 1' });
    expect(payloads[7].contacts[0].name.formatted_name).toBe('Support');
    expect(payloads[7].contacts[0].phones[0].phone).toBe('+49301234567');
    expect(payloads[8].reaction).toEqual({ message_id: received.id, emoji: '👍' });
    expect(payloads[9].context).toEqual({ message_id: received.id });
    expect(payloads[10].interactive).toEqual({
      type: 'button',
      body: { text: 'Confirm?' },
      action: { buttons: [{ type: 'reply', reply: { id: 'yes', title: 'Yes' } }, { type: 'reply', reply: { id: 'no', title: 'No' } }] },
    });
    expect(payloads[11].interactive).toMatchObject({ type: 'list', body: { text: 'Pick a slot' }, action: { button: 'Slots', sections: [{ title: 'Today', rows: [{ id: 's1', title: '10:00' }] }] } });

    // Read receipts.
    const read = await api('POST', `/api/instances/${main.id}/read`, { chat: CUSTOMER, messageIds: [received.id] });
    expect(read.status).toBe(200);
    expect(graph.readReceipts(main.phoneNumberId).map((r) => r.messageId)).toContain(received.id);
  });

  test('what the Cloud API cannot do, and what Meta refuses, are clear errors with Meta\'s code', async () => {
    const sent = graph.sent(main.phoneNumberId).length;
    const mine = (await db.database.sql`select id from messages where instance_id = ${main.id} and provider_message_id is not null limit 1`)[0]!.id as string;
    for (const body of [
      { type: 'edit', target: mine, text: 'changed' },
      { type: 'revoke', target: mine },
    ]) {
      const r = await api('POST', `/api/instances/${main.id}/send`, { to: CUSTOMER, ...body });
      expect(r.status).toBe(422);
      expect(r.body.code).toBe('unsupported_for_provider');
      expect(r.body.error).toContain('waba');
    }
    expect(graph.sent(main.phoneNumberId).length).toBe(sent);

    const cases: [number, number, string][] = [
      [131047, 422, 'template_required'],
      [131026, 422, 'undeliverable'],
      [131049, 422, 'ecosystem_limited'],
      [132000, 422, 'template_error'],
      [368, 403, 'account_restricted'],
      [100, 422, 'provider_rejected'],
    ];
    for (const [metaCode, status, code] of cases) {
      graph.injectError({ path: 'messages', phoneNumberId: main.phoneNumberId, code: metaCode });
      const r = await api('POST', `/api/instances/${main.id}/send`, { to: CUSTOMER, text: `refused ${metaCode}` });
      expect({ metaCode, status: r.status, body: r.body }).toMatchObject({ metaCode, status, body: { code, providerCode: metaCode } });
      const message = await db.database.sql`select status from messages where instance_id = ${main.id} and text = ${`refused ${metaCode}`}`;
      expect(message[0]!.status).toBe('failed');
    }
    // Meta's spam rate limit (131048) pauses the number and queues the message again for the pause's end;
    // resume ends the pause at once and it goes to Meta.
    graph.injectError({ path: 'messages', phoneNumberId: main.phoneNumberId, code: 131048 });
    const spam = await api('POST', `/api/instances/${main.id}/send`, { to: CUSTOMER, text: 'refused 131048, then sent' });
    expect(spam.status).toBe(202);
    expect(spam.body.status).toBe('scheduled');
    const paused = await api('GET', `/api/instances/${main.id}`);
    expect(paused.body.pausedReason).toContain('spam_rate_limited');
    expect(Date.parse(spam.body.scheduledAt)).toBe(Date.parse(paused.body.pausedUntil));
    expect(await messageStatus(main.id, spam.body.id)).toBe('queued');
    expect((await api('POST', `/api/instances/${main.id}/resume`)).body.pausedUntil).toBeNull();
    await until('the requeued message at Meta', () => graph.sent(main.phoneNumberId).some((s) => s.payload.text?.body === 'refused 131048, then sent'));
    await until('the requeued message sent', async () => (await messageStatus(main.id, spam.body.id)) !== 'queued');
    expect(graph.sent(main.phoneNumberId).filter((s) => s.payload.text?.body === 'refused 131048, then sent')).toHaveLength(1);
    // Throughput limits are retried with backoff: the send succeeds.
    graph.injectError({ path: 'messages', phoneNumberId: main.phoneNumberId, code: 130429, times: 2 });
    const retried = await api('POST', `/api/instances/${main.id}/send`, { to: CUSTOMER, text: 'after a throughput limit' });
    expect(retried.status).toBe(200);
    expect(graph.sent(main.phoneNumberId).at(-1)!.payload.text.body).toBe('after a throughput limit');
  });

  test('outside the 24-hour window Meta accepts, then fails the message: failed with template_required at the webhook', async () => {
    const stranger = '4915123459999';
    const sent = await api('POST', `/api/instances/${main.id}/send`, { to: stranger, text: 'hello out of the blue' });
    expect(sent.status).toBe(200);
    await until('failed', async () => (await messageStatus(main.id, sent.body.id)) === 'failed');
    const failed = await until('the failed status at the customer webhook', () =>
      receiver.delivered.find((d) => d.type === 'message.status' && d.data.messageId === sent.body.id && d.data.status === 'failed'),
    );
    expect(failed.data).toMatchObject({ code: 'template_required', providerCode: 131047 });
  });
});

describe("Meta's inbound webhooks", () => {
  test('a text and an image arrive as message.received at the customer webhook; the image is served by the gateway', async () => {
    const bytes = new Uint8Array(Buffer.from('ffd8ffe000104a464946000101', 'hex'));
    const text = await graph.pushMessage(main.phoneNumberId, { from: CUSTOMER, name: 'Ana', type: 'text', text: { body: 'where is my order?' } });
    expect(text.status).toBe(200);
    const image = await graph.pushMessage(main.phoneNumberId, { from: CUSTOMER, type: 'image', image: { caption: 'this one' }, mediaBytes: bytes, mimeType: 'image/jpeg' });
    expect(image.status).toBe(200);
    const gotText = await until('the text at the webhook', () =>
      receiver.delivered.find((d) => d.type === 'message.received' && d.data.text === 'where is my order?'),
    );
    expect(gotText.data).toMatchObject({ from: CUSTOMER, type: 'text' });
    const gotImage = await until('the image at the webhook', () => receiver.delivered.find((d) => d.type === 'message.received' && d.data.caption === 'this one'));
    expect(gotImage.data).toMatchObject({ from: CUSTOMER, type: 'image', media: { mimetype: 'image/jpeg' } });
    expect(gotImage.data.media.data).toBeUndefined();
    const download = await fetch(`${g.url}${new URL(gotImage.data.media.url, g.url).pathname}`, { headers: { authorization: `Bearer ${key}` } });
    expect(download.status).toBe(200);
    expect(new Uint8Array(await download.arrayBuffer())).toEqual(bytes);
  });

  test('a redelivered webhook is stored once', async () => {
    const id = `wamid.redelivered${Date.now()}`;
    const first = await graph.pushMessage(main.phoneNumberId, { id, from: CUSTOMER, type: 'text', text: { body: 'twice' } });
    expect(first.status).toBe(200);
    // Meta retries the same body with the same signature.
    const body = JSON.stringify(first.payload);
    const again = await graph.pushRaw(app, body);
    expect(again.status).toBe(200);
    await until('both deliveries processed', () => inboundCommandsDone(main.id));
    await until('the message stored', async () => (await eventsOf(main.id, 'message.received')).some((e) => e.id === id));
    expect((await eventsOf(main.id, 'message.received')).filter((e) => e.id === id)).toHaveLength(1);
  });

  test('forged, missing and replayed-with-a-changed-body signatures are 401 and record nothing', async () => {
    const countRows = async () =>
      (await db.database.sql`select (select count(*) from commands where instance_id = ${main.id})::int as c, (select count(*) from events where instance_id = ${main.id})::int as e`)[0]!;
    const before = await countRows();
    const genuine = await graph.pushMessage(main.phoneNumberId, { from: CUSTOMER, type: 'text', text: { body: 'genuine' } });
    expect(genuine.status).toBe(200);
    await until('the genuine message stored', async () => (await eventsOf(main.id, 'message.received')).some((e) => e.text === 'genuine'));
    const afterGenuine = await countRows();
    expect(afterGenuine.c).toBeGreaterThan(before.c);

    const body = JSON.stringify(genuine.payload);
    const signature = `sha256=${createHmac('sha256', APP_SECRET).update(body).digest('hex')}`;
    const tampered = body.replace('genuine', 'tampered');
    const forged = `sha256=${createHmac('sha256', 'not-the-app-secret').update(body).digest('hex')}`;
    for (const [raw, sig] of [
      [body, forged],
      [body, null],
      [tampered, signature],
      [body, 'sha256=zz'],
    ] as const) {
      const r = await graph.pushRaw(app, raw, { signature: sig });
      expect(r.status).toBe(401);
    }
    expect(await countRows()).toEqual(afterGenuine);
    expect((await eventsOf(main.id, 'message.received')).some((e) => e.text === 'tampered')).toBe(false);
  });

  test("one callback URL serves every number of the app: routed by phone_number_id within the tenant, never to another tenant's", async () => {
    const second = await createWaba();
    await waitConnected(g, second.id, key);
    // Another tenant registers the same Cloud API number and app secret (a mistake, or an attempt): it must get nothing through our URL.
    const other = (await gatewayApi(g, 'POST', '/admin/users', undefined, { email: 'other@example.com' })).body.apiKey as string;
    const theirs = await api('POST', '/api/instances', { provider: 'waba', phone: '15550008888', waba: { ...second.waba } }, other);
    expect(theirs.status).toBe(200);
    const pushed = await graph.pushMessage(second.phoneNumberId, { from: CUSTOMER, type: 'text', text: { body: 'to the second number' } });
    expect(pushed.status).toBe(200);
    await until('routed to the second instance', async () => (await eventsOf(second.id, 'message.received')).some((e) => e.text === 'to the second number'));
    expect((await eventsOf(theirs.body.id, 'message.received')).length).toBe(0);
    expect((await eventsOf(main.id, 'message.received')).some((e) => e.text === 'to the second number')).toBe(false);
    // An unknown number is acknowledged (Meta must not retry forever) and dropped.
    graph.addPhoneNumber({ phoneNumberId: '777000111', wabaId: WABA_ID, displayPhoneNumber: '15550007777', accessToken: 'EAAGunknownunknownunknown', app });
    const unknown = await graph.pushMessage('777000111', { from: CUSTOMER, type: 'text', text: { body: 'nobody' } });
    expect(unknown.status).toBe(200);
    expect(JSON.parse(unknown.body)).toMatchObject({ routed: 0, unrouted: 1 });
  });
});

describe('lifecycle', () => {
  test('kill -9 of the worker, and moves to another process node and (with Docker) a container and back: connected, sending, no new setup', async () => {
    const n = await createWaba();
    await waitConnected(g, n.id, key);
    const sendOk = async (text: string) => {
      const r = await api('POST', `/api/instances/${n.id}/send`, { to: CUSTOMER, text });
      expect({ text, status: r.status }).toEqual({ text, status: 200 });
      expect(graph.sent(n.phoneNumberId).at(-1)!.payload.text.body).toBe(text);
    };
    const [pid] = await workerPids(n.id, 'workers/src/main.ts', g.proc.pid);
    expect(pid).toBeGreaterThan(0);
    process.kill(pid!, 'SIGKILL');
    await until('a new worker', async () => {
      const pids = await workerPids(n.id, 'workers/src/main.ts', g.proc.pid);
      return pids.length === 1 && pids[0] !== pid;
    });
    await waitConnected(g, n.id, key);
    await sendOk('after kill -9');
    expect((await gatewayApi(g, 'POST', '/admin/nodes', undefined, { name: 'p2', engine: 'process' })).status).toBe(200);
    const toP2 = await api('POST', `/api/instances/${n.id}/migrate`, { target_node: 'p2' });
    expect(toP2).toMatchObject({ status: 200, body: { from: 'local', to: 'p2' } });
    await waitConnected(g, n.id, key);
    await sendOk('on p2');
    if (!docker) return;
    expect((await gatewayApi(g, 'POST', '/admin/nodes', undefined, { name: 'dock', engine: 'docker', endpoint: 'unix:///var/run/docker.sock' })).status).toBe(200);
    expect(await api('POST', `/api/instances/${n.id}/migrate`, { target_node: 'dock' })).toMatchObject({ status: 200, body: { to: 'dock' } });
    await waitConnected(g, n.id, key);
    expect(await workerPids(n.id, 'workers/src/main.ts', g.proc.pid)).toEqual([]);
    await sendOk('in a container');
    expect(await api('POST', `/api/instances/${n.id}/migrate`, { target_node: 'local' })).toMatchObject({ status: 200, body: { to: 'local' } });
    await waitConnected(g, n.id, key);
    await sendOk('back on local');
  }, 120_000);

  test('an expired token: failed with Meta\'s message; a new token through PATCH: connected again', async () => {
    const n = await createWaba();
    await waitConnected(g, n.id, key);
    graph.expireToken(n.accessToken);
    expect((await api('POST', `/api/instances/${n.id}/restart`)).status).toBe(200);
    const failed = await until('failed', async () => {
      const r = await api('GET', `/api/instances/${n.id}`);
      return r.body.state === 'failed' && r.body;
    });
    expect(failed.stateReason).toContain('expired');
    const send = await api('POST', `/api/instances/${n.id}/send`, { to: CUSTOMER, text: 'with an expired token' });
    expect(send.status).toBe(503);
    expect(send.body.code).toBe('session_failed');
    expect(send.body.error).toContain('expired');
    const fresh = `EAAGfresh${'y'.repeat(40)}`;
    graph.addToken(fresh, WABA_ID);
    const patched = await api('PATCH', `/api/instances/${n.id}`, { waba: { accessToken: fresh } });
    expect(patched.status).toBe(200);
    expect(patched.body.waba.accessToken).toBe(`…${fresh.slice(-4)}`);
    await waitConnected(g, n.id, key);
    const bad = await api('PATCH', `/api/instances/${n.id}`, { waba: { accessToken: 'x' } });
    expect(bad.status).toBe(422);
    expect(bad.body.error).toContain("'waba.accessToken'");
  });

  test('logout stops sending until a restart; delete removes the account', async () => {
    const n = await createWaba();
    await waitConnected(g, n.id, key);
    expect((await api('POST', `/api/instances/${n.id}/logout`)).status).toBe(200);
    expect((await api('GET', `/api/instances/${n.id}`)).body.state).toBe('logged_out');
    const send = await api('POST', `/api/instances/${n.id}/send`, { to: CUSTOMER, text: 'after logout' });
    expect(send.status).toBe(503);
    expect((await api('POST', `/api/instances/${n.id}/restart`)).status).toBe(200);
    await waitConnected(g, n.id, key);
    expect((await api('DELETE', `/api/instances/${n.id}`)).status).toBe(204);
    expect((await db.database.sql`select 1 from waba_accounts where instance_id = ${n.id}`).length).toBe(0);
  });

  test('templates are 422 for other providers', async () => {
    const sandbox = await api('POST', '/api/instances', { provider: 'sandbox', phone: '4915100077001' });
    expect(sandbox.status).toBe(200);
    const r = await api('GET', `/api/instances/${sandbox.body.id}/templates`);
    expect(r.status).toBe(422);
    expect(r.body.code).toBe('unsupported_for_provider');
    expect((await api('POST', `/api/instances/${sandbox.body.id}/sandbox/scan`)).status).toBe(200);
    const template = await api('POST', `/api/instances/${sandbox.body.id}/send`, { to: CUSTOMER, type: 'template', template: { name: 'x', language: 'en' } });
    expect(template.status).toBe(200); // the sandbox stands in for every engine
  });
});
