import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createTestApp, type TestApp } from '../../../../tests/support/app';
import { until } from '../../../../tests/support/poll';
import { addEvent as addEventRow, fixtureInstance as fixtureRow } from '../../../../tests/support/event-log';

interface Page {
  events: { id: number; type: string; instanceId: number; createdAt: string; data: Record<string, unknown> }[];
  next?: { after?: string; before?: number };
  more: boolean;
}

type User = { id: number; apiKey: string };
let t: TestApp;
let a: User;
let b: User;
/** The fixture's instances: two of tenant a, one of tenant b. */
const inst = { a1: 0, a2: 0, b: 0 };
/** The events of the fixture, in insert order. */
const ids = { qr: 0, in1: 0, other: 0, status: 0, a2: 0, in2: 0, in3: 0, elsewhere: 0 };

/**
 * A polling page once it holds `count` events: polling shows an event when every older write transaction
 * on the server has ended, and another test's may still be running for a moment.
 */
const polled = (path: string, count: number) =>
  until(`${count} events polled from ${path}`, async () => {
    const page = await get(path);
    return page.events.length === count ? page : null;
  });

/**
 * Checks a page's `next.after`: the cursor of the page's last event (its transaction, then its id), and `more`.
 * (Not `toMatchObject` with `expect.stringMatching`: Bun's writes the matcher into the object it checks.)
 */
function expectNext(page: Page, lastId: number, more: boolean) {
  expect(page.next?.after).toMatch(new RegExp(`^[0-9]+[.]${lastId}$`));
  expect(page.more).toBe(more);
}

const fixtureInstance = (userId: number, phone: string) => fixtureRow(t.db.database.sql, userId, phone);
const addEvent = (instanceId: number, type: string, data: Record<string, unknown>) => addEventRow(t.db.database.sql, instanceId, type, data);

async function get(path: string, key = a.apiKey): Promise<Page> {
  const res = await t.call('GET', path, { key });
  expect(res.status).toBe(200);
  return res.body as Page;
}

beforeAll(async () => {
  t = await createTestApp();
  a = await t.createUser();
  b = await t.createUser();
  inst.a1 = await fixtureInstance(a.id, '15550001001');
  inst.a2 = await fixtureInstance(a.id, '15550001002');
  inst.b = await fixtureInstance(b.id, '15550002001');
  ids.qr = await addEvent(inst.a1, 'instance.qr', { qr: '2@abc', expiresAt: '2026-12-02T00:00:20.000Z' });
  ids.in1 = await addEvent(inst.a1, 'message.received', { id: 'in-1', from: '15550009001', text: 'one' });
  ids.other = await addEvent(inst.b, 'message.received', { id: 'B-secret', text: 'for B only' });
  ids.status = await addEvent(inst.a1, 'message.status', { messageId: 'm1', status: 'read' });
  ids.a2 = await addEvent(inst.a2, 'instance.status', { status: 'running', state: 'connected' });
  ids.in2 = await addEvent(inst.a1, 'message.received', { id: 'in-2', from: '15550009001', text: 'two' });
});
afterAll(() => t.close());

