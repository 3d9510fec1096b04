import net from 'node:net';
import postgres, { type Sql } from 'postgres';
import type { Logger } from '../logger';

/**
 * First key of the state lock, `pg_advisory_lock(STATE_LOCK_CLASS, instanceId)`:
 * 0x77677301, "wgs" and 1. The gateway may take the same lock to learn
 * whether a worker still owns an instance.
 */
export const STATE_LOCK_CLASS = 2003268353;

/** How often the store checks that its connection is alive and still holds the lock. */
const HEARTBEAT_INTERVAL_MS = 2_000;
/** A heartbeat that takes longer than this counts as a lost connection. */
const HEARTBEAT_TIMEOUT_MS = 2_000;
/** close() is done within about this long, released or not. */
const CLOSE_TIMEOUT_MS = 2_000;
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * What an engine gets to keep its session (pairing, credentials, keys,
 * pending work) in the instance's own Postgres schema. Unqualified table
 * names land in that schema; the role can use nothing else.
 *
 * `sql` runs on the one connection that holds the instance's lock, so
 * queries are serialised. Keep them short (a heartbeat waits behind them),
 * use the `tx` given by `sql.begin` inside a transaction (the outer `sql`
 * would wait for the transaction forever), and do not use `reserve`,
 * `listen`, `subscribe` or query cancellation: they need a second
 * connection, which the store refuses to open.
 */
export interface StateStore {
  readonly sql: Sql;
  readonly schema: string;
  /** The Postgres backend that holds the lock. */
  readonly backendPid: number;
  /** True when another worker held the lock at open and this one waited for it. */
  readonly waited: boolean;
  /** Runs an engine's `create table if not exists …` statements in one transaction. */
  migrate(name: string, statements: readonly string[]): Promise<void>;
  /** Stops the heartbeat, releases the lock and ends the connection; bounded, never throws. */
  close(): Promise<void>;
}

export interface StateStoreOptions {
  /** Secret: the role's password is in it. Only its host, port, database and user are ever logged. */
  dsn: string;
  schema: string;
  instanceId: number;
  log: Logger;
  /**
   * Called once when the connection (and with it the lock) is lost, or the
   * lock is no longer held. Another worker may own the instance from now
   * on: the caller must stop writing at once (the worker exits with 1).
   */
  onLost(err: Error): void;
  /** Called once when another owner holds the lock; open() then waits for it. */
  onWaiting?(): void;
  /** Aborting while open() waits ends the connection; open() then rejects. */
  signal?: AbortSignal;
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  closeTimeoutMs?: number;
  connectTimeoutMs?: number;
}

/**
 * Opens the instance's state connection and takes its lock, waiting for a
 * previous owner to let go.
 *
 * One owner at a time: the lock is a session-level advisory lock held by one
 * dedicated connection for the worker's whole life. It is only as good as
 * that connection, so the store makes sure it never changes behind its back:
 *
 * - postgres.js is given max: 1, no idle timeout and no max lifetime (its
 *   default recycles connections after 30 to 60 minutes), so it never closes
 *   the connection on its own;
 * - it is also given a socket factory that hands out exactly one socket, so
 *   even if postgres.js tried to reconnect (it does so silently when a query
 *   is queued on a closed connection), the attempt fails instead of running
 *   a query on a new session without the lock;
 * - any close of that connection (postgres.js `onclose`), a failed or slow
 *   heartbeat, or a heartbeat that finds the lock gone (e.g. after a
 *   `discard all`) calls onLost once and ends the pool, so later queries
 *   fail instead of waiting for a connection that cannot come back.
 *
 * Not `sql.reserve()`: a reserved connection that dies is silently replaced
 * by the pool for non-reserved queries, and queries on the dead reserved
 * handle are written to a socket that no longer exists.
 */
