/** What a sandbox number received, for end-to-end checks of "every accepted message arrived once". */
import type { Sql } from 'postgres';
import { until } from './poll';

/**
 * The texts of every `message.received` event of the instance, once each of
 * `expected` is among them (polled up to 30 s); a text seen twice shows up twice.
 */
export function receivedTexts(sql: Sql, instanceId: number, expected: Iterable<string>): Promise<string[]> {
  const want = [...expected];
  return until(
    'every accepted message received',
    async () => {
      const rows = await sql`select data->>'text' as text from events where instance_id = ${instanceId} and type = 'message.received'`;
      const texts = rows.map((r) => r.text as string);
      return want.every((t) => texts.includes(t)) ? texts : null;
    },
    30_000,
    100,
  );
}
