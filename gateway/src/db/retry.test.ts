import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/postgres';
import { retryTransient } from './retry';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase({ empty: true });
  await t.database.sql`create table pair (id int primary key, n int not null)`;
  await t.database.sql`insert into pair values (1, 0), (2, 0)`;
});
afterAll(() => t.drop());

/** One transaction locking row `first`, then (after the other has locked its row) row `second`. */
function crossing(first: number, second: number, bothLocked: Promise<unknown>, locked: () => void) {
  return t.database.db.transaction(async (tx) => {
    await tx.execute(sql`update pair set n = n + 1 where id = ${first}`);
    locked();
    await bothLocked;
    await tx.execute(sql`update pair set n = n + 1 where id = ${second}`);
  });
}

describe('retryTransient', () => {
  test('two transactions that deadlock for real: Postgres aborts one, run again it commits; both updates land', async () => {
    let runs = 0;
    let lockedA!: () => void;
    let lockedB!: () => void;
    const a = new Promise<void>((r) => (lockedA = r));
    const b = new Promise<void>((r) => (lockedB = r));
    const bothLocked = Promise.all([a, b]);
    const [x, y] = await Promise.allSettled([
      retryTransient(() => (runs++, crossing(1, 2, bothLocked, lockedA))),
      retryTransient(() => (runs++, crossing(2, 1, bothLocked, lockedB))),
    ]);
    expect([x.status, y.status]).toEqual(['fulfilled', 'fulfilled']);
    expect(runs).toBe(3); // one of them was the deadlock victim and ran again
    const rows = await t.database.sql`select id, n from pair order by id`;
    expect(rows.map((r) => [r.id, r.n])).toEqual([
      [1, 2],
      [2, 2],
    ]);
  }, 20_000);

  test('any other error is thrown at once, and a transaction that keeps losing gives up after three runs', async () => {
    let runs = 0;
    const duplicate = Object.assign(new Error('duplicate key'), { code: '23505' });
    await expect(retryTransient(async () => (runs++, Promise.reject(duplicate)))).rejects.toBe(duplicate);
    expect(runs).toBe(1);
    runs = 0;
    const victim = Object.assign(new Error('deadlock detected'), { code: '40P01' });
    await expect(retryTransient(async () => (runs++, Promise.reject(victim)))).rejects.toBe(victim);
    expect(runs).toBe(3);
  });
});
