import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { Webhook } from 'standardwebhooks';
import type { Server } from 'bun';
import { createTestApp, type TestApp } from '../../../../tests/support/app';
import { until } from '../../../../tests/support/poll';
import { acquireOwner } from '../../claims/owner';
import { WebhookDispatcher } from '../../webhooks/dispatcher';
import { createLogger } from '../../logging/logger';

/** A real receiver on loopback; `answer` decides each response. */
interface Received {
  headers: Record<string, string>;
  body: string;
}
function receiver(answer: (n: number) => Response = () => new Response('ok')) {
  const got: Received[] = [];
  const server: Server<unknown> = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req) {
      got.push({ headers: Object.fromEntries(req.headers), body: await req.text() });
      return answer(got.length);
    },
  });
  return { got, url: `http://127.0.0.1:${server.port}/hook`, stop: () => server.stop(true) };
}

let t: TestApp;
let user: { id: number; apiKey: string };
let instanceId: number;
const receivers: { stop(): unknown }[] = [];

beforeAll(async () => {
  t = await createTestApp({ listen: true, webhooks: true, retryScheduleS: [0, 1, 1, 2] });
  user = await t.createUser();
  // Most tests record events directly; this instance has no worker.
  const [row] = await t.db.database.sql`insert into instances (user_id, phone_number, provider, desired_state) values (${user.id}, '4915100000321', 'sandbox', 'stopped') returning id`;
  instanceId = row!.id;
});
afterAll(async () => {
  for (const r of receivers) r.stop();
  await t.close();
});

function recv(answer?: (n: number) => Response) {
  const r = receiver(answer);
  receivers.push(r);
  return r;
}

async function subscribe(url: string, extra: Record<string, unknown> = {}) {
  const res = await t.call('POST', `/api/instances/${instanceId}/webhooks`, { key: user.apiKey, body: { url, ...extra } });
  expect(res.status).toBe(201);
  return res.body as { id: number; secret: string };
}

async function recordEvent(type: string, data: Record<string, unknown>) {
  const [e] = await t.db.database.sql`insert into events (instance_id, type, data) values (${instanceId}, ${type}, ${JSON.stringify(data)}::jsonb) returning id`;
  return Number(e!.id);
}

const deliveries = async (wid: number) => (await t.call('GET', `/api/instances/${instanceId}/webhooks/${wid}/deliveries`, { key: user.apiKey })).body;

