import { afterAll, beforeAll, expect, test } from 'bun:test';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/postgres';
import { abandonMigrations } from './lifecycle';
import { acquireOwner } from '../claims/owner';
import { createLogger } from '../logging/logger';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(() => t.drop());

test('a move whose gateway died is abandoned at once: target released, nothing left migrating; a live gateway keeps its move', async () => {
  const { sql } = t.database;
  const live = await acquireOwner(t.url, createLogger('silent'));
  const [user] = await sql`insert into users (email) values ('m@example.com') returning id`;
  const [node] = await sql`insert into nodes (name, engine, endpoint) values ('other', 'process', 'local') returning id`;
  const [local] = await sql`select id from nodes where name = 'local'`;
  const insert = (phone: string, status: string, desired: string, target: number | null, owner: number | null) => sql`
    insert into instances (user_id, node_id, target_node_id, phone_number, provider, status, desired_state, move_owner)
    values (${user!.id}, ${local!.id}, ${target}, ${phone}, 'sandbox', ${status}, ${desired}, ${owner}) returning id`;
  const dead = live.id + 1000; // an id no process holds
  const [running] = await insert('15550000001', 'migrating', 'running', node!.id, dead);
  const [stopped] = await insert('15550000002', 'migrating', 'stopped', node!.id, null);
  const [untouched] = await insert('15550000003', 'running', 'running', null, null);
  const [held] = await insert('15550000004', 'migrating', 'running', node!.id, live.id);

  expect((await abandonMigrations(t.database.db)).sort()).toEqual([running!.id, stopped!.id].sort());
  const reason = 'the gateway running the migration stopped; the move was abandoned';
  const rows = [...(await sql`select id, status, status_reason, target_node_id, move_owner from instances order by id`)];
  expect(rows).toEqual([
    { id: running!.id, status: 'starting', status_reason: reason, target_node_id: null, move_owner: null },
    { id: stopped!.id, status: 'stopped', status_reason: reason, target_node_id: null, move_owner: null },
    { id: untouched!.id, status: 'running', status_reason: null, target_node_id: null, move_owner: null },
    { id: held!.id, status: 'migrating', status_reason: null, target_node_id: node!.id, move_owner: live.id },
  ]);
  expect(await abandonMigrations(t.database.db)).toEqual([]);

  // The owner stops: its move is abandoned at the next sweep, with no timer to run out.
  await live.release();
  expect(await abandonMigrations(t.database.db)).toEqual([held!.id]);
});
