import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { ADMIN_SECRET, createTestApp, type TestApp } from '../../../../tests/support/app';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

let seq = 0;
const uniqueName = (base = 'plan') => `${base}-${++seq}-${Date.now()}`;

async function createPlan(body: Record<string, unknown> = {}) {
  const res = await t.call('POST', '/admin/plans', { body: { name: uniqueName(), ...body } });
  if (res.status !== 201) throw new Error(`creating plan failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

async function defaults(): Promise<number[]> {
  const rows = await t.db.database.sql`select id from plans where is_default`;
  return rows.map((r) => r.id as number);
}

describe('admin authentication', () => {
  test('plans need the admin secret', async () => {
    expect((await t.call('GET', '/admin/plans', { admin: false })).status).toBe(401);
    const user = await t.createUser();
    expect((await t.call('POST', '/admin/plans', { admin: user.apiKey, body: { name: 'x' } })).status).toBe(401);
  });
});

describe('POST /admin/plans', () => {
  test('migration 0014 seeds one unlimited default plan', async () => {
    const res = await t.call('GET', '/admin/plans');
    expect(res.status).toBe(200);
    const seeded = res.body.find((p: { name: string }) => p.name === 'default');
    expect(seeded).toMatchObject({
      default: true,
      maxInstances: null,
      messagesPerMonth: null,
      mediaBytesPerMonth: null,
      rateLimit: { perKey: null, perTenant: null },
      allowedProviders: null,
      features: null,
    });
  });

  test('creates a plan with every limit; omitted limits are unlimited', async () => {
    const name = uniqueName('Pro');
    const res = await t.call('POST', '/admin/plans', {
      body: {
        name,
        maxInstances: 3,
        messagesPerMonth: 10_000,
        mediaBytesPerMonth: 5_000_000_000,
        rateLimit: { perKey: 60, perTenant: 120 },
        allowedProviders: ['sandbox', 'waba', 'sandbox'],
        features: ['webhooks'],
      },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      name,
      default: false,
      maxInstances: 3,
      messagesPerMonth: 10_000,
      mediaBytesPerMonth: 5_000_000_000,
      rateLimit: { perKey: 60, perTenant: 120 },
      allowedProviders: ['sandbox', 'waba'],
      features: ['webhooks'],
      users: 0,
    });
    const got = await t.call('GET', `/admin/plans/${res.body.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(res.body);

    const bare = await createPlan();
    expect(bare).toMatchObject({ maxInstances: null, messagesPerMonth: null, rateLimit: { perKey: null, perTenant: null }, allowedProviders: null, features: null });
  });

  test('a duplicate name (any case) is 409', async () => {
    const plan = await createPlan();
    const res = await t.call('POST', '/admin/plans', { body: { name: plan.name.toUpperCase() } });
    expect(res.status).toBe(409);
    expect(res.body).toEqual({ error: `a plan named ${plan.name.toUpperCase()} already exists`, code: 'plan_name_taken' });
    const other = await createPlan();
    const rename = await t.call('PATCH', `/admin/plans/${other.id}`, { body: { name: plan.name } });
    expect(rename.status).toBe(409);
    expect(rename.body.code).toBe('plan_name_taken');
  });

  test('invalid fields are 400 naming the field', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{}, "invalid field 'name': is required"],
      [{ name: '   ' }, "'name'"],
      [{ name: 'x', maxInstances: -1 }, "'maxInstances'"],
      [{ name: 'x', maxInstances: 1.5 }, "'maxInstances'"],
      [{ name: 'x', messagesPerMonth: 'lots' }, "'messagesPerMonth'"],
      [{ name: 'x', rateLimit: { perKey: 0 } }, "'rateLimit.perKey'"],
      [{ name: 'x', allowedProviders: ['sandbox', 'telegram'] }, "invalid field 'allowedProviders.1': unknown provider \"telegram\""],
      [{ name: 'x', features: ['teleport'] }, "invalid field 'features.0': unknown feature \"teleport\"; one of webhooks, media, node_selection"],
    ];
    for (const [body, message] of cases) {
      const res = await t.call('POST', '/admin/plans', { body });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('validation_failed');
      expect(res.body.error).toContain(message);
    }
    expect((await t.db.database.sql`select 1 from plans where name = 'x'`).length).toBe(0);
  });
});