describe('subscriptions', () => {
  test('create shows a whsec_ secret once; it is stored encrypted; list, patch, rotate, delete', async () => {
    const w = await subscribe('http://127.0.0.1:9/hook', { events: ['message.received'] });
    expect(w.secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    const [stored] = await t.db.database.sql`select secret_encrypted from webhooks where id = ${w.id}`;
    expect(stored!.secret_encrypted).not.toContain(w.secret.slice(6));
    const list = await t.call('GET', `/api/instances/${instanceId}/webhooks`, { key: user.apiKey });
    expect(JSON.stringify(list.body)).not.toContain('whsec_');
    const patched = await t.call('PATCH', `/api/instances/${instanceId}/webhooks/${w.id}`, { key: user.apiKey, body: { events: null, enabled: false } });
    expect(patched.body).toMatchObject({ id: w.id, events: null, enabled: false });
    const rotated = await t.call('POST', `/api/instances/${instanceId}/webhooks/${w.id}/rotate-secret`, { key: user.apiKey });
    expect(rotated.body.secret).toMatch(/^whsec_/);
    expect(rotated.body.secret).not.toBe(w.secret);
    expect((await t.call('DELETE', `/api/instances/${instanceId}/webhooks/${w.id}`, { key: user.apiKey })).status).toBe(204);
    expect((await t.call('GET', `/api/instances/${instanceId}/webhooks/${w.id}`, { key: user.apiKey })).status).toBe(404);
  });

  test('bad input is 400 naming the field; other tenants get 404', async () => {
    for (const [body, field] of [
      [{ url: 'ftp://x/y' }, "'url'"],
      [{ url: 'http://127.0.0.1:9/', events: ['message.sent'] }, "'events'"],
      [{ url: 'http://127.0.0.1:9/', events: [] }, "'events'"],
      [{}, "'url'"],
    ] as const) {
      const res = await t.call('POST', `/api/instances/${instanceId}/webhooks`, { key: user.apiKey, body });
      expect(res.status).toBe(400);
      expect(res.body.error).toContain(field);
    }
    const other = await t.createUser();
    expect((await t.call('GET', `/api/instances/${instanceId}/webhooks`, { key: other.apiKey })).status).toBe(404);
  });
});

describe('delivery', () => {
  test('a signed delivery that standardwebhooks verifies, in the seed shape', async () => {
    const r = recv();
    const w = await subscribe(r.url);
    const eventId = await recordEvent('message.received', { id: 'SBX1', from: '4477001122', type: 'text', text: 'hi' });
    await until('delivery', () => r.got.length === 1);
    const { headers, body } = r.got[0]!;
    const verified = new Webhook(w.secret).verify(body, headers) as Record<string, unknown>;
    expect(verified).toMatchObject({ instance: instanceId, type: 'message.received', data: { from: '4477001122', type: 'text', text: 'hi' } });
    expect(new Date(String(verified.timestamp)).toString()).not.toBe('Invalid Date');
    expect(headers['webhook-id']).toBe(`evt_${eventId}`);
    expect(() => new Webhook(`whsec_${Buffer.from('another-secret-of-24-byt').toString('base64')}`).verify(body, headers)).toThrow();
    const log = await until('log succeeded', async () => (await deliveries(w.id)).find((d: any) => d.status === 'succeeded'));
    expect(log).toMatchObject({ eventId, eventType: 'message.received', attempts: 1, lastStatusCode: 200, nextAttemptAt: null });
    expect(log.lastLatencyMs).toBeGreaterThanOrEqual(0);
  });

  test('500s are retried on the schedule, honouring Retry-After; the same webhook-id each time', async () => {
    const r = recv((n) => (n === 1 ? new Response('busy', { status: 503, headers: { 'retry-after': '2' } }) : n === 2 ? new Response('boom', { status: 500 }) : new Response('ok')));
    const w = await subscribe(r.url);
    await recordEvent('message.status', { messageId: 'msg_1', status: 'read', timestamp: new Date().toISOString() });
    await until('first attempt', () => r.got.length === 1);
    const pending = await until('retry scheduled', async () => (await deliveries(w.id))[0]?.lastStatusCode === 503 && (await deliveries(w.id))[0]);
    expect(pending.responseExcerpt).toBe('busy');
    // Retry-After 2 s beats the 0.9–1.1 s schedule; measured from the delivery's creation, not from when this poll saw it.
    expect(new Date(pending.nextAttemptAt).getTime() - new Date(pending.createdAt).getTime()).toBeGreaterThan(1500);
    await until('third attempt', () => r.got.length === 3, 15_000);
    expect(new Set(r.got.map((g) => g.headers['webhook-id'])).size).toBe(1);
    const done = await until('succeeded', async () => (await deliveries(w.id)).find((d: any) => d.status === 'succeeded'));
    expect(done.attempts).toBe(3);
  });

  test('410 Gone disables the subscription', async () => {
    const r = recv(() => new Response('gone', { status: 410 }));
    const w = await subscribe(r.url);
    await recordEvent('instance.status', { status: 'running' });
    const got = await until('disabled', async () => {
      const res = await t.call('GET', `/api/instances/${instanceId}/webhooks/${w.id}`, { key: user.apiKey });
      return res.body.enabled === false && res.body;
    });
    expect(got.disabledReason).toContain('410 Gone');
    expect((await deliveries(w.id))[0]).toMatchObject({ status: 'failed', lastStatusCode: 410 });
    await recordEvent('instance.status', { status: 'stopped' });
    expect((await deliveries(w.id)).length).toBe(1); // no new deliveries for a disabled subscription
  });

  test('when retries run out the delivery fails and webhook.failed is recorded (and sent elsewhere)', async () => {
    const dead = recv(() => new Response('no', { status: 500 }));
    const watcher = recv();
    const w = await subscribe(dead.url);
    await subscribe(watcher.url, { events: ['webhook.failed'] });
    const eventId = await recordEvent('message.received', { id: 'SBX2', from: '4477001122', type: 'text', text: 'lost?' });
    const failed = await until('failed', async () => (await deliveries(w.id)).find((d: any) => d.eventId === eventId && d.status === 'failed'), 20_000);
    expect(failed.attempts).toBe(4);
    expect(dead.got.filter((g) => g.headers['webhook-id'] === `evt_${eventId}`)).toHaveLength(4);
    await until('webhook.failed delivered elsewhere', () => watcher.got.some((g) => JSON.parse(g.body).type === 'webhook.failed'));
    const payload = JSON.parse(watcher.got.find((g) => JSON.parse(g.body).type === 'webhook.failed')!.body);
    expect(payload.data).toMatchObject({ webhookId: w.id, eventId, attempts: 4, lastStatusCode: 500 });
    // The failing subscription is not told about its own failure.
    expect(dead.got.some((g) => JSON.parse(g.body).type === 'webhook.failed')).toBe(false);
  });

  test('filters by event type; replay delivers again with the same id', async () => {
    const r = recv();
    const w = await subscribe(r.url, { events: ['message.status'] });
    await recordEvent('message.received', { id: 'SBX3', from: '1', type: 'text', text: 'x' });
    const eventId = await recordEvent('message.status', { messageId: 'msg_2', status: 'sent', timestamp: new Date().toISOString() });
    await until('one delivery', () => r.got.length === 1);
    expect(JSON.parse(r.got[0]!.body).type).toBe('message.status');
    // The receiver has the request before the dispatcher records the answer: wait for the record.
    const d = await until('logged', async () => (await deliveries(w.id)).find((x: any) => x.status === 'succeeded'));
    const replay = await t.call('POST', `/api/instances/${instanceId}/webhooks/${w.id}/deliveries/${d.id}/replay`, { key: user.apiKey });
    expect(replay.status).toBe(202);
    await until('replayed', () => r.got.length === 2);
    expect(r.got[1]!.headers['webhook-id']).toBe(`evt_${eventId}`);
    expect((await t.call('POST', `/api/instances/${instanceId}/webhooks/${w.id}/deliveries/999999/replay`, { key: user.apiKey })).status).toBe(404);
  });
});

describe('end to end with a sandbox worker', () => {
  test('a sandbox inbound message reaches the instance webhook, signed', async () => {
    const r = recv();
    const created = await t.call('POST', '/api/instances', { key: user.apiKey, body: { provider: 'sandbox', phone: '4915100000654', webhook: r.url } });
    expect(created.status).toBe(200);
    expect(created.body.webhookSecret).toMatch(/^whsec_/);
    const id = created.body.id;
    expect((await t.call('POST', `/api/instances/${id}/sandbox/scan`, { key: user.apiKey })).status).toBe(200);
    const inbound = await t.call('POST', `/api/instances/${id}/sandbox/inbound`, { key: user.apiKey, body: { from: '+4477009988', text: 'hello hook' } });
    expect(inbound.status).toBe(200);
    const hit = await until('message.received delivered', () => r.got.find((g) => JSON.parse(g.body).type === 'message.received'));
    const payload = new Webhook(created.body.webhookSecret).verify(hit.body, hit.headers) as any;
    expect(payload).toMatchObject({ instance: id, type: 'message.received', data: { id: inbound.body.id, from: '4477009988', type: 'text', text: 'hello hook' } });
    expect(r.got.some((g) => JSON.parse(g.body).type === 'instance.status')).toBe(true);
  });
});

describe('SSRF protection (private networks not allowed)', () => {
  let strict: TestApp;
  let key: string;
  let id: number;
  beforeAll(async () => {
    strict = await createTestApp({ allowPrivateWebhooks: false });
    const u = await strict.createUser();
    key = u.apiKey;
    const [row] = await strict.db.database.sql`insert into instances (user_id, phone_number, provider, desired_state) values (${u.id}, '4915100000322', 'sandbox', 'stopped') returning id`;
    id = row!.id;
  });
  afterAll(() => strict.close());

  test('loopback, private and metadata URLs are refused when saved', async () => {
    for (const url of ['http://127.0.0.1:8080/h', 'http://10.0.0.8/h', 'http://169.254.169.254/latest', 'http://[::1]/h', 'http://localhost:9/h']) {
      const res = await strict.call('POST', `/api/instances/${id}/webhooks`, { key, body: { url } });
      expect(res.status).toBe(400);
      expect(res.body.error).toContain("invalid field 'url'");
      expect(res.body.error).toContain('WEBHOOK_ALLOW_PRIVATE_NETWORKS');
    }
    const inst = await strict.call('POST', '/api/instances', { key, body: { provider: 'sandbox', phone: '4915100000323', webhook: 'http://192.168.1.10/h' } });
    expect(inst.status).toBe(400);
    expect(inst.body.error).toContain("invalid field 'webhook'");
  });

  test('and checked again at delivery time', async () => {
    const r = recv();
    // Saved while it was allowed (or before DNS changed): inserted directly.
    const [w] = await strict.db.database.sql`
      insert into webhooks (instance_id, url, secret_encrypted) values (${id}, ${r.url}, 'v1.x.y.z') returning id`;
    await strict.db.database.sql`insert into events (instance_id, type, data) values (${id}, 'instance.status', '{}'::jsonb)`;
    expect(await strict.dispatcher.round()).toBe(1);
    const [d] = await strict.db.database.sql`select status, last_error, attempts from webhook_deliveries where webhook_id = ${w!.id}`;
    expect(d!.last_error).toContain('destination refused');
    expect(d!.status).toBe('pending'); // retried later: DNS may change back
    expect(r.got).toHaveLength(0);
  });
});

describe('replicas', () => {
  test('two dispatchers claiming at once never deliver the same event twice', async () => {
    const r = recv();
    const w = await subscribe(r.url, { events: ['instance.qr'] });
    await t.dispatcher.stop(); // only the two below run
    const ids = await t.db.database.sql`
      insert into events (instance_id, type, data)
      select ${instanceId}, 'instance.qr', jsonb_build_object('n', n) from generate_series(1, 200) n returning id`;
    const make = () =>
      new WebhookDispatcher(t.db.database.db, t.db.database.sql, t.secrets, createLogger('silent'), {
        retryScheduleS: [0, 1],
        allowPrivateNetworks: true,
        timeoutMs: 2000,
        batchSize: 25,
        ownerId: 1,
      });
    const a = make();
    const b = make();
    const drain = async (d: WebhookDispatcher) => {
      let n = 0;
      for (let claimed = 1; claimed > 0; ) n += claimed = await d.round();
      return n;
    };
    const [na, nb] = await Promise.all([drain(a), drain(b)]);
    expect(na + nb).toBeGreaterThanOrEqual(200); // the other subscriptions of this instance get these events too
    expect(na).toBeGreaterThan(0);
    expect(nb).toBeGreaterThan(0);
    const delivered = r.got.map((g) => g.headers['webhook-id']);
    expect(delivered).toHaveLength(200);
    expect(new Set(delivered).size).toBe(200);
    expect(ids).toHaveLength(200);
    expect((await deliveries(w.id)).every((d: any) => d.status === 'succeeded' && d.attempts === 1)).toBe(true);
    await t.dispatcher.start();
  });

  test("a dead gateway's claims are taken over at once; a live one's only when its lease runs out", async () => {
    const r = recv();
    const w = await subscribe(r.url, { events: ['instance.qr'] });
    await t.dispatcher.stop(); // only the one below runs
    const { sql } = t.db.database;
    const logger = createLogger('silent');
    const a = await acquireOwner(t.db.url, logger);
    const b = await acquireOwner(t.db.url, logger);
    try {
      await sql`insert into events (instance_id, type, data) select ${instanceId}, 'instance.qr', jsonb_build_object('n', n) from generate_series(1, 10) n`;
      // Gateway a claimed them (as its dispatcher's round does) with a long lease, then was stuck or died.
      const claimed = await sql`
        update webhook_deliveries set locked_until = now() + interval '1 hour', claimed_by = ${a.id}, attempts = 1
        where webhook_id = ${w.id} and status = 'pending' returning id`;
      expect(claimed).toHaveLength(10);
      const d = new WebhookDispatcher(t.db.database.db, sql, t.secrets, logger, {
        retryScheduleS: [0, 1],
        allowPrivateNetworks: true,
        timeoutMs: 2000,
        ownerId: b.id,
      });
      const mine = async () => (await sql`select count(*)::int as n from webhook_deliveries where webhook_id = ${w.id} and claimed_by = ${b.id}`)[0]!.n;
      // a lives: its claims stand until the lease (here an hour) runs out.
      await d.round();
      expect(r.got).toHaveLength(0);
      expect(await mine()).toBe(0);
      // a's process is gone (its liveness lock is free): the very next round takes them over.
      await a.release();
      let rounds = 0;
      while ((await deliveries(w.id)).some((x: any) => x.status !== 'succeeded') && rounds++ < 10) await d.round();
      expect(r.got).toHaveLength(10);
      expect(new Set(r.got.map((g) => g.headers['webhook-id'])).size).toBe(10);
      expect((await deliveries(w.id)).every((x: any) => x.status === 'succeeded' && x.attempts === 2)).toBe(true);
      expect(d.leaseS).toBe(32); // the delivery timeout (2 s) plus the margin, not a fixed two minutes
    } finally {
      await a.release();
      await b.release();
      await t.dispatcher.start();
    }
  });
});
