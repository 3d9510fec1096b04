import { randomBytes } from 'node:crypto';
import postgres, { type Sql } from 'postgres';
import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import * as schema from './schema';
import { withTimeout } from '../lib/timeout';

export type Db = PostgresJsDatabase<typeof schema>;

export interface Database {
  sql: Sql;
  db: Db;
  close(): Promise<void>;
  /**
   * The application_name of this client's connections, unique per client: pg_stat_activity tells this
   * replica's pool apart from the others' (postgres.js has no pool statistics; metrics/fleet.ts).
   */
  applicationName?: string;
}

export function connect(url: string, options: { max?: number } = {}): Database {
  const applicationName = `wgs-gateway ${randomBytes(4).toString('hex')}`;
  const sql = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
    // Keepalives end the server's sessions of a gateway whose host vanished (no FIN) within about
    // 25 s, so its liveness lock, and with it its claims, are freed (claims/owner.ts).
    connection: { application_name: applicationName, tcp_keepalives_idle: 10, tcp_keepalives_interval: 5, tcp_keepalives_count: 3 },
  });
  const db = drizzle(sql, { schema });
  return { sql, db, close: () => sql.end({ timeout: 5 }), applicationName };
}

/** True when the database answers a trivial query within the timeout. */
export function ping(sql: Sql, timeoutMs = 2000): Promise<boolean> {
  return withTimeout(Promise.resolve(sql`select 1`), timeoutMs).then(
    () => true,
    () => false,
  );
}

/** The handle inside `db.transaction(async (tx) => …)`. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
