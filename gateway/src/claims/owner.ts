/**
 * Who holds a claim, and whether it still lives. Every gateway process takes
 * a fresh id (a sequence) at start and holds a session-level advisory lock on
 * it, on a connection of its own, for as long as it lives. Work a gateway
 * claims (a webhook delivery in flight, a move, a drain) records that id.
 * When the process dies, Postgres ends its session and the lock is free, so
 * the claim is claimable again at once: one `pg_locks` read per sweep tells
 * the live owners apart, no timer has to run out. Leases stay only as the
 * fallback for an owner that is alive but hung.
 */
import { sql as dsql, type AnyColumn, type SQL } from 'drizzle-orm';
import postgres, { type Sql } from 'postgres';
import type { Logger } from '../logging/logger';

/** Advisory lock namespace of gateway liveness: "wgs" and 3. The second key is the process id. */
export const OWNER_LOCK = 0x77_67_73_03;
/** How often the lock's connection is checked; a lost one is replaced (and the lock taken again). */
const HEARTBEAT_MS = 2000;

/** SQL for the set of live gateway process ids in this database: `claimed_by in ${liveOwners}`. */
export const liveOwners: SQL = dsql`(
  select objid::int from pg_locks
  where locktype = 'advisory' and classid = ${OWNER_LOCK}::oid and objsubid = 2 and granted
    and database = (select oid from pg_database where datname = current_database()))`;

/** A claim whose owner is not alive (or that has none). */
export function ownerDead(column: AnyColumn | SQL): SQL {
  return dsql`(${column} is null or ${column} not in ${liveOwners})`;
}

export interface GatewayOwner {
  /** This process's id: what its claims record. */
  readonly id: number;
  /** Releases the lock (clean shutdown): claims left behind are claimable at once. */
  release(): Promise<void>;
}

/**
 * Takes a fresh id and holds its liveness lock until `release`. A lost
 * connection (Postgres restarted) is replaced and the lock taken again; in
 * between, other gateways may take over this one's claims, which at-least-once
 * work tolerates (a delivery in flight may be made twice, with the same id).
 */
export async function acquireOwner(databaseUrl: string, logger: Logger): Promise<GatewayOwner> {
  // A client of its own with one pooled connection, not a connection reserved from the gateway's
  // pool: postgres.js 3.4.9 throws an uncatchable error on the next query of a reserved connection
  // whose server session died (porsager/postgres#1208), which a Postgres restart would turn into a
  // gateway crash. A pooled connection is replaced instead.
  const sql = postgres(databaseUrl, {
    max: 1,
    onnotice: () => {},
    connection: { application_name: 'wgs-gateway-owner', tcp_keepalives_idle: 10, tcp_keepalives_interval: 5, tcp_keepalives_count: 3 },
  });
  let id: number;
  try {
    [{ id }] = (await sql`select nextval('gateway_process_ids')::int as id`) as unknown as [{ id: number }];
    if (!(await holdLock(sql, id))) throw new Error(`gateway process id ${id} is locked by another session`);
  } catch (err) {
    await sql.end({ timeout: 1 });
    throw err;
  }
  const log = logger.child({ component: 'owner', ownerId: id });
  let released = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  // Whether the session still holds the lock is asked of Postgres itself: after a lost
  // connection the pool's new one does not, and takes it again.
  const heartbeat = async () => {
    try {
      const [{ held }] = (await sql`
        select exists(select 1 from pg_locks where locktype = 'advisory' and classid = ${OWNER_LOCK}::oid
          and objid = ${id}::oid and objsubid = 2 and pid = pg_backend_pid() and granted) as held`) as unknown as [{ held: boolean }];
      if (!held) {
        if (await holdLock(sql, id)) log.warn('gateway liveness lock taken again after its connection was lost');
        else log.error('gateway liveness lock still held by the lost session; retrying');
      }
    } catch (err) {
      log.error({ err }, 'gateway liveness lock: the database does not answer; retrying');
    }
    if (!released) timer = setTimeout(heartbeat, HEARTBEAT_MS);
  };
  timer = setTimeout(heartbeat, HEARTBEAT_MS);
  log.info('gateway liveness lock held');
  return {
    id,
    async release() {
      if (released) return;
      released = true;
      clearTimeout(timer);
      // Unlocked first, so the lock is free when this resolves (a closing session frees it a moment later).
      await sql`select pg_advisory_unlock(${OWNER_LOCK}, ${id})`.catch(() => {});
      await sql.end({ timeout: 2 }).catch(() => {});
    },
  };
}

async function holdLock(sql: Sql, id: number): Promise<boolean> {
  const [{ ok }] = (await sql`select pg_try_advisory_lock(${OWNER_LOCK}, ${id}) as ok`) as unknown as [{ ok: boolean }];
  return ok;
}
