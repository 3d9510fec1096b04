/**
 * Rate limits as a tenant meets them through the HTTP API: headers, 429,
 * per key and per tenant, plans without limits, exempt routes, fail-open.
 * Windows are one minute on the database clock: each burst starts early in
 * a minute (freshWindow) so it fits in one window.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { Writable } from 'node:stream';
import { createTestApp, type TestApp, type CallResult } from '../../../tests/support/app';
import { minuteWithSecondsLeft } from '../../../tests/support/clock';
import { until } from '../../../tests/support/poll';
import { createLogger } from '../logging/logger';

let t: TestApp;
let logged = '';

const limitOf = (r: CallResult) => ({
  limit: r.headers.get('ratelimit-limit'),
  remaining: r.headers.get('ratelimit-remaining'),
});

/** A plan with these limits (requests per minute; null: unlimited), as an operator would set with SQL or /admin/plans. */
async function plan(perKey: number | null, perTenant: number | null): Promise<number> {
  const [row] = await t.db.database.sql<{ id: number }[]>`insert into plans (name, rate_limit_per_key, rate_limit_per_tenant)
    values (${`plan-${Math.random()}`}, ${perKey}, ${perTenant}) returning id`;
  return row!.id;
}

async function assign(userId: number, planId: number) {
  await t.db.database.sql`update users set plan_id = ${planId} where id = ${userId}`;
}

/** A user on a plan, with `keys` API keys. */
async function tenantOn(planId: number, keys = 1) {
  const user = await t.createUser();
  await assign(user.id, planId);
  const all = [user.apiKey];
  for (let i = 1; i < keys; i++) all.push((await t.call('POST', `/admin/users/${user.id}/keys`)).body.apiKey);
  return { ...user, keys: all };
}

/** Waits, if needed, until the current minute (database clock) has at least `margin` seconds left. */
const freshWindow = (margin = 20) => minuteWithSecondsLeft(t.db.database.sql, margin);

beforeAll(async () => {
  const logger = createLogger('warn', new Writable({ write: (chunk, _enc, done) => ((logged += chunk), done()) }) as never);
  t = await createTestApp({ listen: true, logger });
});
afterAll(async () => {
  await t.close();
});