describe('PATCH /admin/plans/:id', () => {
  test('changes only the given fields; null clears a limit to unlimited', async () => {
    const plan = await createPlan({ maxInstances: 2, messagesPerMonth: 100, rateLimit: { perKey: 10, perTenant: 20 }, features: ['media'] });
    const res = await t.call('PATCH', `/admin/plans/${plan.id}`, { body: { messagesPerMonth: null, rateLimit: { perKey: 30 }, allowedProviders: ['sandbox'] } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      name: plan.name,
      maxInstances: 2,
      messagesPerMonth: null,
      rateLimit: { perKey: 30, perTenant: 20 },
      allowedProviders: ['sandbox'],
      features: ['media'],
    });
    const cleared = await t.call('PATCH', `/admin/plans/${plan.id}`, { body: { rateLimit: null, features: null, maxInstances: 0 } });
    expect(cleared.body).toMatchObject({ maxInstances: 0, rateLimit: { perKey: null, perTenant: null }, features: null });
    expect((await t.call('GET', `/admin/plans/${plan.id}`)).body).toEqual(cleared.body);
  });
  test('unknown plan is 404; an unknown provider 400', async () => {
    expect((await t.call('PATCH', '/admin/plans/999999', { body: { maxInstances: 1 } })).status).toBe(404);
    const plan = await createPlan();
    const res = await t.call('PATCH', `/admin/plans/${plan.id}`, { body: { allowedProviders: ['nope'] } });
    expect(res.status).toBe(400);
    expect(res.body.error).toContain("'allowedProviders.0'");
  });
});

/** A request with any body and content type (t.call always sends JSON). */
async function send(method: string, path: string, body: RequestInit['body'], contentType?: string) {
  const headers: Record<string, string> = { 'x-admin-api-secret': ADMIN_SECRET, ...(contentType && { 'content-type': contentType }) };
  const res = await t.app.handle(new Request(`http://wgs.test${path}`, { method, headers, body }));
  return { status: res.status, body: (await res.json()) as { error: string; code: string } };
}