export async function openStateStore(opts: StateStoreOptions): Promise<StateStore> {
  const log = opts.log.child({ component: 'state' });
  const where = describeDsn(opts.dsn);
  const heartbeatIntervalMs = opts.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS;
  const heartbeatTimeoutMs = opts.heartbeatTimeoutMs ?? HEARTBEAT_TIMEOUT_MS;
  const closeTimeoutMs = opts.closeTimeoutMs ?? CLOSE_TIMEOUT_MS;
  const lockKey = [STATE_LOCK_CLASS, opts.instanceId] as const;

  /** open: acquiring; live: lock held; lost: connection gone; closing/closed: close() called. */
  let phase: 'open' | 'live' | 'lost' | 'closing' | 'closed' = 'open';
  let heartbeatTimer: ReturnType<typeof setTimeout> | undefined;

  const lose = (err: Error) => {
    if (phase === 'lost' || phase === 'closing' || phase === 'closed') return;
    const wasLive = phase === 'live';
    phase = 'lost';
    clearTimeout(heartbeatTimer);
    // Queued and later queries fail at once; nothing may run on another session.
    sql.end({ timeout: 0 }).catch(() => {});
    if (wasLive) {
      log.error({ err: { message: err.message }, db: where }, 'state connection lost; the instance lock is gone');
      opts.onLost(err);
    }
  };

  const sql = postgres(opts.dsn, {
    max: 1,
    idle_timeout: 0,
    max_lifetime: null,
    connect_timeout: Math.ceil((opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS) / 1000),
    onnotice: () => {},
    connection: {
      search_path: opts.schema,
      application_name: 'wgs-worker',
      // The server's side of the lock: a worker that vanished without closing its socket
      // (power loss, partition) lets go of the instance within about 25 s, not the OS's 2 h.
      tcp_keepalives_idle: 10,
      tcp_keepalives_interval: 5,
      tcp_keepalives_count: 3,
    },
    onclose: () => lose(new Error('the state connection closed')),
    // Not in postgres.js's types, but documented in its README ("Custom socket").
    ...({ socket: oneSocket(() => lose(new Error('postgres.js tried to reconnect the state connection'))) } as object),
  });

  const onAbort = () => {
    if (phase === 'open') sql.end({ timeout: 0 }).catch(() => {});
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });

  let backendPid: number;
  let waited = false;
  try {
    const [session] = await sql<{ pid: number; schema: string | null }[]>`
      select pg_backend_pid() as pid, current_schema() as schema`;
    if (!session) throw new Error('the state connection returned no session');
    if (session.schema !== opts.schema) {
      throw new Error(`schema ${opts.schema} does not exist or its role cannot use it (current_schema: ${session.schema})`);
    }
    backendPid = session.pid;
    log.info({ db: where, schema: opts.schema, pid: backendPid }, 'state store connected; taking the instance lock');
    const [tried] = await sql<{ locked: boolean }[]>`
      select pg_try_advisory_lock(${lockKey[0]}::int4, ${lockKey[1]}::int4) as locked`;
    if (!tried?.locked) {
      waited = true;
      log.warn({ schema: opts.schema }, 'another worker holds the instance lock; waiting for the previous owner');
      opts.onWaiting?.();
      const started = Date.now();
      await sql`select pg_advisory_lock(${lockKey[0]}::int4, ${lockKey[1]}::int4)`;
      log.info({ waitedMs: Date.now() - started }, 'previous owner gone');
    }
    if (opts.signal?.aborted) throw new Error('opening the state store was aborted');
  } catch (err) {
    phase = 'closed';
    await sql.end({ timeout: 0 }).catch(() => {});
    if (opts.signal?.aborted) throw new Error('opening the state store was aborted', { cause: err });
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
  // The connection may have died right after the lock came: then lose() already ran, silently.
  if (phase !== 'open') throw new Error('the state connection closed while taking the instance lock');
  phase = 'live';
  log.info({ schema: opts.schema, pid: backendPid, waited }, 'instance lock held');

  const heartbeat = async () => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`state connection did not answer within ${heartbeatTimeoutMs} ms`)), heartbeatTimeoutMs);
    });
    try {
      // Alive, still the same backend, and the lock still granted to it.
      const [row] = await Promise.race([
        sql<{ pid: number; held: boolean }[]>`
          select pg_backend_pid() as pid, exists (
            select 1 from pg_locks
            where locktype = 'advisory' and pid = pg_backend_pid() and granted
              and classid = ${lockKey[0]}::oid and objid = ${lockKey[1]}::oid and objsubid = 2
          ) as held`,
        timeout,
      ]);
      if (row?.pid !== backendPid) throw new Error(`state connection changed backend (${backendPid} → ${row?.pid})`);
      if (!row.held) throw new Error('the instance lock is no longer held by the state connection');
    } catch (err) {
      lose(err instanceof Error ? err : new Error(String(err)));
    } finally {
      clearTimeout(timer);
    }
    if (phase === 'live') heartbeatTimer = setTimeout(heartbeat, heartbeatIntervalMs);
  };
  heartbeatTimer = setTimeout(heartbeat, heartbeatIntervalMs);

  return {
    sql,
    schema: opts.schema,
    backendPid,
    waited,
    async migrate(name, statements) {
      const started = performance.now();
      await sql.begin(async (tx) => {
        for (const statement of statements) await tx.unsafe(statement);
      });
      log.info({ migration: name, statements: statements.length, ms: Math.round(performance.now() - started) }, 'state tables ready');
    },
    async close() {
      if (phase === 'closing' || phase === 'closed') return;
      const wasLive = phase === 'live';
      phase = 'closing';
      clearTimeout(heartbeatTimer);
      const deadline = Date.now() + closeTimeoutMs;
      if (wasLive) {
        // Ending the session releases the lock too; unlocking first just says so explicitly.
        const unlocked = await within(
          sql`select pg_advisory_unlock(${lockKey[0]}::int4, ${lockKey[1]}::int4) as unlocked`.then(([r]) => Boolean(r?.unlocked)),
          closeTimeoutMs / 2,
        ).catch((err: unknown) => err);
        if (unlocked !== true) {
          log.warn({ outcome: String(unlocked) }, 'releasing the instance lock failed; ending the connection releases it');
        }
      }
      const remainingS = Math.max(0, deadline - Date.now()) / 1000;
      await sql.end({ timeout: remainingS }).catch(() => {});
      phase = 'closed';
      log.info('state store closed; instance lock released');
    },
  };
}