describe('API rate limits', () => {
  test('per key: limit requests allowed with decreasing Remaining, then 429 without running the route', async () => {
    const alice = await t.createUser();
    // A paired sandbox instance, made while alice's plan is the (unlimited) default.
    const created = await t.call('POST', '/api/instances', { key: alice.apiKey, body: { provider: 'sandbox', phone: '4915100007001' } });
    expect(created.status).toBe(200);
    const id = created.body.id;
    expect((await t.call('POST', `/api/instances/${id}/sandbox/scan`, { key: alice.apiKey })).status).toBe(200);
    await until('connected', async () => (await t.call('GET', `/api/instances/${id}`, { key: alice.apiKey })).body.state === 'connected');
    const unlimited = await t.call('GET', '/api/me', { key: alice.apiKey });
    expect(unlimited.headers.get('ratelimit-limit')).toBeNull();

    // An operator limits the plan: it applies within the 5 s plan cache.
    await freshWindow();
    await assign(alice.id, await plan(4, null));
    const first = await until('the new plan applies', async () => {
      const r = await t.call('GET', '/api/me', { key: alice.apiKey });
      return r.headers.get('ratelimit-limit') ? r : null;
    }, 8_000, 100);
    expect(first.status).toBe(200);
    expect(limitOf(first)).toEqual({ limit: '4', remaining: '3' });
    expect(Number(first.headers.get('ratelimit-reset'))).toBeWithin(1, 61);

    // A route's own error carries the headers too.
    const missing = await t.call('GET', '/api/instances/999999', { key: alice.apiKey });
    expect(missing.status).toBe(404);
    expect(limitOf(missing)).toEqual({ limit: '4', remaining: '2' });

    const send = () => t.call('POST', `/api/instances/${id}/send`, { key: alice.apiKey, body: { to: '4915100007002', text: 'hi' } });
    const sent = [await send(), await send()];
    expect(sent.map((r) => r.status)).toEqual([200, 200]);
    expect(sent.map((r) => limitOf(r).remaining)).toEqual(['1', '0']);
    const countMessages = async () =>
      (await t.db.database.sql<{ n: number }[]>`select count(*)::int as n from messages where instance_id = ${id}`)[0]!.n;
    const before = await countMessages();

    const refused = await send();
    expect(refused.status).toBe(429);
    expect(refused.body.code).toBe('rate_limited');
    expect(refused.body.error).toMatch(/^rate limit of 4 requests per minute for this API key exceeded; it resets in \d+ s$/);
    expect(limitOf(refused)).toEqual({ limit: '4', remaining: '0' });
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeWithin(1, 61);
    expect(refused.headers.get('ratelimit-reset')).toBe(String(retryAfter));
    expect(refused.body.error).toContain(`resets in ${retryAfter} s`);
    // Nothing queued, nothing sent.
    expect(await countMessages()).toBe(before);

    // Per key: another key of the same tenant has its own window.
    const second = (await t.call('POST', `/admin/users/${alice.id}/keys`)).body.apiKey;
    const other = await t.call('GET', '/api/me', { key: second });
    expect(other.status).toBe(200);
    expect(limitOf(other)).toEqual({ limit: '4', remaining: '3' });
  });

  test('per tenant: the keys of a tenant share its limit; another tenant is unaffected', async () => {
    const shared = await plan(null, 3);
    const bob = await tenantOn(shared, 2);
    const carol = await tenantOn(shared);
    await freshWindow();
    const [k1, k2] = bob.keys as [string, string];
    const results = [];
    for (const key of [k1, k2, k1]) results.push(await t.call('GET', '/api/me', { key }));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(results.map((r) => limitOf(r))).toEqual([
      { limit: '3', remaining: '2' },
      { limit: '3', remaining: '1' },
      { limit: '3', remaining: '0' },
    ]);
    const refused = await t.call('GET', '/api/me', { key: k2 });
    expect(refused.status).toBe(429);
    expect(refused.body.error).toContain('rate limit of 3 requests per minute for this tenant (all of its API keys together) exceeded');
    expect(refused.headers.get('retry-after')).toBe(refused.headers.get('ratelimit-reset'));

    const unaffected = await t.call('GET', '/api/me', { key: carol.apiKey });
    expect(unaffected.status).toBe(200);
    expect(limitOf(unaffected)).toEqual({ limit: '3', remaining: '2' });
  });

  test('with both limits the headers report the one closest to exhaustion', async () => {
    const dave = await tenantOn(await plan(2, 3), 2);
    await freshWindow();
    const [k1, k2] = dave.keys as [string, string];
    const seen = [];
    for (const key of [k1, k1, k2, k2, k1]) {
      const r = await t.call('GET', '/api/me', { key });
      seen.push({ status: r.status, ...limitOf(r), scope: r.body.error?.includes('for this API key') ? 'key' : r.body.error ? 'tenant' : undefined });
    }
    expect(seen).toEqual([
      { status: 200, limit: '2', remaining: '1', scope: undefined }, // key 1 left, tenant 2 left
      { status: 200, limit: '2', remaining: '0', scope: undefined }, // key 0 left, tenant 1 left
      { status: 200, limit: '3', remaining: '0', scope: undefined }, // second key: 1 left, tenant 0 left
      { status: 429, limit: '3', remaining: '0', scope: 'tenant' },
      { status: 429, limit: '2', remaining: '0', scope: 'key' },
    ]);
  });

  test('an unlimited plan (the default) sends no headers and counts nothing', async () => {
    const eve = await t.createUser();
    for (let i = 0; i < 5; i++) {
      const r = await t.call('GET', '/api/me', { key: eve.apiKey });
      expect(r.status).toBe(200);
      expect(r.headers.get('ratelimit-limit')).toBeNull();
      expect(r.headers.get('ratelimit-remaining')).toBeNull();
    }
    const rows = await t.db.database.sql`select 1 from rate_limit_windows where key in (${`key:${eve.keyId}`}, ${`tenant:${eve.id}`})`;
    expect(rows.length).toBe(0);
  });

  test('admin routes and health are never limited', async () => {
    const frank = await tenantOn(await plan(1, 1));
    await freshWindow();
    expect((await t.call('GET', '/api/me', { key: frank.apiKey })).status).toBe(200);
    expect((await t.call('GET', '/api/me', { key: frank.apiKey })).status).toBe(429);
    for (let i = 0; i < 5; i++) {
      const admin = await t.call('GET', `/admin/users/${frank.id}`);
      expect(admin.status).toBe(200);
      expect(admin.headers.get('ratelimit-limit')).toBeNull();
    }
    const health = await t.call('GET', '/healthz');
    expect(health.status).toBe(200);
    expect(health.headers.get('ratelimit-limit')).toBeNull();
  });

  test('the OpenAPI document tells clients about 429 and the headers', async () => {
    const doc = await t.call('GET', '/openapi.json');
    expect(doc.body.info.description).toContain('429 `rate_limited` with `Retry-After`');
    expect(doc.body.info.description).toContain('`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`');
  });

  test('fails open with a warning when the limiter cannot count', async () => {
    const gina = await tenantOn(await plan(1, null));
    await freshWindow();
    expect((await t.call('GET', '/api/me', { key: gina.apiKey })).status).toBe(200);
    expect((await t.call('GET', '/api/me', { key: gina.apiKey })).status).toBe(429);
    await t.db.database.sql`alter table rate_limit_windows rename to rate_limit_windows_away`;
    try {
      const r = await t.call('GET', '/api/me', { key: gina.apiKey });
      expect(r.status).toBe(200);
      expect(r.headers.get('ratelimit-limit')).toBeNull();
      expect(logged).toContain('rate limiter unavailable: request allowed without a limit');
    } finally {
      await t.db.database.sql`alter table rate_limit_windows_away rename to rate_limit_windows`;
    }
  });
});
