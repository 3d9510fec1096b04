/** The engines the end-to-end suites in this folder run against, and what differs between them. */
import type { Sql } from 'postgres';

export interface EngineUnderTest {
  /** The API's `provider`. */
  provider: string;
  /** A piece of its worker process's command line (to find and kill it). */
  program: string;
  /** The state reason when the phone unlinks the device. */
  unlinkedReason: string;
  /** What its `reconnecting` reason says when the connection drops. */
  reconnectingReason: RegExp;
  /** Linked devices in its stored session in the instance's schema: 0 once it is logged out. */
  sessionRows(sql: Sql, instanceId: number): Promise<number>;
}

const count = async (sql: Sql, table: string, where = 'true'): Promise<number> => {
  const [{ n }] = (await sql.unsafe(`select count(*)::int as n from ${table} where ${where}`)) as unknown as [{ n: number }];
  return n;
};

export const BAILEYS: EngineUnderTest = {
  provider: 'baileys',
  program: 'worker-node/main.js',
  unlinkedReason: 'logged out from the phone (WhatsApp ended the session: 401)',
  reconnectingReason: /connection closed|reconnecting/,
  // A fresh QR login writes new, unlinked credentials at once: linked ones carry `me`.
  sessionRows: (sql, id) => count(sql, `wgs_i_${id}.baileys_creds`, `value::jsonb ? 'me'`),
};

export const WHATSMEOW: EngineUnderTest = {
  provider: 'whatsmeow',
  program: 'wgs-whatsmeow',
  unlinkedReason: 'logged out: the device was removed from the phone',
  reconnectingReason: /reconnecting|cannot reach WhatsApp/,
  sessionRows: (sql, id) => count(sql, `wgs_i_${id}.whatsmeow_device`),
};
