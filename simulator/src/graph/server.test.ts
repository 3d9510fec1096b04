/**
 * The fake Graph API over real HTTP: a client with fetch, and a webhook
 * receiver (Bun.serve on 127.0.0.1:0) that checks Meta's signature itself.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { startFakeGraph, type FakeApp, type FakeGraph } from './server';

const SECRET = 'app-secret-1';
const TOKEN = 'EAAG-token-1';
const OTHER_TOKEN = 'EAAG-token-2';
const PHONE = '106540352242922';
const WABA = '102290129340398';
const OTHER_PHONE = '200000000000001';
const CUSTOMER = '15550001111';

interface Hook {
  body: any;
  raw: string;
  signatureOk: boolean;
  headers: Headers;
}

let graph: FakeGraph;
let app: FakeApp;
let hooks: Hook[] = [];
let receiver: ReturnType<typeof Bun.serve>;
let receiverAnswer = 200;

function verify(raw: string, header: string | null, secret: string): boolean {
  if (!header?.startsWith('sha256=')) return false;
  const want = Buffer.from('sha256=' + createHmac('sha256', secret).update(raw).digest('hex'));
  const got = Buffer.from(header);
  return want.length === got.length && timingSafeEqual(want, got);
}

async function until<T>(what: string, fn: () => T | undefined, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

const statusesFor = (wamid: string) =>
  hooks.flatMap((h) => (h.body.entry?.[0]?.changes?.[0]?.value?.statuses ?? []) as any[]).filter((s) => s.id === wamid);

async function call(method: string, path: string, body?: unknown, token: string | null = TOKEN) {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let payload: FormData | string | undefined;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const res = await fetch(`${graph.url}${path}`, { method, headers, body: payload });
  const text = await res.text();
  let parsed: any = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, body: parsed, text };
}

const send = (body: Record<string, unknown>, token: string | null = TOKEN) =>
  call('POST', `/v23.0/${PHONE}/messages`, { messaging_product: 'whatsapp', to: `+${CUSTOMER}`, ...body }, token);

beforeAll(async () => {
  receiver = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req) {
      const u = new URL(req.url);
      if (req.method === 'GET') {
        if (u.searchParams.get('hub.mode') === 'subscribe' && u.searchParams.get('hub.verify_token') === 'verify-me') {
          return new Response(u.searchParams.get('hub.challenge'));
        }
        return new Response('forbidden', { status: 403 });
      }
      const raw = await req.text();
      let body: any;
      try {
        body = JSON.parse(raw);
      } catch {
        body = raw;
      }
      hooks.push({ body, raw, signatureOk: verify(raw, req.headers.get('x-hub-signature-256'), SECRET), headers: req.headers });
      return new Response(receiverAnswer === 200 ? 'EVENT_RECEIVED' : 'nope', { status: receiverAnswer });
    },
  });
  graph = await startFakeGraph();
  app = graph.addApp({ appSecret: SECRET, callbackUrl: `http://127.0.0.1:${receiver.port}/webhook`, verifyToken: 'verify-me' });
  graph.addPhoneNumber({ phoneNumberId: PHONE, wabaId: WABA, displayPhoneNumber: '+1 555-010-0000', verifiedName: 'Acme', accessToken: TOKEN, app });
  const app2 = graph.addApp({ appSecret: 'other' });
  graph.addPhoneNumber({ phoneNumberId: OTHER_PHONE, wabaId: '300000000000001', displayPhoneNumber: '+1 555-020-0000', accessToken: OTHER_TOKEN, app: app2 });
  graph.addTemplate(WABA, {
    name: 'order_update',
    language: 'en_US',
    category: 'UTILITY',
    components: [{ type: 'BODY', text: 'Hi {{1}}, order {{2}} shipped' }],
  });
  graph.addTemplate(WABA, { name: 'promo', language: 'en_US', status: 'PENDING', category: 'MARKETING', components: [{ type: 'BODY', text: 'Sale' }] });
  graph.addTemplate(WABA, { name: 'paused_one', language: 'en_US', status: 'PAUSED', components: [{ type: 'BODY', text: 'x' }] });
  // the customer wrote: the service window is open
  const r = await graph.pushMessage(PHONE, { from: CUSTOMER, name: 'Ana', type: 'text', text: { body: 'hello' } });
  expect(r.status).toBe(200);
});

afterAll(async () => {
  await graph?.close();
  receiver?.stop(true);
});

beforeEach(() => {
  receiverAnswer = 200;
});

describe('auth', () => {
  test('unknown token → 401 code 190', async () => {
    const r = await send({ text: { body: 'x' } }, 'nope');
    expect(r.status).toBe(401);
    expect(r.body.error.code).toBe(190);
    expect(r.body.error.type).toBe('OAuthException');
    expect(typeof r.body.error.fbtrace_id).toBe('string');
  });
  test('no token → 401', async () => {
    const r = await send({ text: { body: 'x' } }, null);
    expect(r.status).toBe(401);
    expect(r.body.error.type).toBe('OAuthException');
  });
  test("another WABA's token → code 100 subcode 33", async () => {
    const r = await send({ text: { body: 'x' } }, OTHER_TOKEN);
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: 100, error_subcode: 33, type: 'GraphMethodException' });
    expect(r.body.error.message).toContain(`Unsupported post request. Object with ID '${PHONE}' does not exist`);
  });
  test('expired token → 401 code 190 subcode 463 with the session-expired message', async () => {
    const g = await startFakeGraph();
    try {
      const a = g.addApp({ appSecret: 's' });
      g.addPhoneNumber({ phoneNumberId: '1', wabaId: '2', displayPhoneNumber: '+1 555 000 0001', accessToken: 'T', app: a });
      expect((await fetch(`${g.url}/v23.0/1`, { headers: { authorization: 'Bearer T' } })).status).toBe(200);
      g.expireToken('T');
      const res = await fetch(`${g.url}/v23.0/1`, { headers: { authorization: 'Bearer T' } });
      const body: any = await res.json();
      expect(res.status).toBe(401);
      expect(body.error).toMatchObject({ code: 190, error_subcode: 463, type: 'OAuthException' });
      expect(body.error.message).toMatch(/^Error validating access token: Session has expired on \w+day, \d\d-\w{3}-\d\d \d\d:\d\d:\d\d P[DS]T\. The current time is/);
    } finally {
      await g.close();
    }
  });
});

describe('send', () => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ['text', { type: 'text', text: { body: 'hi', preview_url: false } }],
    ['default type text', { text: { body: 'no type' } }],
    ['image link', { type: 'image', image: { link: 'https://example.com/a.jpg', caption: 'c' } }],
    ['video link', { type: 'video', video: { link: 'https://example.com/a.mp4' } }],
    ['audio link', { type: 'audio', audio: { link: 'https://example.com/a.ogg' } }],
    ['document link', { type: 'document', document: { link: 'https://example.com/a.pdf', filename: 'a.pdf' } }],
    ['sticker link', { type: 'sticker', sticker: { link: 'https://example.com/a.webp' } }],
    ['location', { type: 'location', location: { latitude: 52.5, longitude: 13.4, name: 'Berlin' } }],
    ['contacts', { type: 'contacts', contacts: [{ name: { formatted_name: 'Bob B', first_name: 'Bob' }, phones: [{ phone: '+1555' }] }] }],
    ['reaction', { type: 'reaction', reaction: { message_id: 'wamid.X', emoji: '👍' } }],
    ['reaction removal', { type: 'reaction', reaction: { message_id: 'wamid.X', emoji: '' } }],
    ['reply', { type: 'text', text: { body: 'reply' }, context: { message_id: 'wamid.Y' } }],
    [
      'interactive button',
      {
        type: 'interactive',
        interactive: { type: 'button', body: { text: 'Pick' }, action: { buttons: [{ type: 'reply', reply: { id: 'a', title: 'A' } }, { type: 'reply', reply: { id: 'b', title: 'B' } }] } },
      },
    ],
    [
      'interactive list',
      {
        type: 'interactive',
        interactive: { type: 'list', body: { text: 'Menu' }, action: { button: 'Open', sections: [{ title: 'S', rows: [{ id: 'r1', title: 'Row 1' }] }] } },
      },
    ],
  ];
  for (const [name, body] of cases) {
    test(`${name} → 200 with contacts and a wamid`, async () => {
      const r = await send(body);
      expect(r.status).toBe(200);
      expect(r.body.messaging_product).toBe('whatsapp');
      expect(r.body.contacts).toEqual([{ input: `+${CUSTOMER}`, wa_id: CUSTOMER }]);
      expect(r.body.messages).toHaveLength(1);
      expect(r.body.messages[0].id).toMatch(/^wamid\.[A-Za-z0-9+/=]+$/);
      expect(r.body.messages[0].message_status).toBeUndefined();
      const sent = graph.sent(PHONE).find((s) => s.wamid === r.body.messages[0].id);
      expect(sent?.payload.to).toBe(`+${CUSTOMER}`);
    });
  }

  test('template → message_status accepted', async () => {
    const r = await send({
      type: 'template',
      template: { name: 'order_update', language: { code: 'en_US' }, components: [{ type: 'body', parameters: [{ type: 'text', text: 'Ana' }, { type: 'text', text: '42' }] }] },
    });
    expect(r.status).toBe(200);
    expect(r.body.messages[0]).toEqual({ id: expect.stringMatching(/^wamid\./), message_status: 'accepted' });
  });

  test('read receipt → {success: true}, recorded apart from sent messages', async () => {
    const before = graph.sent(PHONE).length;
    const r = await call('POST', `/v23.0/${PHONE}/messages`, { messaging_product: 'whatsapp', status: 'read', message_id: 'wamid.IN1' });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ success: true });
    expect(graph.readReceipts(PHONE)).toContainEqual({ messageId: 'wamid.IN1', phoneNumberId: PHONE });
    expect(graph.sent(PHONE).length).toBe(before);
  });

  test('no version prefix works too', async () => {
    const r = await call('POST', `/${PHONE}/messages`, { messaging_product: 'whatsapp', to: CUSTOMER, text: { body: 'x' } });
    expect(r.status).toBe(200);
  });

  const invalid: Array<[string, Record<string, unknown>, number, RegExp]> = [
    ['missing messaging_product', { messaging_product: undefined, text: { body: 'x' } }, 100, /messaging_product/],
    ['wrong messaging_product', { messaging_product: 'sms', text: { body: 'x' } }, 100, /messaging_product/],
    ['missing to', { to: undefined, text: { body: 'x' } }, 100, /to/],
    ['unknown type', { type: 'poll', poll: {} }, 100, /type must be one of/],
    ['missing text object', { type: 'text' }, 131008, /text/],
    ['missing text body', { type: 'text', text: {} }, 131008, /text\['body'\]/],
    ['text too long', { type: 'text', text: { body: 'x'.repeat(4097) } }, 100, /4096/],
    ['media without id or link', { type: 'image', image: { caption: 'c' } }, 131008, /image\['id'\] or image\['link'\]/],
    ['unknown media id', { type: 'image', image: { id: '999' } }, 100, /image\['id'\]/],
    ['location without latitude', { type: 'location', location: { longitude: 1 } }, 131008, /latitude/],
    ['contact without formatted_name', { type: 'contacts', contacts: [{ name: { first_name: 'B' } }] }, 131008, /formatted_name/],
    ['reaction without message_id', { type: 'reaction', reaction: { emoji: 'x' } }, 131008, /message_id/],
    ['template without language', { type: 'template', template: { name: 'order_update' } }, 131008, /language/],
    [
      'four buttons',
      {
        type: 'interactive',
        interactive: { type: 'button', body: { text: 'b' }, action: { buttons: [1, 2, 3, 4].map((i) => ({ type: 'reply', reply: { id: `${i}`, title: `${i}` } })) } },
      },
      131009,
      /buttons/,
    ],
    ['list without sections', { type: 'interactive', interactive: { type: 'list', body: { text: 'b' }, action: { button: 'x' } } }, 131008, /sections/],
    ['interactive without body', { type: 'interactive', interactive: { type: 'button', action: { buttons: [] } } }, 131008, /body/],
  ];
  for (const [name, body, code, detail] of invalid) {
    test(`${name} → 400 code ${code}`, async () => {
      const r = await send(body);
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe(code);
      expect(r.body.error.message).toStartWith(`(#${code})`);
      expect(`${r.body.error.message} ${r.body.error.error_data?.details}`).toMatch(detail);
      expect(r.body.error.error_data.messaging_product).toBe('whatsapp');
    });
  }

  test('template missing / not approved / paused / parameter mismatch', async () => {
    const missing = await send({ type: 'template', template: { name: 'nope', language: { code: 'en_US' } } });
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe(132001);
    expect(missing.body.error.error_data.details).toBe('template name (nope) does not exist in en_US');
    const wrongLang = await send({ type: 'template', template: { name: 'order_update', language: { code: 'pt_BR' } } });
    expect(wrongLang.body.error.code).toBe(132001);
    const pending = await send({ type: 'template', template: { name: 'promo', language: { code: 'en_US' } } });
    expect(pending.body.error.code).toBe(132001);
    const paused = await send({ type: 'template', template: { name: 'paused_one', language: { code: 'en_US' } } });
    expect(paused.body.error.code).toBe(132015);
    const mismatch = await send({
      type: 'template',
      template: { name: 'order_update', language: { code: 'en_US' }, components: [{ type: 'body', parameters: [{ type: 'text', text: 'Ana' }] }] },
    });
    expect(mismatch.status).toBe(400);
    expect(mismatch.body.error.code).toBe(132000);
    expect(mismatch.body.error.error_data.details).toContain('(1) does not match the expected number of params (2)');
  });
});

describe('injected errors', () => {
  test('the next matching call fails with the code, then calls succeed again', async () => {
    graph.injectError({ path: 'messages', phoneNumberId: PHONE, code: 130429 });
    const r = await send({ text: { body: 'x' } });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: 130429, message: '(#130429) Rate limit hit', type: 'OAuthException' });
    expect(r.body.error.error_data.details).toBe('Cloud API message throughput has been reached.');
    expect((await send({ text: { body: 'x' } })).status).toBe(200);
  });
  test('times, httpStatus, subcode, message; other paths unaffected', async () => {
    graph.injectError({ path: 'messages', code: 131000, times: 2, httpStatus: 503, subcode: 2494010, message: 'Boom' });
    expect((await call('GET', `/v23.0/${PHONE}`)).status).toBe(200);
    for (let i = 0; i < 2; i++) {
      const r = await send({ text: { body: 'x' } });
      expect(r.status).toBe(503);
      expect(r.body.error).toMatchObject({ code: 131000, error_subcode: 2494010, message: '(#131000) Boom' });
    }
    expect((await send({ text: { body: 'x' } })).status).toBe(200);
  });
  test('status error: 200 + wamid, then a signed failed webhook with the code', async () => {
    graph.injectStatusError({ to: CUSTOMER, code: 131026 });
    const r = await send({ text: { body: 'x' } });
    expect(r.status).toBe(200);
    const wamid = r.body.messages[0].id;
    const failed = await until('failed status', () => statusesFor(wamid).find((s) => s.status === 'failed'));
    expect(failed.errors[0]).toMatchObject({ code: 131026, title: 'Message Undeliverable' });
    expect(failed.recipient_id).toBe(CUSTOMER);
    expect(statusesFor(wamid).some((s) => s.status === 'sent')).toBe(false);
  });
});

describe('24-hour window', () => {
  test('free-form outside the window → 200, then failed 131047; templates pass', async () => {
    const stranger = '15559990000';
    const r = await send({ to: stranger, text: { body: 'hi' } });
    expect(r.status).toBe(200);
    const wamid = r.body.messages[0].id;
    const failed = await until('131047', () => statusesFor(wamid).find((s) => s.status === 'failed'));
    expect(failed.errors[0]).toMatchObject({ code: 131047, title: 'Re-engagement message', message: 'Re-engagement message' });
    expect(failed.errors[0].error_data.details).toContain('24 hours');

    const t = await send({
      to: stranger,
      type: 'template',
      template: { name: 'order_update', language: { code: 'en_US' }, components: [{ type: 'body', parameters: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }] },
    });
    const tid = t.body.messages[0].id;
    const delivered = await until('template delivered', () => statusesFor(tid).find((s) => s.status === 'delivered'));
    expect(delivered.pricing).toMatchObject({ billable: true, category: 'utility' });
  });
  test('an inbound message older than 24 h does not open it; a fresh one does', async () => {
    const c = '15558887777';
    await graph.pushMessage(PHONE, { from: c, type: 'text', text: { body: 'old' }, timestamp: Math.floor(Date.now() / 1000) - 25 * 3600 });
    const old = await send({ to: c, text: { body: 'x' } });
    await until('131047', () => statusesFor(old.body.messages[0].id).find((s) => s.status === 'failed'));
    await graph.pushMessage(PHONE, { from: c, type: 'text', text: { body: 'new' } });
    const fresh = await send({ to: c, text: { body: 'x' } });
    await until('delivered', () => statusesFor(fresh.body.messages[0].id).find((s) => s.status === 'delivered'));
    expect(statusesFor(fresh.body.messages[0].id).some((s) => s.status === 'failed')).toBe(false);
  });
});

describe('auto statuses', () => {
  test('sent then delivered, in order, signed, shaped like Meta', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await send({ text: { body: `n${i}` } })).body.messages[0].id);
    for (const id of ids) {
      await until(`delivered ${id}`, () => statusesFor(id).find((s) => s.status === 'delivered'));
      expect(statusesFor(id).map((s) => s.status)).toEqual(['sent', 'delivered']);
      const sent = statusesFor(id)[0];
      expect(sent).toMatchObject({ recipient_id: CUSTOMER, pricing: { billable: false, category: 'service' } });
      expect(sent.timestamp).toMatch(/^\d+$/);
    }
    expect(hooks.every((h) => h.signatureOk)).toBe(true);
  });
  test('switched off: no status webhooks', async () => {
    graph.setAutoStatuses(false);
    try {
      const id = (await send({ text: { body: 'quiet' } })).body.messages[0].id;
      // a later push arrives after anything queued for the message would have
      await graph.pushStatus(PHONE, { wamid: 'wamid.marker', status: 'read', recipientId: CUSTOMER });
      expect(statusesFor(id)).toEqual([]);
    } finally {
      graph.setAutoStatuses(true);
    }
  });
});

describe('media', () => {
  test('upload → lookup → download (and 401 without token), then delete', async () => {
    const bytes = new Uint8Array([0xff, 0xd8, 0xff, 1, 2, 3, 4]);
    const form = new FormData();
    form.set('messaging_product', 'whatsapp');
    form.set('type', 'image/jpeg');
    form.set('file', new File([bytes], 'a.jpg', { type: 'image/jpeg' }));
    const up = await call('POST', `/v23.0/${PHONE}/media`, form);
    expect(up.status).toBe(200);
    const id = up.body.id as string;
    expect(id).toMatch(/^\d+$/);
    const logged = graph.requests.at(-1)!;
    expect((logged.body as any).fields.type).toBe('image/jpeg');
    expect((logged.body as any).file).toMatchObject({ name: 'a.jpg', size: bytes.length });

    const sha = new Bun.CryptoHasher('sha256').update(bytes).digest('hex');
    const look = await call('GET', `/v23.0/${id}`);
    expect(look.status).toBe(200);
    expect(look.body).toMatchObject({ messaging_product: 'whatsapp', mime_type: 'image/jpeg', sha256: sha, file_size: bytes.length, id });
    expect(look.body.url).toStartWith(`${graph.url}/`);

    expect((await fetch(look.body.url)).status).toBe(401);
    const dl = await fetch(look.body.url, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(dl.status).toBe(200);
    expect(dl.headers.get('content-type')).toBe('image/jpeg');
    expect(new Uint8Array(await dl.arrayBuffer())).toEqual(bytes);
    expect(graph.media(id)?.sha256).toBe(sha);

    const sent = await send({ type: 'image', image: { id } });
    expect(sent.status).toBe(200);

    expect((await call('GET', `/v23.0/${id}`, undefined, OTHER_TOKEN)).body.error.error_subcode).toBe(33);
    expect((await call('DELETE', `/v23.0/${id}`)).body).toEqual({ success: true });
    expect((await call('GET', `/v23.0/${id}`)).status).toBe(400);
    expect((await fetch(look.body.url, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(404);
  });
  test('too large or unsupported → 131053; missing messaging_product → 100', async () => {
    const big = new FormData();
    big.set('messaging_product', 'whatsapp');
    big.set('type', 'image/png');
    big.set('file', new File([new Uint8Array(5 * 1024 * 1024 + 1)], 'big.png', { type: 'image/png' }));
    const r1 = await call('POST', `/v23.0/${PHONE}/media`, big);
    expect(r1.status).toBe(400);
    expect(r1.body.error.code).toBe(131053);
    const sticker = new FormData();
    sticker.set('messaging_product', 'whatsapp');
    sticker.set('type', 'image/webp');
    sticker.set('file', new File([new Uint8Array(101 * 1024)], 's.webp', { type: 'image/webp' }));
    expect((await call('POST', `/v23.0/${PHONE}/media`, sticker)).body.error.code).toBe(131053);
    const exe = new FormData();
    exe.set('messaging_product', 'whatsapp');
    exe.set('type', 'application/x-msdownload');
    exe.set('file', new File([new Uint8Array(10)], 'a.exe'));
    const r3 = await call('POST', `/v23.0/${PHONE}/media`, exe);
    expect(r3.body.error.code).toBe(131053);
    expect(r3.body.error.error_data.details).toContain("'application/x-msdownload'");
    const noMp = new FormData();
    noMp.set('file', new File([new Uint8Array(10)], 'a.jpg', { type: 'image/jpeg' }));
    expect((await call('POST', `/v23.0/${PHONE}/media`, noMp)).body.error.code).toBe(100);
  });
  test('injected download error', async () => {
    const form = new FormData();
    form.set('messaging_product', 'whatsapp');
    form.set('file', new File([new Uint8Array([1, 2, 3])], 'a.pdf', { type: 'application/pdf' }));
    const id = (await call('POST', `/v23.0/${PHONE}/media`, form)).body.id;
    const url = (await call('GET', `/v23.0/${id}`)).body.url;
    graph.injectError({ path: 'download', code: 131052 });
    const r = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(r.status).toBe(400);
    expect(((await r.json()) as any).error.code).toBe(131052);
  });
});

describe('phone number and templates', () => {
  test('GET phone number: default fields and ?fields=', async () => {
    const r = await call('GET', `/v23.0/${PHONE}`);
    expect(r.body).toMatchObject({ id: PHONE, display_phone_number: '+1 555-010-0000', verified_name: 'Acme', quality_rating: 'GREEN' });
    const f = await call('GET', `/v23.0/${PHONE}?fields=verified_name,quality_rating`);
    expect(f.body).toEqual({ verified_name: 'Acme', quality_rating: 'GREEN', id: PHONE });
  });
  test('templates with paging', async () => {
    const first = await call('GET', `/v23.0/${WABA}/message_templates?limit=2`);
    expect(first.status).toBe(200);
    expect(first.body.data).toHaveLength(2);
    expect(first.body.data[0]).toMatchObject({ name: 'order_update', language: 'en_US', status: 'APPROVED', category: 'UTILITY' });
    expect(first.body.data[0].components[0].text).toContain('{{1}}');
    expect(first.body.paging.next).toContain('after=');
    const next = await fetch(first.body.paging.next, { headers: { authorization: `Bearer ${TOKEN}` } });
    const page2: any = await next.json();
    expect(page2.data.map((t: any) => t.name)).toEqual(['paused_one']);
    expect(page2.paging.next).toBeUndefined();
    const approved = await call('GET', `/v23.0/${WABA}/message_templates?status=APPROVED&fields=name,status`);
    expect(approved.body.data).toEqual([{ name: 'order_update', status: 'APPROVED', id: expect.any(String) }]);
    expect((await call('GET', `/v23.0/${WABA}/message_templates`, undefined, OTHER_TOKEN)).body.error.error_subcode).toBe(33);
  });
});

describe('webhooks', () => {
  test('pushMessage: signed, shaped per Meta, media downloadable by the receiver', async () => {
    const n = hooks.length;
    const bytes = new TextEncoder().encode('%PDF-1.4 fake');
    const r = await graph.pushMessage(PHONE, {
      from: '+1 555 000 1111',
      name: 'Ana Ç',
      type: 'document',
      document: { caption: 'invoice', filename: 'inv.pdf' },
      mediaBytes: bytes,
      mimeType: 'application/pdf',
      context: { from: '15550100000', id: 'wamid.PREV' },
    });
    expect(r.status).toBe(200);
    expect(r.body).toBe('EVENT_RECEIVED');
    const hook = hooks[n]!;
    expect(hook.signatureOk).toBe(true);
    expect(hook.headers.get('content-type')).toBe('application/json');
    expect(hook.raw).toContain('Ana \\u00c7'); // Meta escapes non-ASCII
    expect(hook.body).toEqual(r.payload);
    const value = hook.body.entry[0].changes[0].value;
    expect(hook.body.object).toBe('whatsapp_business_account');
    expect(hook.body.entry[0].id).toBe(WABA);
    expect(hook.body.entry[0].changes[0].field).toBe('messages');
    expect(value.metadata).toEqual({ display_phone_number: '15550100000', phone_number_id: PHONE });
    expect(value.contacts).toEqual([{ profile: { name: 'Ana Ç' }, wa_id: CUSTOMER }]);
    const m = value.messages[0];
    expect(m).toMatchObject({ from: CUSTOMER, type: 'document', context: { from: '15550100000', id: 'wamid.PREV' } });
    expect(m.id).toMatch(/^wamid\./);
    expect(m.timestamp).toMatch(/^\d+$/);
    expect(m.document).toMatchObject({ caption: 'invoice', filename: 'inv.pdf', mime_type: 'application/pdf' });
    const sha = new Bun.CryptoHasher('sha256').update(bytes).digest();
    expect(m.document.sha256).toBe(Buffer.from(sha).toString('base64'));
    const look = await call('GET', `/v23.0/${m.document.id}`);
    const dl = await fetch(look.body.url, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(new Uint8Array(await dl.arrayBuffer())).toEqual(bytes);
  });
  test('pushStatus failed carries Meta error objects; callback answer returned', async () => {
    receiverAnswer = 500;
    const r = await graph.pushStatus(PHONE, { wamid: 'wamid.S1', status: 'failed', recipientId: CUSTOMER, errors: [{ code: 131049 }] });
    expect(r.status).toBe(500);
    const s = (r.payload as any).entry[0].changes[0].value.statuses[0];
    expect(s).toMatchObject({ id: 'wamid.S1', status: 'failed', recipient_id: CUSTOMER });
    expect(s.errors[0]).toMatchObject({ code: 131049, title: 'Meta chose not to deliver.', href: expect.stringContaining('error-codes') });
    expect(hooks.at(-1)!.signatureOk).toBe(true);
  });
  test('pushRaw: forged signature and no signature delivered as given', async () => {
    const n = hooks.length;
    const r = await graph.pushRaw(app, '{"object":"whatsapp_business_account","entry":[]}', { signature: 'sha256=deadbeef' });
    expect(r.status).toBe(200);
    expect(hooks[n]!.headers.get('x-hub-signature-256')).toBe('sha256=deadbeef');
    expect(hooks[n]!.signatureOk).toBe(false);
    await graph.pushRaw(app, '{}', { signature: null });
    expect(hooks[n + 1]!.headers.get('x-hub-signature-256')).toBeNull();
    await graph.pushRaw(app, '{"a":1}');
    expect(hooks[n + 2]!.signatureOk).toBe(true);
  });
  test('verifyCallback: ok with the right token, not with a wrong one', async () => {
    const ok = await graph.verifyCallback(app);
    expect(ok.ok).toBe(true);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatch(/^\d+$/);
    const wrong = graph.addApp({ appSecret: SECRET, callbackUrl: app.callbackUrl, verifyToken: 'wrong' });
    expect(await graph.verifyCallback(wrong)).toMatchObject({ ok: false, status: 403 });
  });
  test('callbacks must be loopback; failures are returned, not thrown', async () => {
    expect(() => graph.addApp({ appSecret: 'x', callbackUrl: 'https://example.com/hook' })).toThrow(/loopback/);
    const noCb = graph.addApp({ appSecret: 'x' });
    expect((await graph.pushRaw(noCb, '{}')).status).toBe(0);
    noCb.callbackUrl = 'http://10.0.0.1/hook';
    expect((await graph.pushRaw(noCb, '{}')).body).toContain('loopback');
    noCb.callbackUrl = 'http://127.0.0.1:1/hook';
    const down = await graph.pushRaw(noCb, '{}');
    expect(down.status).toBe(0);
    expect(down.body).toStartWith('error:');
  });
});

describe('control API', () => {
  test('standalone setup over /_fake/ mirrors the methods', async () => {
    const g = await startFakeGraph();
    try {
      const post = (p: string, b: unknown) => fetch(`${g.url}${p}`, { method: 'POST', body: JSON.stringify(b) }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
      const a = await post('/_fake/apps', { appSecret: SECRET, callbackUrl: `http://127.0.0.1:${receiver.port}/hook2`, verifyToken: 'verify-me' });
      expect(a.status).toBe(201);
      expect((await post('/_fake/apps', { appSecret: 'x', callbackUrl: 'http://8.8.8.8/' })).status).toBe(400);
      expect((await post('/_fake/phone-numbers', { phoneNumberId: '77', wabaId: '88', displayPhoneNumber: '+1 555 777', accessToken: 'TT', appId: a.body.id })).status).toBe(201);
      expect((await post('/_fake/templates', { wabaId: '88', name: 't', language: 'en', components: [] })).status).toBe(201);
      expect((await post('/_fake/verify-callback', { appId: a.body.id })).body.ok).toBe(true);
      const pushed = await post('/_fake/push/message', { phoneNumberId: '77', from: '15551230000', type: 'text', text: { body: 'hey' } });
      expect(pushed.body.status).toBe(200);
      const res = await fetch(`${g.url}/v23.0/77/messages`, {
        method: 'POST',
        headers: { authorization: 'Bearer TT', 'content-type': 'application/json' },
        body: JSON.stringify({ messaging_product: 'whatsapp', to: '15551230000', type: 'template', template: { name: 't', language: { code: 'en' } } }),
      });
      expect(res.status).toBe(200);
      const sent: any = await (await fetch(`${g.url}/_fake/sent?phoneNumberId=77`)).json();
      expect(sent).toHaveLength(1);
      const reqs: any = await (await fetch(`${g.url}/_fake/requests`)).json();
      expect(reqs.at(-1)).toMatchObject({ method: 'POST', path: '/v23.0/77/messages' });
      expect((await post('/_fake/errors', { code: 4 })).status).toBe(201);
      expect((await fetch(`${g.url}/v23.0/77`, { headers: { authorization: 'Bearer TT' } })).status).toBe(400);
      expect((await fetch(`${g.url}/_fake/nope`)).status).toBe(404);
    } finally {
      await g.close();
    }
  });
});