describe('GET /api/instances/:id/events', () => {
  test('newest first, paged with next.before to the start of the log', async () => {
    const first = await get(`/api/instances/${inst.a1}/events?limit=3`);
    expect(first.events.map((e) => e.id)).toEqual([ids.in2, ids.status, ids.in1]);
    expect(first.more).toBe(true);
    expect(first.next).toEqual({ before: ids.in1 });
    // The stream's shape: {id, type, instanceId, createdAt, data}.
    expect(first.events[0]).toEqual({ id: ids.in2, type: 'message.received', instanceId: inst.a1, createdAt: expect.any(String), data: { id: 'in-2', from: '15550009001', text: 'two' } });
    expect(Date.parse(first.events[0]!.createdAt)).toBeGreaterThan(Date.now() - 60_000);

    const second = await get(`/api/instances/${inst.a1}/events?limit=3&before=${first.next!.before}`);
    expect(second.events.map((e) => e.id)).toEqual([ids.qr]);
    expect(second.more).toBe(false);
    expect(second.next).toBeUndefined();
    expect(second.events[0]!.data).toEqual({ qr: '2@abc', expiresAt: '2026-12-02T00:00:20.000Z' });

    // The default limit takes all four; exactly a page's worth is not "more".
    expect((await get(`/api/instances/${inst.a1}/events`)).events.map((e) => e.id)).toEqual([ids.in2, ids.status, ids.in1, ids.qr]);
    const exact = await get(`/api/instances/${inst.a1}/events?limit=4`);
    expect([exact.more, exact.next]).toEqual([false, undefined]);
  });

  test('polling with after: oldest first, each event once, a new event on the next poll', async () => {
    const p1 = await polled(`/api/instances/${inst.a1}/events?after=0&limit=2`, 2);
    expect(p1.events.map((e) => e.id)).toEqual([ids.qr, ids.in1]);
    expectNext(p1, ids.in1, true);
    const p2 = await polled(`/api/instances/${inst.a1}/events?after=${p1.next!.after}&limit=2`, 2);
    expect(p2.events.map((e) => e.id)).toEqual([ids.status, ids.in2]);
    expectNext(p2, ids.in2, false);
    // Caught up: nothing, and the cursor stays.
    const p3 = await get(`/api/instances/${inst.a1}/events?after=${p2.next!.after}&limit=2`);
    expect(p3).toEqual({ events: [], next: { after: p2.next!.after! }, more: false });

    const fresh = await addEvent(inst.a1, 'message.received', { id: 'in-3', from: '15550009001', text: 'three' });
    ids.elsewhere = await addEvent(inst.a2, 'message.received', { id: 'elsewhere' });
    const p4 = await polled(`/api/instances/${inst.a1}/events?after=${p3.next!.after}&limit=2`, 1);
    expect(p4.events.map((e) => e.id)).toEqual([fresh]);
    expectNext(p4, fresh, false);
    const seen = [...p1.events, ...p2.events, ...p4.events].map((e) => e.id);
    expect(new Set(seen).size).toBe(seen.length);
    ids.in3 = fresh;
  });

  test('a types filter applies to both directions', async () => {
    const received = await get(`/api/instances/${inst.a1}/events?types=message.received&limit=2`);
    expect(received.events.map((e) => e.id)).toEqual([ids.in3, ids.in2]);
    expect(received.next).toEqual({ before: ids.in2 });
    const older = await get(`/api/instances/${inst.a1}/events?types=message.received&limit=2&before=${ids.in2}`);
    expect(older.events.map((e) => e.id)).toEqual([ids.in1]);
    const two = await polled(`/api/instances/${inst.a1}/events?types=instance.qr,message.status&after=0`, 2);
    expect(two.events.map((e) => e.id)).toEqual([ids.qr, ids.status]);
  });

  test("another tenant's instance is a 404, and no key a 401", async () => {
    const res = await t.call('GET', `/api/instances/${inst.b}/events`, { key: a.apiKey });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: `instance ${inst.b} not found`, code: 'not_found' });
    expect((await t.call('GET', `/api/instances/${inst.a1}/events`)).status).toBe(401);
    expect((await t.call('GET', '/api/events')).status).toBe(401);
  });
});

describe('GET /api/events', () => {
  test("the tenant's instances, not another tenant's", async () => {
    const all = await get('/api/events?limit=500');
    expect(all.events.map((e) => [e.id, e.instanceId])).toEqual([
      [ids.elsewhere, inst.a2],
      [ids.in3, inst.a1],
      [ids.in2, inst.a1],
      [ids.a2, inst.a2],
      [ids.status, inst.a1],
      [ids.in1, inst.a1],
      [ids.qr, inst.a1],
    ]);
    expect([all.more, all.next]).toEqual([false, undefined]);

    // After an event given by its id (one a webhook carried, say).
    const page = await polled(`/api/events?after=${ids.in1}&limit=3`, 3);
    expect(page.events.map((e) => e.id)).toEqual([ids.status, ids.a2, ids.in2]);
    expectNext(page, ids.in2, true);

    const mineB = await get('/api/events?types=message.received', b.apiKey);
    expect(mineB.events.map((e) => e.id)).toEqual([ids.other]);
  });
});