describe('plan bodies are checked as sent', () => {
  const stored = async (id: number) => (await t.db.database.sql`select * from plans where id = ${id}`)[0];

  test('a limit must be a JSON number (or null): a string is 400 naming the field, never coerced', async () => {
    const plan = await createPlan({ maxInstances: 3, mediaBytesPerMonth: 1000 });
    const before = await stored(plan.id);
    const cases: [string, string][] = [
      ['{"mediaBytesPerMonth":" "}', 'mediaBytesPerMonth'],
      ['{"maxInstances":"7"}', 'maxInstances'],
      ['{"messagesPerMonth":"0x10"}', 'messagesPerMonth'],
      ['{"maxInstances":true}', 'maxInstances'],
      ['{"rateLimit":{"perKey":"5"}}', 'rateLimit.perKey'],
    ];
    for (const [raw, field] of cases) {
      const res = await t.call('PATCH', `/admin/plans/${plan.id}`, { raw });
      expect([raw, res.status, res.body.code]).toEqual([raw, 400, 'validation_failed']);
      expect(res.body.error).toStartWith(`invalid field '${field}': must be `);
      const name = uniqueName();
      const created = await t.call('POST', '/admin/plans', { raw: `{"name":"${name}",${raw.slice(1)}` });
      expect([raw, created.status, created.body.error]).toEqual([raw, 400, expect.stringContaining(`'${field}'`)]);
      expect((await t.db.database.sql`select 1 from plans where name = ${name}`).length).toBe(0);
    }
    expect(await stored(plan.id)).toEqual(before);
  });

  test('rateLimit is an object {perKey?, perTenant?} or null; anything else is 400 naming it', async () => {
    const plan = await createPlan({ rateLimit: { perKey: 10, perTenant: 20 } });
    const before = await stored(plan.id);
    for (const raw of ['{"rateLimit":-1e309}', '{"rateLimit":"abc"}', '{"rateLimit":5}', '{"rateLimit":[]}', '{"rateLimit":{"perMinute":5}}']) {
      const res = await t.call('PATCH', `/admin/plans/${plan.id}`, { raw });
      expect([raw, res.status, res.body.code]).toEqual([raw, 400, 'validation_failed']);
      expect(res.body.error).toStartWith("invalid field 'rateLimit");
    }
    expect(await stored(plan.id)).toEqual(before);
  });

  test('an unknown field is 400 naming it, as the schema says (additionalProperties: false)', async () => {
    const plan = await createPlan();
    const before = await stored(plan.id);
    const res = await t.call('PATCH', `/admin/plans/${plan.id}`, { body: { maxInstances: 1, rateLimitPerKey: 5 } });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: "invalid field 'rateLimitPerKey': unknown field; one of name, maxInstances, messagesPerMonth, mediaBytesPerMonth, rateLimit, allowedProviders, features, default",
      code: 'validation_failed',
    });
    const big = await t.call('PATCH', `/admin/plans/${plan.id}`, { body: { x: 'a'.repeat(2_000_000) } });
    expect(big.status).toBe(400);
    expect(big.body.error).toStartWith("invalid field 'x': unknown field");
    const name = uniqueName();
    const created = await t.call('POST', '/admin/plans', { body: { name, maxMessages: 5 } });
    expect(created.status).toBe(400);
    expect(created.body.error).toStartWith("invalid field 'maxMessages': unknown field");
    expect((await t.db.database.sql`select 1 from plans where name = ${name}`).length).toBe(0);
    expect(await stored(plan.id)).toEqual(before);
  });

  test('an empty change, a body that is not a JSON object, or not JSON at all is 400', async () => {
    const plan = await createPlan({ maxInstances: 3 });
    const before = await stored(plan.id);
    const path = `/admin/plans/${plan.id}`;
    const empty = await send('PATCH', path, '{}', 'application/json');
    expect(empty.status).toBe(400);
    expect(empty.body).toEqual({
      error: 'nothing to change: give at least one of name, maxInstances, messagesPerMonth, mediaBytesPerMonth, rateLimit, allowedProviders, features, default',
      code: 'validation_failed',
    });
    for (const [raw, what] of [['null', 'null'], ['[]', 'an array'], ['[{"maxInstances":1}]', 'an array'], ['"x"', 'a string'], ['5', 'a number']]) {
      for (const method of ['PATCH', 'POST']) {
        const res = await send(method, method === 'PATCH' ? path : '/admin/plans', raw, 'application/json');
        expect([method, raw, res.status, res.body]).toEqual([method, raw, 400, { error: `request body must be a JSON object, not ${what}`, code: 'invalid_body' }]);
      }
    }
    const form = new FormData();
    form.set('maxInstances', '1');
    const notJson: [RequestInit['body'], string | undefined, string][] = [
      ['{"maxInstances":1}', 'text/plain', ', not text/plain'],
      ['maxInstances=1', 'application/x-www-form-urlencoded', ', not application/x-www-form-urlencoded'],
      [form, undefined, ', not multipart/form-data'],
      [null, undefined, ''],
    ];
    for (const [body, type, tail] of notJson) {
      const res = await send('PATCH', path, body, type);
      expect([type, res.status, res.body]).toEqual([type, 400, { error: `request body must be a JSON object sent as content-type application/json${tail}`, code: 'invalid_body' }]);
    }
    const name = uniqueName();
    expect((await send('POST', '/admin/plans', `name=${name}`, 'application/x-www-form-urlencoded')).status).toBe(400);
    expect((await t.db.database.sql`select 1 from plans where name = ${name}`).length).toBe(0);
    expect(await stored(plan.id)).toEqual(before);
    // JSON with a charset is JSON.
    const ok = await send('PATCH', path, '{"maxInstances":4}', 'application/json; charset=utf-8');
    expect([ok.status, (ok.body as unknown as { maxInstances: number }).maxInstances]).toEqual([200, 4]);
  });
});

