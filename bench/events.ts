/**
 * Event log benchmark: what a REST page of the log costs (GET /api/events and
 * GET /api/instances/:id/events, history and polling) in a large log, for a
 * tenant with many events and one with a handful, and what the per-event
 * tenant column (a trigger and its indexes) costs on inserts. Runs the
 * gateway's own page code (events/log.ts) on a migrated embedded Postgres;
 * no gateway process (the HTTP layer adds the same constant to every row).
 * Loopback only, bounded by BENCH_EVENTS.
 *
 *   node_modules/.bin/bun bench/events.ts      (BENCH_EVENTS, default 200000)
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../gateway/src/db/client';
import { startEmbeddedPostgres } from '../gateway/src/db/embedded';
import { migrateAndSeed } from '../gateway/src/db/migrate';
import { cursorOf, eventPage, type PageFrom, type StreamScope } from '../gateway/src/events/log';
import { createLogger } from '../gateway/src/logging/logger';
import { fixtureInstance } from '../tests/support/event-log';
import { pct, printTable } from './table';

const EVENTS = Math.min(Number(process.env.BENCH_EVENTS ?? 200_000), 2_000_000);
const BIG_INSTANCES = 20;
const SMALL_EVENTS = 5;
const ROUNDS = 20;
const INSERT_ROWS = 50_000;

const dir = await mkdtemp(join(tmpdir(), 'wgs-bench-events-'));
await chmod(dir, 0o755);
const pg = await startEmbeddedPostgres({ dataDir: join(dir, 'db'), port: 0, logger: createLogger('warn') });
const database = connect(pg.url, { max: 2 });
const sql = database.sql;
const rows: string[][] = [];
try {
  await migrateAndSeed(database);
  const [big] = await sql<{ id: number }[]>`insert into users (email) values ('big@example.com') returning id`;
  const [small] = await sql<{ id: number }[]>`insert into users (email) values ('small@example.com') returning id`;
  const bigIds: number[] = [];
  for (let i = 0; i < BIG_INSTANCES; i++) bigIds.push(await fixtureInstance(sql, big!.id, `15550${String(i).padStart(6, '0')}`));
  const smallId = await fixtureInstance(sql, small!.id, '15559990000');
  await sql`insert into events (instance_id, type, data) select ${smallId}, 'message.received', '{}'::jsonb from generate_series(1, ${SMALL_EVENTS})`;
  // The big tenant's events in transactions of 5000, round-robin over its instances.
  for (let done = 0; done < EVENTS; done += 5000) {
    await sql`insert into events (instance_id, type, data)
      select ${bigIds[(done / 5000) % BIG_INSTANCES]!}, 'message.received', jsonb_build_object('id', 'm' || g, 'text', 'hello')
      from generate_series(1, ${Math.min(5000, EVENTS - done)}) g`;
  }
  await sql`analyze events`;
  const [mid] = await sql<{ id: string }[]>`select id from events where instance_id = ${bigIds[0]!} order by id desc limit 1 offset 100`;

  const time = async (label: string, scope: StreamScope, from: PageFrom | (() => Promise<PageFrom>)) => {
    const ms: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const t0 = performance.now();
      await eventPage(sql, scope, typeof from === 'function' ? await from() : from, 100);
      ms.push(performance.now() - t0);
    }
    rows.push([label, `p50 ${pct(ms, 0.5).toFixed(1)} ms, p95 ${pct(ms, 0.95).toFixed(1)} ms`]);
  };
  const smallTenant = { userId: small!.id };
  const bigTenant = { userId: big!.id };
  await time(`small tenant (${SMALL_EVENTS} events): newest 100 (GET /api/events)`, smallTenant, {});
  await time('small tenant: first poll (?after=0)', smallTenant, { after: null });
  await time(`big tenant (${EVENTS} events, ${BIG_INSTANCES} instances): newest 100`, bigTenant, {});
  await time('big tenant: first poll (?after=0)', bigTenant, { after: null });
  await time('big tenant: poll after an event id 100 from the end (id → cursor, then the page)', bigTenant, async () => ({
    after: await cursorOf(sql, bigTenant, Number(mid!.id)),
  }));
  await time('one instance of the big tenant: newest 100 (GET /api/instances/:id/events)', { ...bigTenant, instanceId: bigIds[0]! }, {});
  await time('one instance: first poll', { ...bigTenant, instanceId: bigIds[0]! }, { after: null });

  // What the tenant column costs on inserts: the same batched inserts with and without its trigger and indexes.
  const insertRate = async () => {
    const t0 = performance.now();
    for (let done = 0; done < INSERT_ROWS; done += 5000) {
      await sql`insert into events (instance_id, type, data) select ${bigIds[1]!}, 'message.received', '{}'::jsonb from generate_series(1, 5000)`;
    }
    return ((performance.now() - t0) * 1000) / INSERT_ROWS;
  };
  const withColumn = await insertRate();
  await sql`drop trigger events_owner on events`;
  await sql`drop index events_user_tx_idx`;
  await sql`drop index events_user_id_idx`;
  await sql`drop index events_instance_tx_idx`;
  const without = await insertRate();
  rows.push([
    `insert, 5000 events a statement (${INSERT_ROWS} events): with the tenant trigger and the cursor indexes / without`,
    `${withColumn.toFixed(1)} / ${without.toFixed(1)} µs an event`,
  ]);
} finally {
  await database.close();
  await pg.stop();
  await rm(dir, { recursive: true, force: true });
}

printTable('event log benchmark', rows, [`log: ${EVENTS} events of one tenant, ${SMALL_EVENTS} of another; ${ROUNDS} pages each; the page code of events/log.ts, no HTTP`]);
