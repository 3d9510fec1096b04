import { afterAll, beforeAll, expect, test } from 'bun:test';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/postgres';
import { instances } from '../db/schema';
import { placeAndAssign } from './loads';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(() => t.drop());

test('creates racing for the last slots of a node never oversell it', async () => {
  const { db, sql } = t.database;
  await sql`update nodes set capacity_millicpu = 1000, status = 'ready' where name = 'local'`;
  const [user] = await sql`insert into users (email) values ('race@example.com') returning id`;
  // Ten concurrent placements of 0.5 cores on a 1-core node: exactly two fit.
  const attempts = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      placeAndAssign(db, { millicpu: 500 }, 1, (tx, node) =>
        tx.insert(instances).values({ userId: user!.id, nodeId: node.id, phoneNumber: `1555000${1000 + i}`, provider: 'sandbox', cpuLimit: '0.5' }),
      ),
    ),
  );
  expect(attempts.filter((a) => a.ok)).toHaveLength(2);
  const failed = attempts.filter((a) => !a.ok);
  expect(failed).toHaveLength(8);
  expect(failed[0]).toMatchObject({ ok: false, reason: expect.stringContaining('local: cpu 1.5 of 1 cores') });
  const [row] = await sql`select count(*)::int as n from instances`;
  expect(row!.n).toBe(2);
});
