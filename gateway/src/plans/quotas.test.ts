import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createTestApp, type TestApp } from '../../../tests/support/app';
import { until } from '../../../tests/support/poll';
import { monthStart, nextMonthStart, recordUsage, usageTotal } from '../usage/ledger';
import type { UsageMetric } from '../db/schema';
import { checkSendQuota } from './quotas';
import { planOf } from './plans';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ listen: true });
});
afterAll(() => t.close());

let seq = 0;
const phone = () => `49152${String(Date.now() % 1e6).padStart(6, '0')}${seq++ % 10}`;
const lastMonth = () => new Date(monthStart().getTime() - 24 * 3600 * 1000);

/** A user on a new plan with these limits. */
async function userOnPlan(limits: Record<string, unknown>) {
  const plan = await t.call('POST', '/admin/plans', { body: { name: `quota-${++seq}-${Date.now()}`, ...limits } });
  expect(plan.status).toBe(201);
  const user = await t.createUser();
  expect((await t.call('PATCH', `/admin/users/${user.id}`, { body: { planId: plan.body.id } })).status).toBe(200);
  return { ...user, plan: plan.body };
}

/** Ledger rows as the usage metering writes them. */
async function use(userId: number, metric: UsageMetric, quantity: number, times = 1, occurredAt?: Date) {
  await recordUsage(
    t.db.database.db,
    Array.from({ length: times }, () => ({ userId, metric, quantity, source: `test:${metric}:${crypto.randomUUID()}`, ...(occurredAt && { occurredAt }) })),
  );
}

/** An instance row without a worker: enough for checks made before anything is queued. */
async function bareInstance(userId: number): Promise<number> {
  const [row] = await t.db.database.sql`insert into instances (user_id, phone_number, provider) values (${userId}, ${phone()}, 'sandbox') returning id`;
  return row!.id as number;
}

const create = (key: string, extra: Record<string, unknown> = {}) =>
  t.call('POST', '/api/instances', { key, body: { provider: 'sandbox', phone: phone(), ...extra } });

async function instanceCount(userId: number): Promise<number> {
  const [row] = await t.db.database.sql`select count(*)::int as n from instances where user_id = ${userId}`;
  return row!.n as number;
}

describe('maxInstances', () => {
  test('402 exactly at the limit, naming the quota; nothing is created', async () => {
    const user = await userOnPlan({ maxInstances: 2 });
    expect((await create(user.apiKey)).status).toBe(200);
    expect((await create(user.apiKey)).status).toBe(200);
    const third = await create(user.apiKey);
    expect(third.status).toBe(402);
    expect(third.body.code).toBe('quota_exceeded');
    expect(third.body.error).toStartWith('maxInstances: 2 of 2 used;');
    expect(await instanceCount(user.id)).toBe(2);
    // Raising the plan's limit frees a seat at once.
    expect((await t.call('PATCH', `/admin/plans/${user.plan.id}`, { body: { maxInstances: 3 } })).status).toBe(200);
    expect((await create(user.apiKey)).status).toBe(200);
  });
  test('concurrent creates cannot exceed it', async () => {
    const user = await userOnPlan({ maxInstances: 2 });
    const results = await Promise.all(Array.from({ length: 5 }, () => create(user.apiKey)));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 402, 402, 402]);
    expect(await instanceCount(user.id)).toBe(2);
  });
  test('a plan with 0 instances refuses the first', async () => {
    const user = await userOnPlan({ maxInstances: 0 });
    const res = await create(user.apiKey);
    expect(res.status).toBe(402);
    expect(res.body.error).toStartWith('maxInstances: 0 of 0 used;');
  });
});

describe('providers and features', () => {
  test('a provider outside allowedProviders is 403 naming it', async () => {
    const user = await userOnPlan({ allowedProviders: ['waba'] });
    const res = await create(user.apiKey);
    expect(res.status).toBe(403);
    expect(res.body).toEqual({ error: `provider sandbox is not in plan ${user.plan.name}; allowed: waba`, code: 'not_in_plan' });
    expect(await instanceCount(user.id)).toBe(0);
  });
  test('features outside the list are 403: webhooks, node_selection, media', async () => {
    const user = await userOnPlan({ features: [] });
    for (const extra of [{ webhook: 'https://hooks.example.com/x' }, { node: 'local' }]) {
      const res = await create(user.apiKey, extra);
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('not_in_plan');
      expect(res.body.error).toContain(extra.webhook ? 'feature webhooks' : 'feature node_selection');
    }
    expect(await instanceCount(user.id)).toBe(0);

    const id = await bareInstance(user.id);
    const sub = await t.call('POST', `/api/instances/${id}/webhooks`, { key: user.apiKey, body: { url: 'https://hooks.example.com/x' } });
    expect(sub.status).toBe(403);
    expect(sub.body.error).toContain('feature webhooks');
    expect((await t.db.database.sql`select 1 from webhooks where instance_id = ${id}`).length).toBe(0);

    const image = await t.call('POST', `/api/instances/${id}/send`, {
      key: user.apiKey,
      body: { to: '4915100000009', type: 'image', media: { url: 'https://example.com/a.jpg', mimetype: 'image/jpeg' } },
    });
    expect(image.status).toBe(403);
    expect(image.body.error).toContain('feature media');
    // Text is no feature: it passes the plan and stops at the unpaired instance.
    const text = await t.call('POST', `/api/instances/${id}/send`, { key: user.apiKey, body: { to: '4915100000009', text: 'hi' } });
    expect(text.body.code).toBe('not_connected');

    // The features the plan lists are allowed.
    expect((await t.call('PATCH', `/admin/plans/${user.plan.id}`, { body: { features: ['webhooks'] } })).status).toBe(200);
    expect((await t.call('POST', `/api/instances/${id}/webhooks`, { key: user.apiKey, body: { url: 'https://hooks.example.com/x' } })).status).toBe(201);
  });
});

