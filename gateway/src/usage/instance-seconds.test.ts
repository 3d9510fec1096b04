/**
 * Instance seconds from backdated status histories: each hour counts the
 * seconds an instance was `running`, once, whichever pass or replica closes it.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import postgres from 'postgres';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/postgres';
import { createLogger } from '../logging/logger';
import { accrueInstanceSeconds, hourStart, InstanceSecondsJob, USAGE_LOCK } from './instance-seconds';

let db: TestDatabase;
let userId: number;
const H10 = new Date('2026-01-01T10:00:00Z');
const H11 = new Date('2026-01-01T11:00:00Z');
const H12 = new Date('2026-01-01T12:00:00Z');
const H13 = new Date('2026-01-01T13:00:00Z');
const at = (hhmm: string) => new Date(`2026-01-01T${hhmm}:00Z`);

/** An instance with this current status (since `since`) and these backdated status events. */
async function instance(phone: string, provider: string, status: string, since: Date, history: [Date, string][]) {
  const sql = db.database.sql;
  const [row] = await sql`
    insert into instances (user_id, phone_number, provider, desired_state, status, status_changed_at)
    values (${userId}, ${phone}, ${provider}, 'running', ${status}, ${since.toISOString()}) returning id`;
  for (const [when, s] of history) {
    await sql`insert into events (instance_id, type, data, created_at) values (${row!.id}, 'instance.status', ${JSON.stringify({ status: s, statusReason: 'test' })}::jsonb, ${when.toISOString()})`;
  }
  return row!.id as number;
}

async function seconds(instanceId: number) {
  const rows = await db.database.sql`
    select source, quantity, provider, user_id, occurred_at from usage_ledger
    where metric = 'instance_seconds' and instance_id = ${instanceId} order by occurred_at`;
  return rows.map((r) => ({ source: r.source, quantity: Number(r.quantity), provider: r.provider, userId: r.user_id, hour: new Date(r.occurred_at).toISOString() }));
}

let flapping: number;
let steady: number;
let stopped: number;
let pruned: number;
let created: number;

beforeAll(async () => {
  db = await createTestDatabase();
  [{ id: userId }] = (await db.database.sql`insert into users (email) values ('secs@example.com') returning id`) as unknown as [{ id: number }];
  // Ran from 09:30, stopped 10:15–10:45, running since.
  flapping = await instance('4910001', 'baileys', 'running', at('10:45'), [[at('09:30'), 'running'], [at('10:15'), 'stopped'], [at('10:45'), 'running']]);
  // Running since last year, no event left (pruned): the row's status holds.
  steady = await instance('4910002', 'whatsmeow', 'running', new Date('2025-06-01T00:00:00Z'), []);
  stopped = await instance('4910003', 'sandbox', 'stopped', new Date('2025-06-01T00:00:00Z'), []);
  // Its last event before 10:00 is gone (retention), it stopped at 11:20; the hour before 10:00 was counted in full.
  pruned = await instance('4910004', 'sandbox', 'stopped', at('11:20'), [[at('11:20'), 'stopped']]);
  await db.database.sql`insert into usage_ledger (user_id, instance_id, metric, provider, quantity, source, occurred_at)
    values (${userId}, ${pruned}, 'instance_seconds', 'sandbox', 3600, ${`instance:${pruned}:2026-01-01T09:00:00.000Z`}, ${at('09:00').toISOString()})`;
  // Created 11:10 (starting), running from 11:10:30, migrating 11:50, running again 11:51.
  created = await instance('4910005', 'sandbox', 'running', at('11:51'), [
    [at('11:10'), 'starting'],
    [new Date('2026-01-01T11:10:30Z'), 'running'],
    [at('11:50'), 'migrating'],
    [at('11:51'), 'running'],
  ]);
});
afterAll(() => db.drop());

