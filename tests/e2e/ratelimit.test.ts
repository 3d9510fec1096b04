/**
 * API rate limits shared by gateway replicas: two real gateway processes on
 * one database, one API key hammering both. The counts live in Postgres, so
 * the limit holds in total, not per process; the next minute allows again.
 */
import { afterAll, expect, test } from 'bun:test';
import { gatewayApi, startGatewayProcess, type GatewayProcess } from '../support/gateway-process';
import { createTestDatabase } from '../support/postgres';
import { minuteWithSecondsLeft } from '../support/clock';
import { until } from '../support/poll';

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
});

async function me(g: GatewayProcess, key: string) {
  const res = await fetch(`${g.url}/api/me`, { headers: { authorization: `Bearer ${key}` } });
  return {
    status: res.status,
    body: (await res.json()) as any,
    limit: res.headers.get('ratelimit-limit'),
    remaining: res.headers.get('ratelimit-remaining'),
    reset: res.headers.get('ratelimit-reset'),
    retryAfter: res.headers.get('retry-after'),
  };
}

test(
  'two gateways share one limit: exactly `limit` successes in total, then 429, then allowed in the next window',
  async () => {
    const db = await createTestDatabase();
    cleanup.push(() => db.drop());
    const env = { DATABASE_URL: db.url, ADMIN_API_SECRET: 's', DATA_DIR: '/tmp' };
    const [a, b] = await Promise.all([startGatewayProcess(env, cleanup), startGatewayProcess(env, cleanup)]);

    const LIMIT = 5;
    const user = (await gatewayApi(a, 'POST', '/admin/users', undefined, { email: 'ratelimit@example.com' })).body;
    // Set before the key's first request, so no gateway has the old plan cached (/admin/plans will do this too).
    const [plan] = await db.database.sql<{ id: number }[]>`insert into plans (name, rate_limit_per_key) values ('limited', ${LIMIT}) returning id`;
    await db.database.sql`update users set plan_id = ${plan!.id} where id = ${user.id}`;

    // Start the burst with at least 15 s left in the minute (database clock): it fits in one window.
    await minuteWithSecondsLeft(db.database.sql, 15);

    const seen = [];
    for (let i = 0; i < 2 * LIMIT; i++) {
      const r = await me(i % 2 === 0 ? a : b, user.apiKey);
      seen.push(r);
      if (r.status === 429) break;
    }
    const allowed = seen.filter((r) => r.status === 200);
    expect(allowed.length).toBe(LIMIT);
    // One count across both processes: Remaining goes down by one whichever answered.
    expect(allowed.map((r) => r.remaining)).toEqual(['4', '3', '2', '1', '0']);
    expect(allowed.every((r) => r.limit === String(LIMIT))).toBe(true);

    const refused = seen.at(-1)!;
    expect(seen.length).toBe(LIMIT + 1);
    expect(refused.status).toBe(429);
    expect(refused.body.code).toBe('rate_limited');
    expect(refused.body.error).toContain(`rate limit of ${LIMIT} requests per minute for this API key exceeded`);
    expect(refused.limit).toBe(String(LIMIT));
    expect(refused.remaining).toBe('0');
    expect(Number(refused.retryAfter)).toBeWithin(1, 61);
    expect(refused.reset).toBe(refused.retryAfter);

    // The other replica refuses too.
    expect((await me(b, user.apiKey)).status).toBe(429);

    // The next window (at most a minute away) allows again, on either replica.
    const again = await until(
      'a request allowed in the next window',
      async () => {
        const r = await me(a, user.apiKey);
        return r.status === 200 ? r : null;
      },
      65_000,
      500,
    );
    expect(again.remaining).toBe(String(LIMIT - 1));
    const next = await me(b, user.apiKey);
    expect(next.status).toBe(200);
    expect(next.remaining).toBe(String(LIMIT - 2));
  },
  120_000,
);
