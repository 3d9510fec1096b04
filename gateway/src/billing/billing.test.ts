/**
 * Billing webhooks end to end on real Postgres: events recorded with what
 * causes them, delivered by the billing dispatcher to a real receiver on
 * loopback that verifies every Standard Webhooks signature itself.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { createTestApp, type TestApp } from '../../../tests/support/app';
import { webhookReceiver, type Receiver } from '../../../tests/support/receiver';
import { until } from '../../../tests/support/poll';
import { freePort } from '../lib/net';
import { acquireOwner } from '../claims/owner';
import { createLogger } from '../logging/logger';
import { recordUsage, monthStart } from '../usage/ledger';
import { BillingDispatcher } from './dispatcher';
import { BillingJob, closePeriod, monthKey } from './usage-job';

const SECRET = `whsec_${randomBytes(24).toString('base64')}`;
const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
const cleanup: (() => Promise<unknown>)[] = [];
let t: TestApp;
let receiver: Receiver;
let phoneSeq = 0;
/** Threshold tests leave last month open for the period_closed test. */
const NO_CLOSE = { closeGraceMs: Number.MAX_SAFE_INTEGER };
const phone = () => `49152${String(Date.now() % 1e6).padStart(6, '0')}${phoneSeq++ % 10}`;

beforeAll(async () => {
  receiver = webhookReceiver(await freePort(), cleanup);
  receiver.secrets.set('default', SECRET);
  t = await createTestApp({ listen: true, billing: { url: receiver.url('/billing'), secret: SECRET }, retryScheduleS: [0, 1, 1, 2] });
});
afterAll(async () => {
  await t.close();
  for (const c of cleanup) await c();
});

const billed = (userId: number, type?: string) => receiver.delivered.filter((d) => d.body.tenant?.id === userId && (!type || d.type === type));
/** For `until`: the deliveries, or undefined while there are none. */
/** A billing event's row once the dispatcher has recorded the answer (the receiver has the event a moment before). */
const recorded = (id: number) =>
  until(`billing event ${id} recorded`, async () => {
    const [r] = await t.db.database.sql`select status, attempts, last_status_code from billing_events where id = ${id}`;
    return r?.status === 'pending' ? undefined : r;
  });
const someBilled = (userId: number, type?: string) => {
  const d = billed(userId, type);
  return d.length > 0 ? d : undefined;
};

async function planFor(userId: number, limits: { maxInstances?: number; messagesPerMonth?: number; mediaBytesPerMonth?: number }) {
  const [plan] = await t.db.database.sql`
    insert into plans (name, max_instances, messages_per_month, media_bytes_per_month)
    values (${`billing-${userId}-${Date.now()}`}, ${limits.maxInstances ?? null}, ${limits.messagesPerMonth ?? null}, ${limits.mediaBytesPerMonth ?? null})
    returning id, name`;
  await t.db.database.sql`update users set plan_id = ${plan!.id} where id = ${userId}`;
  return { id: plan!.id as number, name: plan!.name as string };
}

