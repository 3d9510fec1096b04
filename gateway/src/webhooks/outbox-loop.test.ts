import { afterAll, beforeAll, expect, test } from 'bun:test';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/postgres';
import { until } from '../../../tests/support/poll';
import { createLogger } from '../logging/logger';
import { OutboxLoop } from './outbox-loop';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

test('a notification that comes while a round runs is not lost: another round follows at once', async () => {
  let rounds = 0;
  let releaseFirst!: () => void;
  const firstHeld = new Promise<void>((resolve) => (releaseFirst = resolve));
  // Polling once in ten minutes: only a notification can bring a second round within the test.
  const loop = new OutboxLoop(
    db.database.sql,
    'wgs_test_outbox',
    async () => {
      rounds++;
      if (rounds === 1) await firstHeld; // the first round is still running when the notification comes
      return 0;
    },
    createLogger('silent'),
    600_000,
  );
  await loop.start();
  try {
    await until('the first round', () => rounds === 1);
    await db.database.sql`select pg_notify('wgs_test_outbox', '')`;
    // Give the notification time to arrive while the round still runs, then let the round end empty-handed.
    await Bun.sleep(200);
    releaseFirst();
    await until('a round after the notification', () => rounds >= 2, 5_000);
    // And then it waits: no busy loop.
    await Bun.sleep(300);
    expect(rounds).toBe(2);
  } finally {
    releaseFirst();
    await loop.stop();
  }
});