describe('accrueInstanceSeconds', () => {
  test('each hour counts the seconds spent running, by the instance provider and tenant', async () => {
    const done = await accrueInstanceSeconds(db.database.sql, H10, H12);
    expect(await seconds(flapping)).toEqual([
      { source: `instance:${flapping}:2026-01-01T10:00:00.000Z`, quantity: 1800, provider: 'baileys', userId, hour: H10.toISOString() },
      { source: `instance:${flapping}:2026-01-01T11:00:00.000Z`, quantity: 3600, provider: 'baileys', userId, hour: H11.toISOString() },
    ]);
    expect((await seconds(steady)).map((r) => [r.hour, r.quantity, r.provider])).toEqual([
      [H10.toISOString(), 3600, 'whatsmeow'],
      [H11.toISOString(), 3600, 'whatsmeow'],
    ]);
    expect(await seconds(stopped)).toEqual([]);
    // From the fully counted hour before: running until 11:20.
    expect((await seconds(pruned)).map((r) => [r.hour, r.quantity])).toEqual([
      ['2026-01-01T09:00:00.000Z', 3600],
      [H10.toISOString(), 3600],
      [H11.toISOString(), 1200],
    ]);
    // 11:10:30–11:50 and 11:51–12:00: 2370 + 540.
    expect((await seconds(created)).map((r) => [r.hour, r.quantity])).toEqual([[H11.toISOString(), 2910]]);
    expect(done).toEqual({ rows: 7, seconds: 1800 + 3600 + 3600 + 3600 + 3600 + 1200 + 2910 });
  });

  test('closing the same hours again writes nothing', async () => {
    expect(await accrueInstanceSeconds(db.database.sql, H10, H12)).toEqual({ rows: 0, seconds: 0 });
    expect(await accrueInstanceSeconds(db.database.sql, H11, H12)).toEqual({ rows: 0, seconds: 0 });
    expect((await seconds(flapping)).length).toBe(2);
  });
});

describe('InstanceSecondsJob', () => {
  test('closes past hours once, after the grace period, one replica at a time', async () => {
    const logger = createLogger('silent');
    const job = new InstanceSecondsJob(db.url, logger, { catchUpHours: 2, graceMs: 120_000 });
    const other = new InstanceSecondsJob(db.url, logger, { catchUpHours: 3 });
    try {
      // 12:01: hour 11 is still within its grace period; the first pass catches up 09 and 10 (10 was closed above).
      const early = await job.runOnce(new Date('2026-01-01T12:01:00Z'));
      expect(early).toMatchObject({ skipped: false, from: new Date('2026-01-01T09:00:00Z'), to: H11, rows: 2, seconds: 1800 + 3600 });
      // 13:05: closes 11 (nothing new) and 12.
      const next = await job.runOnce(new Date('2026-01-01T13:05:00Z'));
      expect(next).toMatchObject({ skipped: false, from: H11, to: H13 });
      expect((await seconds(flapping)).at(-1)).toMatchObject({ hour: H12.toISOString(), quantity: 3600 });
      expect((await seconds(steady)).at(-1)).toMatchObject({ hour: H12.toISOString(), quantity: 3600 });
      expect((await seconds(created)).at(-1)).toMatchObject({ hour: H12.toISOString(), quantity: 3600 });
      expect((await seconds(pruned)).length).toBe(3);
      // A second replica catching up over the same hours adds nothing.
      expect(await other.runOnce(new Date('2026-01-01T13:05:00Z'))).toMatchObject({ skipped: false, rows: 0 });

      // While another session holds the lock, a pass is skipped.
      const holder = postgres(db.url, { max: 1, onnotice: () => {} });
      try {
        await holder`select pg_advisory_lock(${USAGE_LOCK})`;
        expect(await job.runOnce(new Date('2026-01-01T14:05:00Z'))).toEqual({ skipped: true });
        await holder`select pg_advisory_unlock(${USAGE_LOCK})`;
      } finally {
        await holder.end();
      }
      const after = await job.runOnce(new Date('2026-01-01T14:05:00Z'));
      expect(after).toMatchObject({ skipped: false, from: H13, to: new Date('2026-01-01T14:00:00Z') });
      const total = await db.database.sql`select count(*)::int as n from usage_ledger where metric = 'instance_seconds' and occurred_at = ${H13.toISOString()}`;
      expect(total[0]!.n).toBe(3); // flapping, steady, created: one row each
    } finally {
      await job.stop();
      await other.stop();
    }
  });

  test('hourStart is the UTC hour', () => {
    expect(hourStart(new Date('2026-03-29T01:59:59.999Z')).toISOString()).toBe('2026-03-29T01:00:00.000Z');
  });
});