describe('instance events', () => {
  test('instance.created and instance.deleted are delivered signed, once, even after a dispatcher restart', async () => {
    const user = await t.createUser();
    const plan = await planFor(user.id, { maxInstances: 5 });
    const created = await t.call('POST', '/api/instances', { key: user.apiKey, body: { provider: 'sandbox', phone: phone() } });
    expect(created.status).toBe(200);
    const id = created.body.id as number;
    const [c] = await until('instance.created delivered', () => someBilled(user.id, 'instance.created'));
    expect(c!.webhookId).toMatch(/^bill_\d+$/);
    expect(c!.body).toMatchObject({
      type: 'instance.created',
      tenant: { id: user.id, email: user.email },
      data: { instanceId: id, provider: 'sandbox', plan, phoneNumber: created.body.phone },
    });
    expect(new Date(c!.body.data.at).toISOString()).toBe(c!.body.data.at);
    expect(new Date(c!.body.timestamp).getTime()).toBeGreaterThan(Date.now() - 60_000);

    expect((await t.call('DELETE', `/api/instances/${id}`, { key: user.apiKey })).status).toBe(204);
    const [d] = await until('instance.deleted delivered', () => someBilled(user.id, 'instance.deleted'));
    expect(d!.body).toMatchObject({ type: 'instance.deleted', tenant: { id: user.id, email: user.email }, data: { instanceId: id, provider: 'sandbox', plan } });
    // The billing event outlived its instance (no foreign key, unlike events).
    // The receiver has the event a moment before the dispatcher records the answer: wait for both records.
    const rows = await until('both billing events recorded', async () => {
      const r = await t.db.database.sql`select type, status, attempts from billing_events where user_id = ${user.id} order by id`;
      return r.length === 2 && r.every((x) => x.status !== 'pending') ? r : undefined;
    });
    expect(rows.map((r) => [r.type, r.status, r.attempts])).toEqual([
      ['instance.created', 'succeeded', 1],
      ['instance.deleted', 'succeeded', 1],
    ]);

    // A restarted dispatcher (a new gateway process) finds nothing left to send.
    await t.billing!.stop();
    const owner = await acquireOwner(t.db.url, logger);
    const again = new BillingDispatcher(t.db.database.db, t.db.database.sql, logger, {
      url: receiver.url('/billing'),
      secret: SECRET,
      retryScheduleS: [0, 1],
      allowPrivateNetworks: true,
      timeoutMs: 2000,
      ownerId: owner.id,
    });
    expect(await again.round()).toBe(0);
    await t.billing!.start();
    await owner.release();
    expect(billed(user.id).length).toBe(2);
    expect(receiver.forged).toBe(0);
  });

  test('a delivery claimed by a dead gateway goes out once, from the next dispatcher', async () => {
    const user = await t.createUser();
    // Claimed by a process id no live gateway holds, with a lease far away: taken over at once, not after the lease.
    const [row] = await t.db.database.sql`
      insert into billing_events (type, user_id, tenant_email, data, source, attempts, claimed_by, locked_until)
      values ('instance.created', ${user.id}, ${user.email}, '{"instanceId": 0}', ${`test:dead:${user.id}`}, 1, 2147483000, now() + interval '1 hour')
      returning id`;
    const [delivered] = await until('the orphaned claim delivered', () => someBilled(user.id, 'instance.created'));
    expect(delivered!.webhookId).toBe(`bill_${row!.id}`);
    expect(await recorded(row!.id)).toMatchObject({ status: 'succeeded', attempts: 2 });
    expect(billed(user.id).length).toBe(1);
  });
});

