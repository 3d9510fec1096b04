/**
 * The billing outbox for operators: listing billing events and sending one
 * again, on real Postgres, with a billing dispatcher delivering to a
 * signature-checking receiver on loopback.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { createTestApp, type TestApp } from '../../../../tests/support/app';
import { webhookReceiver, type Receiver } from '../../../../tests/support/receiver';
import { until } from '../../../../tests/support/poll';
import { freePort } from '../../lib/net';
import { acquireOwner, type GatewayOwner } from '../../claims/owner';
import { createLogger } from '../../logging/logger';
import { BillingDispatcher } from '../../billing/dispatcher';

const SECRET = `whsec_${randomBytes(24).toString('base64')}`;
/** Three attempts, back to back: an event runs out of retries at once. */
const RETRY_SCHEDULE_S = [0, 0, 0];
const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
const cleanup: (() => Promise<unknown>)[] = [];
let t: TestApp;
let receiver: Receiver;
let owner: GatewayOwner;
let dispatcher: BillingDispatcher;
let sourceSeq = 0;

beforeAll(async () => {
  receiver = webhookReceiver(await freePort(), cleanup);
  receiver.secrets.set('default', SECRET);
  t = await createTestApp();
  // Its own dispatcher, polling once in 10 minutes: only a NOTIFY gets a replayed event out within the test's deadline.
  owner = await acquireOwner(t.db.url, logger);
  dispatcher = new BillingDispatcher(t.db.database.db, t.db.database.sql, logger, {
    url: receiver.url('/billing'),
    secret: SECRET,
    retryScheduleS: RETRY_SCHEDULE_S,
    allowPrivateNetworks: true,
    timeoutMs: 2000,
    ownerId: owner.id,
    pollMs: 600_000,
  });
  await dispatcher.start();
});
afterAll(async () => {
  await dispatcher.stop();
  await owner.release();
  await t.close();
  for (const c of cleanup) await c();
});

interface Insert {
  type?: string;
  status?: 'pending' | 'succeeded' | 'failed';
  email?: string | null;
  data?: Record<string, unknown>;
  /** Pending events are due in an hour unless `due`: the dispatcher leaves them alone. */
  due?: boolean;
  lastStatusCode?: number | null;
  lastError?: string | null;
}

/** Records a billing event as the producers do (the insert trigger wakes the dispatcher); returns its id. */
async function insertEvent(userId: number, e: Insert = {}): Promise<number> {
  const status = e.status ?? 'pending';
  const [row] = await t.db.database.sql`
    insert into billing_events (type, user_id, tenant_email, data, source, status, next_attempt_at, last_status_code, last_error, completed_at)
    values (${e.type ?? 'usage.threshold'}, ${userId}, ${e.email === undefined ? `tenant${userId}@example.com` : e.email}, ${JSON.stringify(e.data ?? { n: sourceSeq })}::jsonb,
      ${`test:${userId}:${++sourceSeq}`}, ${status}, now() + ${e.due ? '0' : '1 hour'}::interval,
      ${e.lastStatusCode ?? null}, ${e.lastError ?? null}, case when ${status} = 'pending' then null else now() end)
    returning id`;
  return Number(row!.id);
}

/** A billing event's row once the dispatcher has recorded an answer that ends it (the receiver has the event a moment before). */
const settled = (id: number) =>
  until(`billing event ${id} settled`, async () => {
    const [r] = await t.db.database.sql`select status, attempts, last_status_code, locked_until, claimed_by from billing_events where id = ${id}`;
    return r?.status === 'pending' ? undefined : r;
  });

const list = async (query: string) => {
  const res = await t.call('GET', `/admin/billing-events${query}`);
  expect(res.status).toBe(200);
  return res.body as { events: { id: number; [k: string]: unknown }[]; next?: { before: number } };
};
const ids = async (query: string) => {
  const page = await list(query);
  return { ids: page.events.map((e) => e.id), next: page.next };
};

