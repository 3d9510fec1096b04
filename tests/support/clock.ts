/** Waiting on the database clock, for tests whose steps must fall in one fixed window (rate limits, per-minute caps). */
import type { Sql } from 'postgres';
import { until } from './poll';

/** Waits, if needed, until the current minute on the database clock has at least `margin` seconds left. */
export async function minuteWithSecondsLeft(sql: Sql, margin: number): Promise<void> {
  await until(
    `a minute with ${margin} s left`,
    async () => {
      const [row] = await sql<{ s: number }[]>`select extract(second from now())::float8 as s`;
      return row!.s < 60 - margin;
    },
    margin * 1000 + 5_000,
    100,
  );
}