describe('usage.threshold', () => {
  test('80 % and 100 % of each quota, once per tenant, quota, threshold and month', async () => {
    const user = await t.createUser();
    const plan = await planFor(user.id, { messagesPerMonth: 10, mediaBytesPerMonth: 1000 });
    const job = new BillingJob(t.db.url, logger, NO_CLOSE);
    const replica = new BillingJob(t.db.url, logger, NO_CLOSE);
    cleanup.push(() => job.stop(), () => replica.stop());
    const db = t.db.database.db;
    const sent = (n: number, tag: string) =>
      recordUsage(db, Array.from({ length: n }, (_, i) => ({ userId: user.id, metric: 'messages_sent' as const, provider: 'sandbox', quantity: 1, source: `sent:${user.id}:${tag}:${i}` })));

    await sent(7, 'a');
    expect(await job.runOnce()).toMatchObject({ skipped: false, thresholds: 0 });
    await sent(1, 'b'); // 8 of 10
    expect(await job.runOnce()).toMatchObject({ thresholds: 1 });
    expect(await job.runOnce()).toMatchObject({ thresholds: 0 });
    await sent(3, 'c'); // 11 of 10: 100 %
    await recordUsage(db, [{ userId: user.id, metric: 'media_bytes', provider: 'sandbox', quantity: 1500, source: `media:${user.id}:big` }]);
    expect(await job.runOnce()).toMatchObject({ thresholds: 3 }); // messages 100, media 80 and 100
    // Another replica (its first pass looks at the whole month) and a concurrent pass add nothing.
    const both = await Promise.all([replica.runOnce(), job.runOnce()]);
    expect(both.reduce((n, r) => n + (r.skipped ? 0 : r.thresholds), 0)).toBe(0);

    const got = await until('four thresholds delivered', () => {
      const d = billed(user.id, 'usage.threshold');
      return d.length >= 4 ? d : undefined;
    });
    const key = monthKey(new Date());
    expect(got.map((d) => `${d.data.quota}:${d.data.threshold}`).sort()).toEqual([
      'mediaBytesPerMonth:100',
      'mediaBytesPerMonth:80',
      'messagesPerMonth:100',
      'messagesPerMonth:80',
    ]);
    expect(got.find((d) => d.data.quota === 'messagesPerMonth' && d.data.threshold === 80)!.body).toMatchObject({
      type: 'usage.threshold',
      tenant: { id: user.id, email: user.email },
      data: { used: 8, limit: 10, plan, period: { month: key, from: monthStart().toISOString() } },
    });
    const [rows] = await t.db.database.sql`select count(*)::int as n from billing_events where user_id = ${user.id}`;
    expect(rows!.n).toBe(4);
    expect(new Set(got.map((d) => d.webhookId)).size).toBe(4);
  });

  test('maxInstances counts as 100 % when the seats are full', async () => {
    const user = await t.createUser();
    await planFor(user.id, { maxInstances: 1 });
    await t.db.database.sql`insert into instances (user_id, phone_number, provider, desired_state) values (${user.id}, ${phone()}, 'sandbox', 'stopped')`;
    const job = new BillingJob(t.db.url, logger, NO_CLOSE);
    cleanup.push(() => job.stop());
    expect(await job.runOnce()).toMatchObject({ skipped: false });
    const got = await until('seat thresholds delivered', () => {
      const d = billed(user.id, 'usage.threshold');
      return d.length >= 2 ? d : undefined;
    });
    expect(got.map((d) => [d.data.quota, d.data.threshold, d.data.used, d.data.limit]).sort()).toEqual([
      ['maxInstances', 100, 1, 1],
      ['maxInstances', 80, 1, 1],
    ]);
  });
});

describe('usage.period_closed', () => {
  test("last month's totals by metric and provider, once per tenant even when the job runs twice and on two replicas", async () => {
    const user = await t.createUser();
    const idle = await t.createUser(); // no usage, no instance: nothing to bill
    const plan = await planFor(user.id, { messagesPerMonth: 1000 });
    const lastMonth = monthStart(new Date(monthStart().getTime() - 1));
    const inLastMonth = new Date(lastMonth.getTime() + 3 * 86_400_000);
    const u = (metric: 'messages_sent' | 'media_bytes' | 'messages_received' | 'instance_seconds', provider: string, quantity: number, source: string, occurredAt = inLastMonth) => ({
      userId: user.id,
      metric,
      provider,
      quantity,
      source: `${source}:${user.id}`,
      occurredAt,
    });
    await recordUsage(t.db.database.db, [
      u('messages_sent', 'sandbox', 1, 'p1'),
      u('messages_sent', 'sandbox', 1, 'p2'),
      u('messages_sent', 'waba', 1, 'p3'),
      u('media_bytes', 'sandbox', 300, 'p4'),
      u('messages_received', 'waba', 2, 'p5'),
      u('instance_seconds', 'sandbox', 3600, 'p6'),
      u('messages_sent', 'sandbox', 1, 'p7', monthStart()), // this month: not in the period
      u('messages_sent', 'sandbox', 1, 'p8', new Date(lastMonth.getTime() - 1)), // the month before: not either
    ]);
    const job = new BillingJob(t.db.url, logger, { closeGraceMs: 0 });
    const replica = new BillingJob(t.db.url, logger, { closeGraceMs: 0 });
    cleanup.push(() => job.stop(), () => replica.stop());
    const first = await job.runOnce();
    expect(first).toMatchObject({ skipped: false, closedMonth: monthKey(lastMonth) });
    expect(await job.runOnce()).toMatchObject({ closed: 0 });
    expect(await replica.runOnce()).toMatchObject({ closed: 0 });
    expect(await closePeriod(t.db.database.sql, lastMonth)).toBe(0); // the statement itself is idempotent

    const [closed] = await until('period_closed delivered', () => someBilled(user.id, 'usage.period_closed'));
    expect(closed!.body).toMatchObject({
      type: 'usage.period_closed',
      tenant: { id: user.id, email: user.email },
      data: {
        period: { month: monthKey(lastMonth), from: lastMonth.toISOString(), to: monthStart().toISOString() },
        plan,
        totals: { messages_sent: 3, media_bytes: 300, messages_received: 2, instance_seconds: 3600, webhook_deliveries: 0 },
        byProvider: [
          { metric: 'instance_seconds', provider: 'sandbox', quantity: 3600 },
          { metric: 'media_bytes', provider: 'sandbox', quantity: 300 },
          { metric: 'messages_received', provider: 'waba', quantity: 2 },
          { metric: 'messages_sent', provider: 'sandbox', quantity: 2 },
          { metric: 'messages_sent', provider: 'waba', quantity: 1 },
        ],
        instances: 0,
      },
    });
    const [n] = await t.db.database.sql`
      select count(*) filter (where user_id = ${user.id})::int as mine, count(*) filter (where user_id = ${idle.id})::int as idle
      from billing_events where type = 'usage.period_closed'`;
    expect(n).toEqual({ mine: 1, idle: 0 });
    expect(billed(user.id, 'usage.period_closed').length).toBe(1);
  });
});

