/**
 * Paced sending through the API with real sandbox workers: sends answered at
 * once but leaving spaced, caps, quiet hours, typing, a pause on an injected
 * rate limit and resume, and scheduled sends surviving a pacer restart.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createTestApp, type TestApp } from '../../../tests/support/app';
import { minuteWithSecondsLeft } from '../../../tests/support/clock';
import { until } from '../../../tests/support/poll';
import { createLogger } from '../logging/logger';
import { PacedDispatcher } from './dispatcher';
import { quietHoursEnd } from './schedule';
import { NO_PACING } from './settings';

let t: TestApp;
let user: { id: number; apiKey: string };
let seq = 0;
const phone = () => `4917${String(Date.now() % 1e6).padStart(6, '0')}${String(seq++ % 100).padStart(2, '0')}`;
const TO = '4915550001234';

async function pairedInstance(pacing?: Record<string, unknown>) {
  const res = await t.call('POST', '/api/instances', { key: user.apiKey, body: { provider: 'sandbox', phone: phone() } });
  if (res.status !== 200) throw new Error(`create failed: ${res.status} ${JSON.stringify(res.body)}`);
  const id = res.body.id as number;
  expect((await t.call('POST', `/api/instances/${id}/sandbox/scan`, { key: user.apiKey })).status).toBe(200);
  if (pacing) {
    const patched = await t.call('PATCH', `/api/instances/${id}`, { key: user.apiKey, body: { pacing } });
    expect(patched.status).toBe(200);
  }
  return id;
}

const send = (id: number, text: string, headers?: Record<string, string>) =>
  t.call('POST', `/api/instances/${id}/send`, { key: user.apiKey, body: { to: TO, text }, headers });

/** The instance's send commands in order, with when they were due and when they left the gateway. */
async function sends(id: number) {
  const rows = await t.db.database.sql<{ id: number; status: string; not_before: string; sent_at: string | null; completed_at: string | null; attempts: number }[]>`
    select id, status, not_before, sent_at, completed_at, attempts from commands where instance_id = ${id} and name = 'send' order by id`;
  const date = (v: string | null) => (v === null ? null : new Date(v));
  return rows.map((r) => ({ ...r, not_before: new Date(r.not_before), sent_at: date(r.sent_at), completed_at: date(r.completed_at) }));
}

beforeAll(async () => {
  t = await createTestApp({ listen: true });
  user = await t.createUser();
});
afterAll(() => t.close());

describe('pacing settings', () => {
  test('PATCH checks pacing field by field, GET shows the effective pacing, null resets', async () => {
    const id = await pairedInstance();
    const got = await t.call('GET', `/api/instances/${id}`, { key: user.apiKey });
    expect(got.body).toMatchObject({ pacing: NO_PACING, pacingCustom: false, pausedUntil: null, pausedReason: null });
    const bad = await t.call('PATCH', `/api/instances/${id}`, { key: user.apiKey, body: { pacing: { maxPerMinute: 0 } } });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toContain("'pacing.maxPerMinute'");
    const tz = await t.call('PATCH', `/api/instances/${id}`, { key: user.apiKey, body: { pacing: { quietHours: { start: '22:00', end: '07:00', timezone: 'Nowhere/City' } } } });
    expect(tz.status).toBe(400);
    expect(tz.body.error).toContain("'pacing.quietHours.timezone'");
    const ok = await t.call('PATCH', `/api/instances/${id}`, { key: user.apiKey, body: { pacing: { minIntervalMs: 1500, maxPerDay: 200 } } });
    expect(ok.status).toBe(200);
    expect(ok.body.pacing).toEqual({ ...NO_PACING, minIntervalMs: 1500, maxPerDay: 200 });
    const more = await t.call('PATCH', `/api/instances/${id}`, { key: user.apiKey, body: { pacing: { jitterMs: 500 } } });
    expect(more.body.pacing).toMatchObject({ minIntervalMs: 1500, jitterMs: 500, maxPerDay: 200 });
    const reset = await t.call('PATCH', `/api/instances/${id}`, { key: user.apiKey, body: { pacing: null } });
    expect(reset.body).toMatchObject({ pacing: NO_PACING, pacingCustom: false });
  });
});