describe('replay', () => {
  test('an event out of retries is listed as failed; a replay delivers it again with the same webhook-id', async () => {
    const user = await t.createUser();
    receiver.mode = 'fail';
    const failedBefore = receiver.failed;
    let id: number;
    try {
      id = await insertEvent(user.id, { type: 'usage.threshold', email: user.email, data: { quota: 'messagesPerMonth', threshold: 80 }, due: true });
      expect(await settled(id)).toMatchObject({ status: 'failed', attempts: RETRY_SCHEDULE_S.length, last_status_code: 503 });
    } finally {
      receiver.mode = 'up';
    }
    expect(receiver.failed - failedBefore).toBe(RETRY_SCHEDULE_S.length);

    const failed = await list(`?status=failed&userId=${user.id}`);
    expect(failed.events).toEqual([
      {
        id,
        type: 'usage.threshold',
        userId: user.id,
        tenantEmail: user.email,
        status: 'failed',
        attempts: RETRY_SCHEDULE_S.length,
        nextAttemptAt: null,
        lastStatusCode: 503,
        lastError: null,
        createdAt: expect.any(String),
        completedAt: expect.any(String),
        data: { quota: 'messagesPerMonth', threshold: 80 },
      },
    ]);
    expect(failed.next).toBeUndefined();
    expect(Date.parse(failed.events[0]!.completedAt as string)).toBeGreaterThanOrEqual(Date.parse(failed.events[0]!.createdAt as string));
    expect((await ids('?status=failed')).ids).toContain(id);
    expect((await ids('?status=succeeded')).ids).not.toContain(id);

    const replay = await t.call('POST', `/admin/billing-events/${id}/replay`);
    expect(replay.status).toBe(202);
    expect(replay.body).toEqual({ id, status: 'pending' });
    // A fresh schedule: one attempt, delivered. The dispatcher polls every 10 minutes: the replay's NOTIFY woke it.
    expect(await settled(id)).toMatchObject({ status: 'succeeded', attempts: 1, last_status_code: 200, locked_until: null, claimed_by: null });
    const delivered = receiver.delivered.filter((d) => d.body.tenant?.id === user.id);
    expect(delivered.map((d) => d.webhookId)).toEqual([`bill_${id}`]);
    expect(delivered[0]!.body).toMatchObject({ type: 'usage.threshold', tenant: { id: user.id, email: user.email }, data: { quota: 'messagesPerMonth', threshold: 80 } });
    const [succeeded] = (await list(`?userId=${user.id}`)).events;
    expect(succeeded).toMatchObject({ id, status: 'succeeded', attempts: 1, nextAttemptAt: null, lastStatusCode: 200, completedAt: expect.any(String) });
    expect((await ids('?status=failed')).ids).not.toContain(id);

    // A succeeded event goes again too (a receiver that lost it), still as the same webhook-id.
    expect((await t.call('POST', `/admin/billing-events/${id}/replay`)).status).toBe(202);
    expect(await settled(id)).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect(receiver.delivered.filter((d) => d.body.tenant?.id === user.id).map((d) => d.webhookId)).toEqual([`bill_${id}`, `bill_${id}`]);
    expect(receiver.forged).toBe(0);
  });

  test('a pending event is 409 already_pending and left as it is; an unknown id is 404', async () => {
    const id = await insertEvent(800_001);
    const [before] = await t.db.database.sql`select status, attempts, next_attempt_at from billing_events where id = ${id}`;
    const res = await t.call('POST', `/admin/billing-events/${id}/replay`);
    expect(res.status).toBe(409);
    expect(res.body).toEqual({ code: 'already_pending', error: `billing event ${id} is pending: it is being sent, with retries` });
    const [after] = await t.db.database.sql`select status, attempts, next_attempt_at from billing_events where id = ${id}`;
    expect(after).toEqual(before!);

    const missing = await t.call('POST', `/admin/billing-events/${Number.MAX_SAFE_INTEGER}/replay`);
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ code: 'not_found', error: `billing event ${Number.MAX_SAFE_INTEGER} not found` });
  });
});

