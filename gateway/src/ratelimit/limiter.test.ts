import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { Writable } from 'node:stream';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/postgres';
import { minuteWithSecondsLeft } from '../../../tests/support/clock';
import { until } from '../../../tests/support/poll';
import { connect } from '../db/client';
import { createLogger } from '../logging/logger';
import { RateLimiter } from './limiter';

const silent = createLogger('silent');
let db: TestDatabase;
let userId: number;

async function plan(perKey: number | null, perTenant: number | null): Promise<number> {
  const [row] = await db.database.sql`insert into plans (name, rate_limit_per_key, rate_limit_per_tenant)
    values (${`p${Math.random()}`}, ${perKey}, ${perTenant}) returning id`;
  return row!.id;
}

async function userOn(planId: number): Promise<number> {
  const [row] = await db.database.sql`insert into users (email, plan_id) values (${`u${Math.random()}@example.com`}, ${planId}) returning id`;
  return row!.id;
}

beforeAll(async () => {
  db = await createTestDatabase();
  userId = await userOn(await plan(3, null));
});
afterAll(async () => {
  await db.drop();
});

describe('RateLimiter', () => {
  test('counts per window and allows again in the next one', async () => {
    // A 2-second window so the next one comes quickly; 60 s in the gateway.
    const limiter = new RateLimiter(db.database, silent, { windowSeconds: 2 });
    // Start right after a window boundary so the burst fits in one window.
    await until('a fresh 2 s window', async () => {
      const [row] = await db.database.sql<{ into: number }[]>`select mod(extract(epoch from now()), 2)::float8 as into`;
      return row!.into < 0.5;
    }, 5_000, 10);
    const decisions = [];
    for (let i = 0; i < 4; i++) decisions.push(await limiter.check(userId, 1001));
    expect(decisions.map((d) => d!.allowed)).toEqual([true, true, true, false]);
    expect(decisions.map((d) => d!.reported.count)).toEqual([1, 2, 3, 4]);
    for (const d of decisions) expect(d!.reported.resetSeconds).toBeWithin(1, 3);
    const again = await until('allowed in the next window', async () => {
      const d = await limiter.check(userId, 1001);
      return d?.allowed ? d : null;
    }, 5_000, 100);
    expect(again.reported.count).toBe(1);
    // Its background prune keeps only 4 s of windows, across every key: let it
    // finish before the next test counts in a 60 s window.
    await limiter.idle();
  });

  test('two limiters on one database (two replicas) share the counts exactly', async () => {
    const a = new RateLimiter(db.database, silent);
    const b = new RateLimiter(db.database, silent);
    const other = connect(db.url, { max: 2 });
    const c = new RateLimiter(other, silent);
    try {
      // Not within 5 s of a minute boundary, so the six requests fall in one window.
      await minuteWithSecondsLeft(db.database.sql, 5);
      const decisions = [];
      for (const l of [a, b, c, a, b, c]) decisions.push((await l.check(userId, 2002))!);
      expect(decisions.map((d) => d.reported.count)).toEqual([1, 2, 3, 4, 5, 6]);
      // Past the limit of 3, refused whichever replica answers.
      expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false, false, false]);
    } finally {
      // Each limiter's first check started a background prune: let them end before the prune test counts.
      await Promise.all([a, b, c].map((l) => l.idle()));
      await other.close();
    }
  });

  test('an unlimited plan counts nothing', async () => {
    const free = await userOn(await plan(null, null));
    expect(await new RateLimiter(db.database, silent).check(free, 3003)).toBeNull();
    const rows = await db.database.sql`select 1 from rate_limit_windows where key in ('key:3003', ${`tenant:${free}`})`;
    expect(rows.length).toBe(0);
  });

  test('prune deletes windows that ended, and only those', async () => {
    await db.database.sql`insert into rate_limit_windows (key, window_start, count) values
      ('key:old1', now() - interval '10 minutes', 5), ('key:old2', now() - interval '3 minutes', 5), ('key:now', date_trunc('minute', now()), 1)`;
    const deleted = await new RateLimiter(db.database, silent).prune();
    expect(deleted).toBeGreaterThanOrEqual(2);
    const left = (await db.database.sql`select key from rate_limit_windows where key like 'key:old%' or key = 'key:now'`).map((r) => r.key);
    expect(left).toEqual(['key:now']);
  });

  test('fails open with a warning when the database is unreachable', async () => {
    let logged = '';
    const logger = createLogger('warn', new Writable({ write: (chunk, _enc, done) => ((logged += chunk), done()) }) as never);
    const down = connect('postgres://wgs:x@127.0.0.1:1/nowhere', { max: 1 });
    try {
      expect(await new RateLimiter(down, logger).check(userId, 4004)).toBeNull();
      expect(logged).toContain('rate limiter unavailable: request allowed without a limit');
      expect(logged).toContain('"level":40');
    } finally {
      await down.close();
    }
  });
});
