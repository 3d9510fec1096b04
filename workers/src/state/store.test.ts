import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { Writable } from 'node:stream';
import { createLogger } from '../logger';
import { waitFor } from '../testing/fake-gateway';
import { TestStateDb, type TestInstanceState } from '../testing/state-db';
import postgres from 'postgres';
import { describeDsn, oneSocket, openStateStore, STATE_LOCK_CLASS, type StateStore, type StateStoreOptions } from './store';

let db: TestStateDb;
beforeAll(async () => {
  db = await TestStateDb.create();
});
afterAll(async () => {
  await db.cleanup();
});

const opened: StateStore[] = [];
const aborts: AbortController[] = [];
afterEach(async () => {
  for (const a of aborts.splice(0)) a.abort();
  await Promise.all(opened.splice(0).map((s) => s.close()));
});

function logSink() {
  const lines: string[] = [];
  const log = createLogger(
    { level: 'debug', instanceId: 1 },
    new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  );
  return { log, lines };
}

/** Opens a store and records what it reports; `opening` settles when open() does. */
function open(instance: TestInstanceState, instanceId: number, extra: Partial<StateStoreOptions> = {}) {
  const { log, lines } = logSink();
  const seen = { waiting: 0, lost: [] as Error[], store: undefined as StateStore | undefined, error: undefined as unknown };
  const abort = new AbortController();
  aborts.push(abort);
  const opening = openStateStore({
    dsn: instance.dsn,
    schema: instance.schema,
    instanceId,
    log,
    onWaiting: () => seen.waiting++,
    onLost: (err) => seen.lost.push(err),
    signal: abort.signal,
    heartbeatIntervalMs: 200,
    ...extra,
  }).then(
    (store) => {
      opened.push(store);
      seen.store = store;
      return store;
    },
    (err: unknown) => {
      seen.error = err;
      throw err;
    },
  );
  opening.catch(() => {});
  return { seen, opening, abort, lines };
}