describe('list', () => {
  test('filters by status, type and tenant, newest first, a page at a time', async () => {
    const [a, b] = [800_101, 800_102];
    const e1 = await insertEvent(a, { type: 'instance.created', status: 'succeeded', lastStatusCode: 200 });
    const e2 = await insertEvent(a, { type: 'usage.threshold', status: 'failed', lastError: 'TimeoutError: The operation timed out.' });
    const e3 = await insertEvent(b, { type: 'instance.created' });
    const e4 = await insertEvent(a, { type: 'instance.deleted', email: null, data: { instanceId: 41 } });
    const e5 = await insertEvent(a, { type: 'usage.threshold', status: 'succeeded', lastStatusCode: 204 });
    const e6 = await insertEvent(b, { type: 'usage.period_closed', status: 'failed', lastStatusCode: 500 });

    expect(await ids(`?userId=${a}`)).toEqual({ ids: [e5, e4, e2, e1], next: undefined });
    expect(await ids(`?userId=${b}`)).toEqual({ ids: [e6, e3], next: undefined });
    expect(await ids(`?userId=${a}&type=usage.threshold`)).toEqual({ ids: [e5, e2], next: undefined });
    expect(await ids(`?userId=${a}&status=succeeded`)).toEqual({ ids: [e5, e1], next: undefined });
    expect(await ids(`?userId=${b}&status=failed`)).toEqual({ ids: [e6], next: undefined });
    expect(await ids(`?userId=${a}&status=failed&type=instance.created`)).toEqual({ ids: [], next: undefined });
    expect(await ids('?type=usage.period_closed')).toEqual({ ids: [e6], next: undefined });
    expect(await ids('?userId=800199')).toEqual({ ids: [], next: undefined });

    // What each event shows: nextAttemptAt only while pending, lastError when there was no answer.
    const page = await list(`?userId=${a}`);
    const pending = page.events.find((e) => e.id === e4)!;
    expect(pending).toEqual({
      id: e4,
      type: 'instance.deleted',
      userId: a,
      tenantEmail: null,
      status: 'pending',
      attempts: 0,
      nextAttemptAt: expect.any(String),
      lastStatusCode: null,
      lastError: null,
      createdAt: expect.any(String),
      completedAt: null,
      data: { instanceId: 41 },
    });
    expect(Date.parse(pending.nextAttemptAt as string) - Date.parse(pending.createdAt as string)).toBeGreaterThan(3500_000);
    expect(page.events.find((e) => e.id === e2)).toMatchObject({ status: 'failed', nextAttemptAt: null, lastStatusCode: null, lastError: 'TimeoutError: The operation timed out.' });
    expect(page.events.find((e) => e.id === e5)).toMatchObject({ tenantEmail: `tenant${a}@example.com`, nextAttemptAt: null, lastStatusCode: 204 });

    // Pages: `next.before` while older events match, none on the last page (also when it is exactly full).
    expect(await ids(`?userId=${a}&limit=2`)).toEqual({ ids: [e5, e4], next: { before: e4 } });
    expect(await ids(`?userId=${a}&limit=2&before=${e4}`)).toEqual({ ids: [e2, e1], next: undefined });
    expect(await ids(`?userId=${a}&limit=3`)).toEqual({ ids: [e5, e4, e2], next: { before: e2 } });
    expect(await ids(`?userId=${a}&limit=3&before=${e2}`)).toEqual({ ids: [e1], next: undefined });
    expect(await ids(`?userId=${a}&status=succeeded&limit=1`)).toEqual({ ids: [e5], next: { before: e5 } });
    expect(await ids(`?userId=${a}&status=succeeded&limit=1&before=${e5}`)).toEqual({ ids: [e1], next: undefined });
    expect(await ids(`?userId=${a}&before=${e1}`)).toEqual({ ids: [], next: undefined });
  });

  test('100 events a page unless limit says otherwise, at most 500', async () => {
    const user = 800_201;
    const rows = await t.db.database.sql`
      insert into billing_events (type, user_id, data, source, status, completed_at)
      select 'usage.threshold', ${user}, jsonb_build_object('n', n), 'test:many:' || n, 'succeeded', now()
      from generate_series(1, 101) n
      returning id`;
    const all = rows.map((r) => Number(r.id)).sort((x, y) => y - x);
    const first = await ids(`?userId=${user}`);
    expect(first).toEqual({ ids: all.slice(0, 100), next: { before: all[99]! } });
    expect(await ids(`?userId=${user}&before=${first.next!.before}`)).toEqual({ ids: [all[100]!], next: undefined });
    expect(await ids(`?userId=${user}&limit=500`)).toEqual({ ids: all, next: undefined });
    expect(await ids(`?userId=${user}&limit=1`)).toEqual({ ids: [all[0]!], next: { before: all[0]! } });
  });
});

