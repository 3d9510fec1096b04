import { afterAll, beforeAll, expect, test } from 'bun:test';
import postgres from 'postgres';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/postgres';
import { dropInstanceState, grantInstanceState, stateRoleName } from './state-store';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  for (const id of [1, 2, 3]) await dropInstanceState(t.database.sql, id).catch(() => {});
  await t.drop();
});

const as = (dsn: string, schema: string) => postgres(dsn, { max: 1, onnotice: () => {}, connection: { search_path: schema } });

test("an instance's connection reaches its own schema and nothing else", async () => {
  const one = await grantInstanceState(t.database.sql, t.url, 1);
  const two = await grantInstanceState(t.database.sql, t.url, 2);
  expect(one.schema).toBe('wgs_i_1');
  expect(one.role).toBe(await stateRoleName(t.database.sql, 1));
  expect(one.dsn).not.toContain(new URL(t.url).password);

  const w1 = as(one.dsn, one.schema);
  const w2 = as(two.dsn, two.schema);
  try {
    await w1`create table keys (k text primary key, v bytea)`;
    await w1`insert into keys values ('creds', '\\x01')`;
    expect((await w1`select k from keys`).map((r) => r.k)).toEqual(['creds']);
    await w2`create table keys (k text primary key, v bytea)`;

    await expect(w2`select * from wgs_i_1.keys`).rejects.toMatchObject({ code: '42501' }); // permission denied
    await expect(w1`select * from public.users`).rejects.toMatchObject({ code: '42501' });
    await expect(w1`select * from public.api_keys`).rejects.toMatchObject({ code: '42501' });
    await expect(w1`create table public.planted (x int)`).rejects.toMatchObject({ code: '42501' });
  } finally {
    await w1.end();
    await w2.end();
  }
});

test('each grant replaces the password: an old connection string stops working', async () => {
  const first = await grantInstanceState(t.database.sql, t.url, 3);
  const second = await grantInstanceState(t.database.sql, t.url, 3);
  const old = as(first.dsn, first.schema);
  const current = as(second.dsn, second.schema);
  try {
    await expect(old`select 1`).rejects.toMatchObject({ code: '28P01' }); // invalid password
    expect((await current`select 1 as ok`)[0]!.ok).toBe(1);
  } finally {
    await old.end();
    await current.end();
  }
});

test('dropping removes schema and role and ends their sessions', async () => {
  const access = await grantInstanceState(t.database.sql, t.url, 1);
  const w = as(access.dsn, access.schema);
  await w`select 1`;
  await dropInstanceState(t.database.sql, 1);
  expect(await t.database.sql`select 1 from pg_roles where rolname = ${access.role}`).toHaveLength(0);
  expect(await t.database.sql`select 1 from pg_namespace where nspname = ${access.schema}`).toHaveLength(0);
  await expect(w`select 1`).rejects.toBeDefined();
  await w.end().catch(() => {});
  await dropInstanceState(t.database.sql, 1); // idempotent
});