describe('state store', () => {
  test('STATE_LOCK_CLASS is 0x77677301', () => {
    expect(STATE_LOCK_CLASS).toBe(0x77677301);
  });

  test('opens on the instance schema: unqualified tables land there, migrate is idempotent', async () => {
    const inst = await db.createInstance();
    const store = await open(inst, 101).opening;
    expect(store.waited).toBe(false);
    expect(store.schema).toBe(inst.schema);
    const stmts = ['create table if not exists notes (id int primary key, body text not null)'];
    await store.migrate('notes', stmts);
    await store.migrate('notes', stmts);
    await store.sql`insert into notes (id, body) values (1, 'x')`;
    const [settings] = await store.sql<{ path: string; idle: string }[]>`
      select current_setting('search_path') as path, current_setting('tcp_keepalives_idle') as idle`;
    expect(settings).toEqual({ path: inst.schema, idle: '10' });
    const [where] = await db.admin<{ schema: string }[]>`
      select table_schema as schema from information_schema.tables where table_name = 'notes'`;
    expect(where?.schema).toBe(inst.schema);
  });

  test('a failing migration leaves nothing behind', async () => {
    const inst = await db.createInstance();
    const store = await open(inst, 102).opening;
    await expect(store.migrate('bad', ['create table half (id int)', 'create table broken ('])).rejects.toThrow();
    expect(await store.sql`select 1 from pg_tables where tablename = 'half'`).toHaveLength(0);
  });

  test('the lock is exclusive: a second store for the instance waits until the first closes', async () => {
    const inst = await db.createInstance();
    const first = await open(inst, 103).opening;
    const second = open(inst, 103);
    await waitFor(() => second.seen.waiting === 1, 'the second store to report waiting');
    // Still waiting a while later: the lock is held.
    await Bun.sleep(300);
    expect(second.seen.store).toBeUndefined();

    // A different instance is not blocked, even with the same role.
    const other = await open(inst, 104).opening;
    expect(other.waited).toBe(false);

    await first.close();
    const store = await waitFor(() => second.seen.store, 'the second store to get the lock', 5_000);
    expect(store.waited).toBe(true);
    expect(second.seen.lost).toEqual([]);
  });

  test('close() releases the lock at once; a closed store closes again without error', async () => {
    const inst = await db.createInstance();
    const first = await open(inst, 105).opening;
    await first.close();
    await first.close();
    const started = Date.now();
    const next = await open(inst, 105).opening;
    expect(next.waited).toBe(false);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  test('a terminated backend: onLost within ~5 s, once, and later queries fail instead of reconnecting', async () => {
    const inst = await db.createInstance();
    const { seen, opening } = open(inst, 106);
    const store = await opening;
    const pids = await db.terminate(inst.role);
    expect(pids).toContain(store.backendPid);
    await waitFor(() => seen.lost.length > 0, 'onLost', 5_000);
    await Bun.sleep(500); // heartbeats keep running; onLost must not fire again
    expect(seen.lost).toHaveLength(1);
    await expect(store.sql`select 1`).rejects.toThrow();
    // No second session was opened behind the store's back.
    expect(await db.backends(inst.role)).toEqual([]);
    // And another owner can take the instance now.
    expect((await open(inst, 106).opening).waited).toBe(false);
  });

  test('the socket factory refuses to reconnect: a query after a lost session fails, no new session', async () => {
    const inst = await db.createInstance();
    let refused = 0;
    let closes = 0;
    // A bare pool with the store's factory, without the store's own reaction to the close.
    const sql = postgres(inst.dsn, {
      max: 1,
      onnotice: () => {},
      onclose: () => closes++,
      ...({ socket: oneSocket(() => refused++) } as object),
    });
    try {
      await sql`select 1`;
      await db.terminate(inst.role);
      await waitFor(() => closes === 1, 'postgres.js to see the close');
      await expect(sql`select 1`).rejects.toThrow('never reopened');
      expect(refused).toBe(1);
      expect(await db.backends(inst.role)).toEqual([]);
    } finally {
      await sql.end({ timeout: 0 });
    }
  });

  test('a lock released behind the store (pg_advisory_unlock_all) counts as lost', async () => {
    const inst = await db.createInstance();
    const { seen, opening } = open(inst, 107);
    const store = await opening;
    await store.sql.unsafe('select pg_advisory_unlock_all()');
    const [lost] = await waitFor(() => seen.lost.length > 0 && seen.lost, 'onLost', 5_000);
    expect(lost!.message).toContain('no longer held');
  });

  test('a slow heartbeat counts as lost', async () => {
    const inst = await db.createInstance();
    const { seen, opening } = open(inst, 108, { heartbeatIntervalMs: 50, heartbeatTimeoutMs: 100 });
    const store = await opening;
    // Hold the one connection busy; the heartbeat queues behind it and times out.
    store.sql`select pg_sleep(1)`.catch(() => {});
    const [lost] = await waitFor(() => seen.lost.length > 0 && seen.lost, 'onLost', 5_000);
    expect(lost!.message).toContain('did not answer');
  });

  test('aborting while waiting for the lock ends the attempt', async () => {
    const inst = await db.createInstance();
    await open(inst, 109).opening;
    const waiting = open(inst, 109);
    await waitFor(() => waiting.seen.waiting === 1, 'waiting');
    waiting.abort.abort();
    await expect(waiting.opening).rejects.toThrow('aborted');
  });

  test('a schema the role cannot use fails the open with its name', async () => {
    const inst = await db.createInstance();
    const other = await db.createInstance();
    await expect(open({ ...inst, schema: other.schema }, 110).opening).rejects.toThrow(other.schema);
    await expect(open({ ...inst, schema: 'no_such_schema' }, 110).opening).rejects.toThrow('no_such_schema');
  });

  test('a wrong password fails the open without showing the password', async () => {
    const inst = await db.createInstance();
    const url = new URL(inst.dsn);
    url.password = 'not-the-password-zz9';
    const { opening, lines } = open({ ...inst, dsn: url.toString() }, 111);
    const err = await opening.then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toContain('password authentication failed');
    expect(err?.message).not.toContain('not-the-password-zz9');
    expect(lines.join('')).not.toContain('not-the-password-zz9');
  });

  test('the role sees its schema only: not another instance schema, not public tables', async () => {
    const inst = await db.createInstance();
    const other = await db.createInstance();
    await db.admin.unsafe(`create table ${other.schema}.x (id int)`);
    await db.admin.unsafe('create table if not exists public.secret (x int)');
    await db.admin.unsafe('insert into public.secret values (42)');
    const store = await open(inst, 112).opening;
    await expect(store.sql.unsafe(`select * from ${other.schema}.x`)).rejects.toThrow('permission denied');
    await expect(store.sql.unsafe('select * from public.secret')).rejects.toThrow('permission denied');
    await expect(store.sql.unsafe(`create table ${other.schema}.y (id int)`)).rejects.toThrow('permission denied');
    // Failed statements do not cost the store its connection.
    await store.sql`select 1`;
  });

  test('logs never carry the password', async () => {
    const inst = await db.createInstance();
    const { opening, lines } = open(inst, 113);
    const store = await opening;
    await store.close();
    const text = lines.join('');
    expect(text).toContain('instance lock held');
    expect(text).not.toContain(inst.password);
    expect(describeDsn(inst.dsn)).toEqual({
      host: '127.0.0.1',
      port: new URL(inst.dsn).port,
      database: db.database.name,
      user: inst.role,
    });
  });
});