describe('paced sends', () => {
  test('ten sends are answered at once and leave the gateway spaced by minIntervalMs plus jitter', async () => {
    const id = await pairedInstance({ minIntervalMs: 300, jitterMs: 100 });
    const started = Date.now();
    const answers = [];
    for (let i = 0; i < 10; i++) answers.push(await send(id, `paced ${i}`));
    expect(Date.now() - started).toBeLessThan(2500); // no answer waited for its slot
    expect([200, 202]).toContain(answers[0]!.status);
    const scheduled = answers.slice(1);
    for (const a of scheduled) expect(a.body).toMatchObject({ status: 'scheduled' });
    for (const a of scheduled) expect(a.status).toBe(202);
    const at = scheduled.map((a) => Date.parse(a.body.scheduledAt));
    for (let i = 1; i < at.length; i++) expect(at[i]!).toBeGreaterThan(at[i - 1]!);

    const rows = await until('all ten sent', async () => {
      const r = await sends(id);
      return r.length === 10 && r.every((c) => c.status === 'done') ? r : undefined;
    });
    const due = rows.map((c) => c.not_before.getTime());
    const left = rows.map((c) => c.sent_at!.getTime());
    for (let i = 0; i < 10; i++) expect(left[i]!).toBeGreaterThanOrEqual(due[i]!); // never early
    const dueGaps = due.slice(1).map((d, i) => d - due[i]!);
    for (const g of dueGaps) {
      expect(g).toBeGreaterThanOrEqual(300);
      expect(g).toBeLessThanOrEqual(400);
    }
    // What left the gateway: each on its slot, give or take the timer's latency (never early, checked above;
    // a gap between two can shrink when the first timer fired late on a loaded machine, so lateness is bounded, not gaps).
    for (let i = 0; i < 10; i++) expect(left[i]! - due[i]!).toBeLessThan(1_000);
    expect(new Set(dueGaps).size).toBeGreaterThan(1); // jitter present
    // Each went to the worker once (the first live, the others by the pacer).
    expect(rows.map((c) => c.attempts)).toEqual([answers[0]!.status === 200 ? 0 : 1, ...Array(9).fill(1)]);
    await until('all ten messages past queued', async () => {
      const [out] = await t.db.database.sql`select count(*)::int as n from messages where instance_id = ${id} and status <> 'queued'`;
      return out!.n === 10;
    });
  });

  test('maxPerMinute: sends beyond the cap move to the next minute', async () => {
    const id = await pairedInstance({ maxPerMinute: 2 });
    // The three sends must fall in one clock minute (the cap counts per minute).
    await minuteWithSecondsLeft(t.db.database.sql, 10);
    expect((await send(id, 'one')).status).toBe(200);
    expect((await send(id, 'two')).status).toBe(200);
    const third = await send(id, 'three');
    expect(third.status).toBe(202);
    expect(third.body.status).toBe('scheduled');
    const at = Date.parse(third.body.scheduledAt);
    expect(at % 60_000).toBe(0);
    expect(at).toBeGreaterThan(Date.now());
    expect(at - Date.now()).toBeLessThanOrEqual(60_000);
    // An Idempotency-Key repeated on a scheduled send answers the same.
    const keyed = await send(id, 'four', { 'idempotency-key': 'k-four' });
    const again = await send(id, 'four', { 'idempotency-key': 'k-four' });
    expect(again.status).toBe(202);
    expect(again.body).toEqual(keyed.body);
  });

  test('quiet hours: a send inside them is scheduled at their end', async () => {
    const now = new Date();
    const hhmm = (d: Date) => `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
    const q = { start: hhmm(new Date(now.getTime() - 3_600_000)), end: hhmm(new Date(now.getTime() + 3_600_000)), timezone: 'UTC' };
    const id = await pairedInstance({ quietHours: q });
    const res = await send(id, 'at night');
    expect(res.status).toBe(202);
    expect(Date.parse(res.body.scheduledAt)).toBe(quietHoursEnd(Date.now(), q));
    const [m] = await t.db.database.sql`select status from messages where id = ${res.body.id}`;
    expect(m!.status).toBe('queued');
  });

  test('typing: a presence goes to the worker before each paced send', async () => {
    const id = await pairedInstance({ minIntervalMs: 300, typing: true });
    for (let i = 0; i < 3; i++) await send(id, `typed ${i}`);
    const rows = await until('three sent', async () => {
      const r = await sends(id);
      return r.length === 3 && r.every((c) => c.status === 'done') ? r : undefined;
    });
    const presences = (
      await t.db.database.sql<{ args: { chat: string; state: string }; status: string; not_before: string; completed_at: string }[]>`
        select args, status, not_before, completed_at from commands where instance_id = ${id} and name = 'presence' order by id`
    ).map((p) => ({ ...p, not_before: new Date(p.not_before), completed_at: new Date(p.completed_at) }));
    expect(presences.length).toBe(3);
    for (let i = 0; i < 3; i++) {
      const p = presences[i]!;
      expect(p.args).toEqual({ chat: TO, state: 'composing' });
      expect(p.status).toBe('done');
      expect(p.completed_at.getTime()).toBeLessThanOrEqual(rows[i]!.completed_at!.getTime());
      if (i > 0) {
        expect(p.completed_at.getTime()).toBeGreaterThanOrEqual(rows[i - 1]!.completed_at!.getTime());
        // Half the interval ahead of its send, or at once when the send is due sooner than that.
        const lead = rows[i]!.not_before.getTime() - p.not_before.getTime();
        expect(lead).toBeGreaterThanOrEqual(0);
        expect(lead).toBeLessThanOrEqual(150);
      }
    }
  });
});

describe('pause and resume', () => {
  test('a provider rate limit pauses the number and queues the refused send again; later sends wait; resume sends them all', async () => {
    const id = await pairedInstance({ minIntervalMs: 100 });
    const faults = await t.call('POST', `/api/instances/${id}/sandbox/faults`, { key: user.apiKey, body: { rateLimitNext: 1 } });
    expect(faults.status).toBe(200);
    const limited = await send(id, 'too fast');
    // Not a failure: the message waits for the pause's end.
    expect(limited.status).toBe(202);
    expect(limited.body.status).toBe('scheduled');
    const [event] = await t.db.database.sql`select data from events where instance_id = ${id} and type = 'instance.paused'`;
    expect(event!.data.reason).toContain('rate_limited');
    const view = (await t.call('GET', `/api/instances/${id}`, { key: user.apiKey })).body;
    expect(view.pausedReason).toContain('rate_limited');
    const until5 = Date.parse(view.pausedUntil);
    expect(until5 - Date.now()).toBeGreaterThan(4 * 60_000); // the first pause: 5 minutes
    expect(Date.parse(event!.data.until)).toBe(until5);
    expect(Date.parse(limited.body.scheduledAt)).toBe(until5);
    // The refused command failed; a new one carries the same message, due at the pause's end.
    const refused = await sends(id);
    expect(refused.map((c) => [c.status, c.not_before.getTime() >= until5])).toEqual([
      ['failed', false],
      ['pending', true],
    ]);
    const [queued] = await t.db.database.sql`select status, requeues, command_id from messages where id = ${limited.body.id}`;
    expect(queued).toEqual({ status: 'queued', requeues: 1, command_id: refused[1]!.id });

    const held = [await send(id, 'after 1'), await send(id, 'after 2')];
    for (const h of held) {
      expect(h.status).toBe(202);
      expect(Date.parse(h.body.scheduledAt)).toBeGreaterThanOrEqual(until5);
    }
    const resumed = await t.call('POST', `/api/instances/${id}/resume`, { key: user.apiKey });
    expect(resumed.status).toBe(200);
    expect(resumed.body).toMatchObject({ pausedUntil: null, pausedReason: null });
    const all = [limited, ...held].map((h) => h.body.id as string);
    const out = await until('the refused and the held sends sent after resume', async () => {
      const rows = await t.db.database.sql`select id, status from messages where id in ${t.db.database.sql(all)}`;
      return rows.length === 3 && rows.every((r) => r.status !== 'queued') ? rows : undefined;
    });
    expect(out.every((r) => r.status !== 'failed')).toBe(true);
    // Each went to the worker as one successful send: the refused one once more, no more.
    expect((await sends(id)).map((c) => c.status)).toEqual(['failed', 'done', 'done', 'done']);
    const [resumedEvent] = await t.db.database.sql`select 1 from events where instance_id = ${id} and type = 'instance.resumed'`;
    expect(resumedEvent).toBeDefined();
  });
});

describe('rate-limit requeues', () => {
  test('a message refused by the rate limit a fourth time fails with it (429 to no one: it was scheduled)', async () => {
    const id = await pairedInstance();
    expect((await t.call('POST', `/api/instances/${id}/sandbox/faults`, { key: user.apiKey, body: { rateLimitNext: 4 } })).status).toBe(200);
    const first = await send(id, 'refused four times');
    expect(first.status).toBe(202);
    const message = async () => (await t.db.database.sql`select status, requeues, error from messages where id = ${first.body.id}`)[0]!;
    for (let n = 2; n <= 3; n++) {
      expect((await t.call('POST', `/api/instances/${id}/resume`, { key: user.apiKey })).status).toBe(200);
      await until(`requeued a ${n}th time`, async () => (await message()).requeues === n);
    }
    expect((await t.call('POST', `/api/instances/${id}/resume`, { key: user.apiKey })).status).toBe(200);
    const failed = await until('failed at the fourth refusal', async () => ((await message()).status === 'failed' ? message() : undefined));
    expect(failed).toMatchObject({ status: 'failed', requeues: 3 });
    expect(failed.error).toContain('rate');
    expect((await sends(id)).map((c) => c.status)).toEqual(['failed', 'failed', 'failed', 'failed']);
    // The number is paused by the last refusal too; nothing else is pending.
    expect((await t.call('GET', `/api/instances/${id}`, { key: user.apiKey })).body.pausedReason).toContain('rate_limited');
  });
});

describe('pause by schedule', () => {
  test('a pause ends by itself at pausedUntil: held sends go out, instance.resumed {by: schedule}', async () => {
    const id = await pairedInstance(); // no pacing: a pause holds unpaced sends too
    await t.db.database.sql`update instances set paused_until = now() + interval '3 seconds', paused_reason = 'test' where id = ${id}`;
    const held = await send(id, 'held');
    expect(held.status).toBe(202);
    expect(held.body.status).toBe('scheduled');
    await until('the held send sent', async () => {
      const [m] = await t.db.database.sql`select status from messages where id = ${held.body.id}`;
      return m?.status !== 'queued';
    });
    const [event] = await until('instance.resumed', async () => {
      const rows = await t.db.database.sql`select data from events where instance_id = ${id} and type = 'instance.resumed'`;
      return rows.length > 0 ? rows : undefined;
    });
    expect(event!.data).toEqual({ by: 'schedule' });
    const view = (await t.call('GET', `/api/instances/${id}`, { key: user.apiKey })).body;
    expect(view).toMatchObject({ pausedUntil: null, pausedReason: null });
    expect((await send(id, 'after the pause')).status).toBe(200);
  });
});

describe('restart safety', () => {
  test('scheduled sends survive the pacer going away and leave once when a new one starts', async () => {
    const id = await pairedInstance({ minIntervalMs: 250 });
    await t.runtime.pacer.stop(); // as if this replica died with sends scheduled
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await send(id, `durable ${i}`));
    const last = Date.parse(answers[3]!.body.scheduledAt);
    await until('the schedule to pass', () => Date.now() > last + 200);
    const waiting = await sends(id);
    expect(waiting.slice(1).every((c) => c.status === 'pending' && c.sent_at === null)).toBe(true);
    const fresh = new PacedDispatcher(t.db.database.db, t.db.database.sql, t.runtime.pacerTarget(), createLogger('silent'));
    await fresh.start();
    try {
      const rows = await until('all four sent', async () => {
        const r = await sends(id);
        return r.every((c) => c.status === 'done') ? r : undefined;
      });
      for (const c of rows) expect(c.attempts).toBeLessThanOrEqual(1);
      await until('no message left queued', async () => {
        const [queued] = await t.db.database.sql`select count(*)::int as n from messages where instance_id = ${id} and status = 'queued'`;
        return queued!.n === 0;
      });
    } finally {
      await fresh.stop();
    }
  });
});