/**
 * A postgres.js socket factory that hands out one TCP (or Unix) socket and
 * refuses every later request: the store's session, and with it the lock,
 * can never be replaced by a silent reconnect.
 */
export function oneSocket(onSecond: () => void) {
  let used = false;
  return (options: { host: string[]; port: number[]; path?: string | false; connect_timeout?: number }) => {
    if (used) {
      onSecond();
      throw new Error('the state connection is gone and is never reopened (it held the instance lock)');
    }
    used = true;
    const host = options.host[0] ?? 'localhost';
    const port = options.port[0] ?? 5432;
    const socket = options.path ? net.connect(options.path) : net.connect(port, host);
    // postgres.js reads these for TLS (servername) and error messages.
    Object.assign(socket, { host, port });
    return new Promise<net.Socket>((resolve, reject) => {
      const timeoutMs = (options.connect_timeout ?? CONNECT_TIMEOUT_MS / 1000) * 1000;
      const timer = setTimeout(() => fail(new Error(`connecting to ${host}:${port} timed out after ${timeoutMs} ms`)), timeoutMs);
      const fail = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      socket.once('error', fail);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeListener('error', fail);
        resolve(socket);
      });
    });
  };
}

/** Where a DSN points, without its password: for logs. */
export function describeDsn(dsn: string): { host: string; port: string; database: string; user: string } {
  try {
    const url = new URL(dsn);
    return {
      host: url.hostname,
      port: url.port || '5432',
      database: decodeURIComponent(url.pathname.replace(/^\/+/, '')),
      user: decodeURIComponent(url.username),
    };
  } catch {
    return { host: '?', port: '?', database: '?', user: '?' };
  }
}

async function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