describe('the default plan', () => {
  test('exactly one: making a plan default unmarks the previous one', async () => {
    const [before] = await defaults();
    const a = await createPlan({ default: true });
    expect(a.default).toBe(true);
    expect(await defaults()).toEqual([a.id]);
    expect((await t.call('GET', `/admin/plans/${before}`)).body.default).toBe(false);

    const b = await createPlan();
    const moved = await t.call('PATCH', `/admin/plans/${b.id}`, { body: { default: true } });
    expect(moved.status).toBe(200);
    expect(moved.body.default).toBe(true);
    expect(await defaults()).toEqual([b.id]);

    // Concurrent moves: each one wins in turn, one default remains.
    const c = await createPlan();
    const d = await createPlan();
    const both = await Promise.all([c, d, c, d].map((p) => t.call('PATCH', `/admin/plans/${p.id}`, { body: { default: true } })));
    expect(both.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const now = await defaults();
    expect(now).toHaveLength(1);
    expect([c.id, d.id]).toContain(now[0]!);
  });
  test('unmarking the default is 422: make another plan the default instead', async () => {
    const plan = await createPlan({ default: true });
    const res = await t.call('PATCH', `/admin/plans/${plan.id}`, { body: { default: false } });
    expect(res.status).toBe(422);
    expect(res.body.code).toBe('default_plan_required');
    expect(res.body.error).toContain("'default'");
    expect(await defaults()).toEqual([plan.id]);
  });
  test('users without a plan are on the default one and count there', async () => {
    const plan = await createPlan({ default: true, maxInstances: 7 });
    const user = await t.createUser();
    const view = await t.call('GET', `/admin/users/${user.id}`);
    expect(view.body).toMatchObject({ planId: null, plan: { id: plan.id, name: plan.name, maxInstances: 7 } });
    const [counted] = await t.db.database.sql`select count(*)::int as n from users`;
    const n = counted!.n as number;
    expect((await t.call('GET', `/admin/plans/${plan.id}`)).body.users).toBe(n);
  });
});

describe('DELETE /admin/plans/:id', () => {
  test('409 while users are on it or while it is the default; 204 otherwise', async () => {
    const plan = await createPlan();
    const user = await t.createUser();
    expect((await t.call('PATCH', `/admin/users/${user.id}`, { body: { planId: plan.id } })).status).toBe(200);
    expect((await t.call('GET', `/admin/plans/${plan.id}`)).body.users).toBe(1);
    const busy = await t.call('DELETE', `/admin/plans/${plan.id}`);
    expect(busy.status).toBe(409);
    expect(busy.body).toEqual({ error: `plan ${plan.name} has 1 user; move them to another plan first`, code: 'plan_in_use' });

    const def = await createPlan({ default: true });
    const refused = await t.call('DELETE', `/admin/plans/${def.id}`);
    expect(refused.status).toBe(409);
    expect(refused.body.code).toBe('plan_is_default');

    expect((await t.call('PATCH', `/admin/users/${user.id}`, { body: { planId: null } })).status).toBe(200);
    expect((await t.call('DELETE', `/admin/plans/${plan.id}`)).status).toBe(204);
    expect((await t.call('GET', `/admin/plans/${plan.id}`)).status).toBe(404);
    expect((await t.call('DELETE', `/admin/plans/${plan.id}`)).status).toBe(404);
  });
});

describe('a user\'s plan', () => {
  test('assigned by id or by name; null is the default plan; shown to the user', async () => {
    const pro = await createPlan({ name: uniqueName('Pro'), maxInstances: 5, messagesPerMonth: 1000 });
    const user = await t.createUser();
    const byName = await t.call('PATCH', `/admin/users/${user.id}`, { body: { plan: pro.name.toUpperCase() } });
    expect(byName.status).toBe(200);
    expect(byName.body).toMatchObject({ id: user.id, email: user.email, planId: pro.id, plan: { id: pro.id, name: pro.name, maxInstances: 5, messagesPerMonth: 1000 } });
    expect(byName.body.keys).toHaveLength(1);
    expect((await t.call('GET', `/admin/users/${user.id}`)).body).toEqual(byName.body);
    const me = await t.call('GET', '/api/me', { key: user.apiKey });
    expect(me.body.plan).toMatchObject({ name: pro.name, maxInstances: 5, messagesPerMonth: 1000 });

    const back = await t.call('PATCH', `/admin/users/${user.id}`, { body: { planId: null } });
    expect(back.status).toBe(200);
    const [def] = await defaults();
    expect(back.body).toMatchObject({ planId: null, plan: { id: def } });
    const byId = await t.call('PATCH', `/admin/users/${user.id}`, { body: { planId: pro.id } });
    expect(byId.body.planId).toBe(pro.id);
  });
  test('an unknown plan is 422, an unknown user 404, neither or both fields 400', async () => {
    const user = await t.createUser();
    const unknown = await t.call('PATCH', `/admin/users/${user.id}`, { body: { planId: 999999 } });
    expect(unknown.status).toBe(422);
    expect(unknown.body).toEqual({ error: "invalid field 'planId': no plan 999999", code: 'unknown_plan' });
    const byName = await t.call('PATCH', `/admin/users/${user.id}`, { body: { plan: 'no-such-plan' } });
    expect(byName.status).toBe(422);
    expect(byName.body.error).toContain("'plan'");
    const plan = await createPlan();
    expect((await t.call('PATCH', '/admin/users/999999', { body: { planId: plan.id } })).status).toBe(404);
    for (const body of [{}, { planId: plan.id, plan: plan.name }]) {
      const res = await t.call('PATCH', `/admin/users/${user.id}`, { body });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('validation_failed');
    }
    expect((await t.call('GET', `/admin/users/${user.id}`)).body.planId).toBeNull();
    expect((await t.call('GET', '/admin/users/999999')).status).toBe(404);
  });
});
