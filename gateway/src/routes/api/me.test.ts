import { afterAll, beforeAll, expect, test } from 'bun:test';
import { createTestApp, type TestApp } from '../../../../tests/support/app';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

test('missing or malformed Authorization is 401', async () => {
  for (const headers of [{}, { authorization: 'Basic abc' }, { authorization: 'Bearer' }, { authorization: 'wgs_x' }] as Record<string, string>[]) {
    const res = await t.call('GET', '/api/me', { headers });
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'missing Authorization: Bearer <apiKey> header', code: 'unauthorized' });
  }
});

test('an unknown or malformed key is 401', async () => {
  const user = await t.createUser();
  const forged = `${user.apiKey.slice(0, -1)}${user.apiKey.endsWith('A') ? 'B' : 'A'}`;
  for (const key of [forged, 'wgs_short', 'test-admin-secret']) {
    const res = await t.call('GET', '/api/me', { key });
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'invalid API key', code: 'unauthorized' });
  }
});

test('each key sees only its own user', async () => {
  const a = await t.createUser();
  const b = await t.createUser();
  expect((await t.call('GET', '/api/me', { key: a.apiKey })).body).toMatchObject({ id: a.id, email: a.email });
  expect((await t.call('GET', '/api/me', { key: b.apiKey })).body).toMatchObject({ id: b.id, email: b.email });
});

test('use of a key is recorded', async () => {
  const user = await t.createUser();
  await t.call('GET', '/api/me', { key: user.apiKey });
  const deadline = Date.now() + 5000;
  let lastUsed: string | null = null; // drizzle leaves raw timestamps as text
  while (!lastUsed && Date.now() < deadline) {
    const [row] = await t.db.database.sql`select last_used_at from api_keys where id = ${user.keyId}`;
    lastUsed = row!.last_used_at;
    if (!lastUsed) await Bun.sleep(20);
  }
  expect(Math.abs(Date.parse(lastUsed!) - Date.now())).toBeLessThan(60_000);
});

test('a new user is on the default plan, unlimited, with nothing used', async () => {
  const user = await t.createUser();
  const me = await t.call('GET', '/api/me', { key: user.apiKey });
  expect(me.body).toMatchObject({
    plan: { name: 'default', default: true, maxInstances: null, messagesPerMonth: null },
    usage: { messagesSent: { used: 0, limit: null }, mediaBytes: { used: 0, limit: null }, instances: { used: 0, limit: null } },
  });
});
