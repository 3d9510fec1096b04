import { afterAll, beforeAll, expect, test } from 'bun:test';
import postgres from 'postgres';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/postgres';
import { until } from '../../../tests/support/poll';
import { CLIENT_CHECK_INTERVAL, dropInstanceState, grantInstanceState, stateRoleName } from './state-store';

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

test('a worker killed while it waits for the instance lock leaves no backend queued for it', async () => {
  const id = 2;
  const access = await grantInstanceState(t.database.sql, t.url, id);
  const holder = as(access.dsn, access.schema);
  const STATE_LOCK_CLASS = 2003268353; // the workers' lock namespace (workers/src/state/store.ts)
  const waiting = async () =>
    (
      await t.database.sql`select count(*)::int as n from pg_locks
        where locktype = 'advisory' and classid = ${STATE_LOCK_CLASS}::oid and objid = ${id}::oid and objsubid = 2 and not granted`
    )[0]!.n as number;
  try {
    expect((await holder`select current_setting('client_connection_check_interval') as v`)[0]!.v).toBe(CLIENT_CHECK_INTERVAL);
    await holder`select pg_advisory_lock(${STATE_LOCK_CLASS}, ${id})`;
    // A second worker process waits for the lock, as a replacement worker does, and is killed with SIGKILL.
    const waiter = Bun.spawn(
      [process.execPath, '-e', `const sql = (await import('postgres')).default(process.argv[1], { max: 1 }); await sql\`select pg_advisory_lock(${STATE_LOCK_CLASS}, ${id})\`;`, access.dsn],
      { cwd: import.meta.dir, stdout: 'ignore', stderr: 'pipe' },
    );
    await until('the second worker queued for the lock', async () => (await waiting()) === 1, 10_000);
    waiter.kill('SIGKILL');
    await waiter.exited;
    const killed = Date.now();
    // The first worker still holds the lock: without the check the dead one's backend stays queued until it is freed.
    await until('its backend gone from the queue', async () => (await waiting()) === 0, 5000);
    expect(Date.now() - killed).toBeLessThan(5000);
  } finally {
    await holder.end();
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
