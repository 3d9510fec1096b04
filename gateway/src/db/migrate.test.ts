import { afterAll, expect, test } from 'bun:test';
import { readdir } from 'node:fs/promises';
import { connect } from './client';
import { migrateAndSeed, MIGRATIONS_DIR } from './migrate';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/postgres';

const made: TestDatabase[] = [];
afterAll(() => Promise.all(made.map((d) => d.drop())));

test('gateways migrating one empty database at once apply each migration once', async () => {
  const target = await createTestDatabase({ empty: true });
  made.push(target);
  const gateways = Array.from({ length: 4 }, () => connect(target.url, { max: 3 }));
  try {
    await Promise.all(gateways.map((g) => migrateAndSeed(g)));
  } finally {
    await Promise.all(gateways.map((g) => g.close()));
  }
  const sql = target.database.sql;
  const files = (await readdir(MIGRATIONS_DIR)).filter((f) => f.endsWith('.sql'));
  const applied = await sql`select count(*)::int as n from drizzle.__drizzle_migrations`;
  expect(applied[0]!.n).toBe(files.length);
  const nodes = await sql`select name, engine, endpoint from nodes`;
  expect(nodes).toEqual([{ name: 'local', engine: 'process', endpoint: 'local' }] as never);
});

test('migrating again is a no-op and does not re-seed a deleted default node', async () => {
  const target = await createTestDatabase();
  made.push(target);
  await target.database.sql`insert into nodes (name, engine, endpoint) values ('other', 'docker', 'unix:///x')`;
  await target.database.sql`delete from nodes where name = 'local'`;
  await migrateAndSeed(target.database);
  const names = await target.database.sql`select name from nodes order by name`;
  expect(names.map((r) => r.name)).toEqual(['other']);
});