describe('messagesPerMonth', () => {
  test('402 once the ledger holds the limit this month; last month does not count; a new month resets it', async () => {
    const user = await userOnPlan({ messagesPerMonth: 3 });
    const inst = await create(user.apiKey);
    expect(inst.status).toBe(200);
    const id = inst.body.id as number;
    await until('a QR', async () => (await t.call('GET', `/api/instances/${id}/qr?format=json`, { key: user.apiKey })).status === 200);
    expect((await t.call('POST', `/api/instances/${id}/sandbox/scan`, { key: user.apiKey })).status).toBe(200);
    const send = (headers: Record<string, string> = {}) =>
      t.call('POST', `/api/instances/${id}/send`, { key: user.apiKey, headers, body: { to: '4915100000009', text: 'hi' } });

    await use(user.id, 'messages_sent', 1, 10, lastMonth());
    await use(user.id, 'messages_sent', 1, 2);
    const ok = await send({ 'idempotency-key': 'first' });
    expect(ok.status).toBe(200);
    expect(ok.body.status).toBe('sent');

    // Top the month up to the limit (the send above may have counted itself already).
    const used = await usageTotal(t.db.database.db, user.id, 'messages_sent', monthStart(), nextMonthStart());
    if (used < 3) await use(user.id, 'messages_sent', 1, 3 - used);
    const refused = await send();
    expect(refused.status).toBe(402);
    expect(refused.body.code).toBe('quota_exceeded');
    expect(refused.body.error).toMatch(/^messagesPerMonth: \d+ of 3 used this month/);
    expect(refused.body.error).toContain(`resets ${nextMonthStart().toISOString()}`);
    const [counted] = await t.db.database.sql`select count(*)::int as n from messages where instance_id = ${id}`;
    const n = counted!.n as number;
    expect(n).toBe(1);

    // A repeated Idempotency-Key answers with its message, quota or not: it is not a new send.
    const repeat = await send({ 'idempotency-key': 'first' });
    expect(repeat.status).toBe(200);
    expect(repeat.body.id).toBe(ok.body.id);
    // Next month, this month's rows are last month's.
    const plan = await planOf(t.db.database.db, user.id);
    await expect(checkSendQuota(t.db.database.db, plan, user.id, undefined, nextMonthStart())).resolves.toBeUndefined();
    await expect(checkSendQuota(t.db.database.db, plan, user.id)).rejects.toThrow(/messagesPerMonth/);

    // Raising the quota lets the next send through.
    expect((await t.call('PATCH', `/admin/plans/${user.plan.id}`, { body: { messagesPerMonth: null } })).status).toBe(200);
    expect((await send()).status).toBe(200);
  });
});

describe('mediaBytesPerMonth', () => {
  test('inline bytes must fit what is left; URL media is refused once the quota is used up; text is not media', async () => {
    const user = await userOnPlan({ mediaBytesPerMonth: 1000 });
    const id = await bareInstance(user.id);
    const image = (media: Record<string, string>) =>
      t.call('POST', `/api/instances/${id}/send`, { key: user.apiKey, body: { to: '4915100000009', type: 'image', media: { mimetype: 'image/png', ...media } } });
    const bytes600 = Buffer.alloc(600, 1).toString('base64');

    // Within the quota the send passes the plan and stops at the unpaired instance (503).
    expect((await image({ data: bytes600 })).body.code).toBe('not_connected');
    await use(user.id, 'media_bytes', 2000, 1, lastMonth());
    await use(user.id, 'media_bytes', 500);
    const over = await image({ data: bytes600 });
    expect(over.status).toBe(402);
    expect(over.body.code).toBe('quota_exceeded');
    expect(over.body.error).toStartWith('mediaBytesPerMonth: 500 of 1000 bytes used this month, this media is 600 bytes');
    expect((await image({ data: Buffer.alloc(500, 1).toString('base64') })).body.code).toBe('not_connected');
    expect((await image({ url: 'https://example.com/a.png' })).body.code).toBe('not_connected');

    await use(user.id, 'media_bytes', 500);
    const url = await image({ url: 'https://example.com/a.png' });
    expect(url.status).toBe(402);
    expect(url.body.error).toContain('URL media is counted once sent');
    const text = await t.call('POST', `/api/instances/${id}/send`, { key: user.apiKey, body: { to: '4915100000009', text: 'hi' } });
    expect(text.body.code).toBe('not_connected');
  });
});

describe('GET /api/me', () => {
  test("shows the plan and this month's usage against its quotas", async () => {
    const user = await userOnPlan({ maxInstances: 4, messagesPerMonth: 100, features: ['media'] });
    await bareInstance(user.id);
    await use(user.id, 'messages_sent', 1, 2);
    await use(user.id, 'messages_sent', 1, 5, lastMonth());
    await use(user.id, 'media_bytes', 1234);
    const me = await t.call('GET', '/api/me', { key: user.apiKey });
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({
      id: user.id,
      email: user.email,
      plan: { name: user.plan.name, maxInstances: 4, messagesPerMonth: 100, mediaBytesPerMonth: null, features: ['media'] },
      period: { from: monthStart().toISOString(), resetsAt: nextMonthStart().toISOString() },
      usage: {
        messagesSent: { used: 2, limit: 100 },
        mediaBytes: { used: 1234, limit: null },
        instances: { used: 1, limit: 4 },
      },
    });
  });
});
