import { afterAll, beforeAll, expect, test } from 'bun:test';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/postgres';
import { abandonMigrations } from './lifecycle';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(() => t.drop());

test('a migration cut short by a gateway restart is abandoned: target released, nothing left migrating', async () => {
  const { sql } = t.database;
  const [user] = await sql`insert into users (email) values ('m@example.com') returning id`;
  const [node] = await sql`insert into nodes (name, engine, endpoint) values ('other', 'process', 'local') returning id`;
  const [local] = await sql`select id from nodes where name = 'local'`;
  const insert = (phone: string, status: string, desired: string, target: number | null) => sql`
    insert into instances (user_id, node_id, target_node_id, phone_number, provider, status, desired_state)
    values (${user!.id}, ${local!.id}, ${target}, ${phone}, 'sandbox', ${status}, ${desired}) returning id`;
  const [running] = await insert('15550000001', 'migrating', 'running', node!.id);
  const [stopped] = await insert('15550000002', 'migrating', 'stopped', node!.id);
  const [untouched] = await insert('15550000003', 'running', 'running', null);

  expect(await abandonMigrations(t.database.db)).toBe(2);
  const rows = [...(await sql`select id, status, status_reason, target_node_id from instances order by id`)];
  expect(rows).toEqual([
    { id: running!.id, status: 'starting', status_reason: 'gateway restarted during a migration', target_node_id: null },
    { id: stopped!.id, status: 'stopped', status_reason: 'gateway restarted during a migration', target_node_id: null },
    { id: untouched!.id, status: 'running', status_reason: null, target_node_id: null },
  ]);
  expect(await abandonMigrations(t.database.db)).toBe(0);
});