describe('polling never skips an event whose transaction commits late', () => {
  /** A transaction held open: `run` inside it, then `commit()` ends it. */
  function openTransaction() {
    let commit!: () => void;
    const committed = new Promise<void>((resolve) => (commit = resolve));
    let ready!: (sql: any) => void;
    const inside = new Promise<any>((resolve) => (ready = resolve));
    const done = t.db.database.sql.begin(async (tx) => {
      ready(tx);
      await committed;
    });
    return { inside, commit: async () => (commit(), await done) };
  }

  test('an event with a lower id committed after a higher one is polled, not skipped', async () => {
    const phone = await fixtureInstance(a.id, '15550001003');
    const start = await get(`/api/instances/${phone}/events?after=0`);
    expect(start).toEqual({ events: [], next: { after: '0' }, more: false });

    // The slow transaction takes its event id first and stays open.
    const slow = openTransaction();
    const slowSql = await slow.inside;
    const [row] = await slowSql`insert into events (instance_id, type, data) values (${phone}, 'message.received', ${JSON.stringify({ id: 'slow' })}::jsonb) returning id`;
    const slowId = Number(row.id);
    // A later event commits at once: its id is higher.
    const fastId = await addEvent(phone, 'message.received', { id: 'fast' });
    expect(fastId).toBeGreaterThan(slowId);

    // In id order a poll would hand out fast's cursor now and never show slow. It waits instead.
    const held = await get(`/api/instances/${phone}/events?after=${start.next!.after}`);
    expect(held).toEqual({ events: [], next: { after: '0' }, more: false });
    // The tenant's page holds it back too (the tenant's older events may come; fast may not).
    const tenantWide = await get('/api/events?after=0&limit=500');
    expect(tenantWide.events.map((e) => e.id)).not.toContain(fastId);

    await slow.commit();
    const both = await polled(`/api/instances/${phone}/events?after=${held.next!.after}`, 2);
    expect(both.events.map((e) => e.data.id)).toEqual(['slow', 'fast']);
    expectNext(both, fastId, false);
    // After an event given by its id, the log's order applies: slow came before fast.
    expect((await polled(`/api/instances/${phone}/events?after=${slowId}`, 1)).events.map((e) => e.id)).toEqual([fastId]);
  });

  test('events come in the order of their transactions, so a higher id can come first', async () => {
    const phone = await fixtureInstance(a.id, '15550001004');
    // The first transaction starts writing (it gets its transaction id) before the second exists ...
    const first = openTransaction();
    const firstSql = await first.inside;
    await firstSql`select pg_current_xact_id()`;
    // ... the second inserts and commits (a lower event id) ...
    const secondId = await addEvent(phone, 'message.status', { messageId: 'm', status: 'sent' });
    // ... and the first inserts its event last (a higher id).
    const [row] = await firstSql`insert into events (instance_id, type, data) values (${phone}, 'message.status', ${JSON.stringify({ messageId: 'm', status: 'delivered' })}::jsonb) returning id`;
    const firstId = Number(row.id);
    expect(firstId).toBeGreaterThan(secondId);
    expect((await get(`/api/instances/${phone}/events?after=0`)).events).toEqual([]);

    await first.commit();
    const page = await polled(`/api/instances/${phone}/events?after=0`, 2);
    expect(page.events.map((e) => e.id)).toEqual([firstId, secondId]);
    // History (newest first) stays in id order.
    expect((await get(`/api/instances/${phone}/events`)).events.map((e) => e.id)).toEqual([firstId, secondId]);
    // Starting after the lower id: the higher one sorts before it (an older transaction), so it is not skipped;
    // the lower one may come again.
    const fromLower = await until('polled after the lower id', async () => {
      const p = await get(`/api/instances/${phone}/events?after=${secondId}`);
      return p.events.some((e) => e.id === firstId) ? p : null;
    });
    expect(fromLower.events.map((e) => e.id).every((id) => id === firstId || id === secondId)).toBe(true);
    expect((await get(`/api/events?after=${secondId}&limit=500`)).events.map((e) => e.id)).toContain(firstId);
  });

  test('a cursor is read as decimal digits, and one ahead of the database (from before a restore) is refused', async () => {
    const phone = await fixtureInstance(a.id, '15550001005');
    const xs = [await addEvent(phone, 'message.received', { id: 'x1' }), await addEvent(phone, 'message.received', { id: 'x2' })];
    const first = await polled(`/api/instances/${phone}/events?after=0&limit=1`, 1);
    const cursor = first.next!.after!;
    // A leading zero does not make it octal (Postgres would read 0123 as 83).
    const padded = await polled(`/api/instances/${phone}/events?after=0${cursor}`, 1);
    expect(padded.events.map((e) => e.id)).toEqual([xs[1]!]);
    expect(padded.next).toEqual((await polled(`/api/instances/${phone}/events?after=${cursor}`, 1)).next);
    for (const ahead of ['9999999999999999999.1', `${BigInt(cursor.split('.')[0]!) + 1_000_000_000n}.1`]) {
      const res = await t.call('GET', `/api/instances/${phone}/events?after=${ahead}`, { key: a.apiKey });
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ code: 'cursor_invalid', error: expect.stringContaining('restored from a dump') });
    }
  });
});