describe('delivery', () => {
  test('a failing receiver gets retries on the schedule, then the event is delivered once', async () => {
    const user = await t.createUser();
    receiver.mode = 'fail';
    const failedBefore = receiver.failed;
    try {
      const [row] = await t.db.database.sql`
        insert into billing_events (type, user_id, tenant_email, data, source)
        values ('usage.threshold', ${user.id}, ${user.email}, '{"quota": "messagesPerMonth", "threshold": 80}', ${`test:retry:${user.id}`})
        returning id`;
      await until('the first attempt refused', () => receiver.failed > failedBefore);
      // Schedule [0, 1, 1, 2]: the second attempt is due 1 s (±10 %) after the first.
      const [due] = await until('the retry scheduled', async () => {
        const r = await t.db.database.sql`select attempts, last_status_code, extract(epoch from next_attempt_at - now())::float8 as in_s,
          extract(epoch from next_attempt_at - created_at)::float8 as after_insert_s from billing_events where id = ${row!.id}`;
        return r[0]!.last_status_code === 503 ? r : undefined;
      });
      expect(due!.attempts).toBe(1);
      // Measured from the row's own insert (the attempt came after it), not from when this poll read it.
      expect(due!.after_insert_s).toBeGreaterThanOrEqual(0.9);
      expect(due!.in_s).toBeLessThanOrEqual(1.1);
      await until('the second attempt refused', () => receiver.failed > failedBefore + 1, 5000);
      receiver.mode = 'up';
      const [got] = await until('delivered after the receiver is back', () => someBilled(user.id));
      expect(got!.webhookId).toBe(`bill_${row!.id}`);
      expect(await recorded(row!.id)).toMatchObject({ status: 'succeeded', attempts: 3, last_status_code: 200 });
      expect(receiver.failed - failedBefore).toBe(2);
      expect(billed(user.id).length).toBe(1);
    } finally {
      receiver.mode = 'up';
    }
  });
});

describe('off', () => {
  test('without BILLING_WEBHOOK_URL no billing event is recorded', async () => {
    const off = await createTestApp({ listen: true });
    try {
      const user = await off.createUser();
      const created = await off.call('POST', '/api/instances', { key: user.apiKey, body: { provider: 'sandbox', phone: phone() } });
      expect(created.status).toBe(200);
      expect((await off.call('DELETE', `/api/instances/${created.body.id}`, { key: user.apiKey })).status).toBe(204);
      const [n] = await off.db.database.sql`select count(*)::int as n from billing_events`;
      expect(n!.n).toBe(0);
    } finally {
      await off.close();
    }
  });
});