describe('input', () => {
  test('a bad parameter is a 400 naming it', async () => {
    const cases: [string, string, string][] = [
      ['GET', '/admin/billing-events?status=sent', "invalid query parameter 'status': must be one of pending, succeeded, failed"],
      ['GET', '/admin/billing-events?type=usage', "invalid query parameter 'type': must be one of usage.threshold, usage.period_closed, instance.created, instance.deleted"],
      ...['abc', '1.5', '0', '-1', '', '2147483648'].map(
        (v): [string, string, string] => ['GET', `/admin/billing-events?userId=${v}`, "invalid query parameter 'userId': must be an integer from 1 to 2147483647"],
      ),
      ...['abc', '1.5', '0', '1e3', '9007199254740992'].map(
        (v): [string, string, string] => ['GET', `/admin/billing-events?before=${v}`, "invalid query parameter 'before': must be an integer from 1 to 9007199254740991"],
      ),
      ...['0', '501', '1.5', 'abc', ''].map((v): [string, string, string] => ['GET', `/admin/billing-events?limit=${v}`, "invalid query parameter 'limit': must be an integer from 1 to 500"]),
      ...['abc', '0', '1.5', '-1', '1e3', '9007199254740992'].map(
        (v): [string, string, string] => ['POST', `/admin/billing-events/${v}/replay`, "invalid path parameter 'id': must be an integer from 1 to 9007199254740991"],
      ),
    ];
    for (const [method, path, error] of cases) {
      const res = await t.call(method, path);
      expect({ path, status: res.status, body: res.body }).toEqual({ path, status: 400, body: { code: 'validation_failed', error } });
    }
  });

  test('both routes need the admin secret', async () => {
    const user = await t.createUser();
    const id = await insertEvent(user.id, { status: 'failed' });
    for (const admin of [false, 'wrong-secret', user.apiKey] as const) {
      expect((await t.call('GET', '/admin/billing-events', { admin })).status).toBe(401);
      expect((await t.call('POST', `/admin/billing-events/${id}/replay`, { admin })).status).toBe(401);
    }
    const [row] = await t.db.database.sql`select status from billing_events where id = ${id}`;
    expect(row!.status).toBe('failed');
  });
});

describe('off', () => {
  test('without BILLING_WEBHOOK_URL the routes answer: nothing listed, nothing to replay', async () => {
    const off = await createTestApp();
    try {
      const res = await off.call('GET', '/admin/billing-events?status=failed');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ events: [] });
      const replay = await off.call('POST', '/admin/billing-events/1/replay');
      expect(replay.status).toBe(404);
      expect(replay.body).toEqual({ code: 'not_found', error: 'billing event 1 not found' });
    } finally {
      await off.close();
    }
  });
});