describe('bad input', () => {
  const bad = async (path: string) => {
    const res = await t.call('GET', path, { key: a.apiKey });
    expect(res.status).toBe(400);
    return res.body as { error: string; code: string };
  };

  test('each is a 400 whose message names the field', async () => {
    expect(await bad(`/api/instances/${inst.a1}/events?types=message.received,message.nope`)).toEqual({
      code: 'unknown_event_type',
      error: expect.stringContaining('unknown event type "message.nope"'),
    });
    expect(await bad('/api/events?types=nope')).toMatchObject({ code: 'unknown_event_type' });
    for (const value of ['abc', '-1', '1e3', '1.2.3', '.5', '7.', '12345678901234567890.1', '1.1234567890123456']) {
      expect(await bad(`/api/instances/${inst.a1}/events?after=${value}`)).toEqual({
        code: 'validation_failed',
        error: "invalid query parameter 'after': must be 0, an event id, or the next.after cursor of a previous page",
      });
    }
    for (const value of ['1.5', 'abc', '-1', '1e3']) {
      expect(await bad(`/api/events?before=${value}`)).toEqual({
        code: 'validation_failed',
        error: "invalid query parameter 'before': must be an event id (a non-negative integer)",
      });
    }
    for (const value of ['0', '501', '2.5', 'ten']) {
      expect(await bad(`/api/events?limit=${value}`)).toEqual({ code: 'validation_failed', error: "invalid query parameter 'limit': must be an integer from 1 to 500" });
    }
    // An event id that is not in the log asked for: another tenant's, another instance's, or none.
    for (const [path, id] of [
      ['/api/events', ids.other],
      [`/api/instances/${inst.a1}/events`, ids.a2],
      ['/api/events', 999_999_999],
    ] as const) {
      expect(await bad(`${path}?after=${id}`)).toEqual({
        code: 'event_not_found',
        error: `invalid query parameter 'after': event ${id} is not in this log (not one of its events, or older than the retention period); poll from 0 or from a next.after cursor`,
      });
    }
    expect(await bad(`/api/instances/${inst.a1}/events?after=1&before=9`)).toEqual({
      code: 'validation_failed',
      error: expect.stringContaining("invalid query parameters 'after' and 'before'"),
    });
    expect((await bad('/api/instances/0/events')).code).toBe('validation_failed');
  });
});

describe('OpenAPI', () => {
  test('both routes are documented under events, with the tenant key, their query and the page schema', async () => {
    const spec = (await t.call('GET', '/openapi.json')).body as any;
    for (const path of ['/api/events', '/api/instances/{id}/events']) {
      const op = spec.paths[path]?.get;
      expect(op, path).toBeDefined();
      expect(op.tags).toEqual(['events']);
      expect(op.security).toEqual([{ apiKey: [] }]);
      expect(op.summary).toContain('event log');
      expect(op.description).toContain('next.after');
      expect(op.parameters.filter((p: any) => p.in === 'query').map((p: any) => p.name).sort()).toEqual(['after', 'before', 'limit', 'types']);
      const page = op.responses['200'].content['application/json'].schema;
      expect(Object.keys(page.properties).sort()).toEqual(['events', 'more', 'next']);
      expect(Object.keys(page.properties.events.items.properties).sort()).toEqual(['createdAt', 'data', 'id', 'instanceId', 'type']);
      expect(op.responses['400']).toBeDefined();
    }
    expect(spec.paths['/api/instances/{id}/events'].get.responses['404']).toBeDefined();
  });
});
