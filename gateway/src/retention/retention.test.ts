import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { Sql } from 'postgres';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/postgres';
import { until } from '../../../tests/support/poll';
import { createLogger } from '../logging/logger';
import { GatewayMetrics } from '../metrics/metrics';
import { RETENTION_LOCK, RetentionJob, type RetentionOptions } from './retention';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
const DEFAULTS = { eventsDays: 30, deliveriesDays: 14, mediaDays: 30, pauseMs: 0 };

let db: TestDatabase;
let sql: Sql;
let userId: number;
const jobs: RetentionJob[] = [];

function job(opts: Partial<RetentionOptions> = {}, metrics?: GatewayMetrics): RetentionJob {
  const j = new RetentionJob(db.url, logger, metrics, { ...DEFAULTS, ...opts });
  jobs.push(j);
  return j;
}

let phones = 0;
async function instance(webhook: boolean): Promise<number> {
  const phone = `+1555000${String(++phones).padStart(4, '0')}`;
  const [{ id }] = (await sql`insert into instances (user_id, phone_number, provider) values (${userId}, ${phone}, 'sandbox') returning id`) as unknown as [{ id: number }];
  if (webhook) await sql`insert into webhooks (instance_id, url, secret_encrypted) values (${id}, 'https://example.com/hook', 'sealed')`;
  return id;
}

/** Events of an instance created `ageDays` ago; with a webhook, the trigger adds one pending delivery each. */
async function events(instanceId: number, n: number, ageDays: number): Promise<number[]> {
  const rows = await sql`
    insert into events (instance_id, type, data, created_at)
    select ${instanceId}, 'message.received', '{}'::jsonb, now() - make_interval(days => ${ageDays}::int)
    from generate_series(1, ${n}) returning id`;
  return rows.map((r) => Number(r.id));
}

/** Finishes the deliveries of these events `ageDays` ago. */
async function finish(eventIds: number[], ageDays: number, status: 'succeeded' | 'failed' = 'succeeded') {
  await sql`update webhook_deliveries set status = ${status}, completed_at = now() - make_interval(days => ${ageDays}::int) where event_id = any(${eventIds}::bigint[])`;
}

async function count(table: string, where = sql`true`): Promise<number> {
  const [{ n }] = (await sql`select count(*)::int as n from ${sql(table)} where ${where}`) as unknown as [{ n: number }];
  return n;
}

async function prunedMetric(metrics: GatewayMetrics): Promise<Record<string, number>> {
  const { values } = await metrics.retentionPruned.get();
  return Object.fromEntries(values.map((v) => [String(v.labels.table), v.value]));
}

beforeAll(async () => {
  db = await createTestDatabase();
  sql = db.database.sql;
  [{ id: userId }] = (await sql`insert into users (email) values ('retention@example.com') returning id`) as unknown as [{ id: number }];
});

afterAll(async () => {
  for (const j of jobs) await j.stop();
  await db.drop();
});

describe('retention', () => {
  test('prunes old finished deliveries, their events, old finished commands and old media; keeps fresh rows and anything pending', async () => {
    await sql`truncate events, webhook_deliveries, commands, messages, media cascade`;
    const inst = await instance(true);
    // Old events whose deliveries finished long ago: deliveries and events go.
    const oldDone = await events(inst, 4, 40);
    await finish(oldDone.slice(0, 2), 20, 'succeeded');
    await finish(oldDone.slice(2), 20, 'failed');
    // An old event still pending delivery: kept, delivery and all.
    const [oldPending] = (await events(inst, 1, 40)) as [number];
    // An old event whose delivery finished within the deliveries horizon: both kept.
    const [oldRecent] = (await events(inst, 1, 40)) as [number];
    await finish([oldRecent], 5);
    // Fresh events, delivered: kept.
    const fresh = await events(inst, 3, 1);
    await finish(fresh, 0);

    await sql`insert into media (id, instance_id, mimetype, size, data, created_at) values
      ('old-1', ${inst}, 'image/png', 1, '\\x00', now() - interval '40 days'),
      ('old-2', ${inst}, 'image/png', 1, '\\x00', now() - interval '31 days'),
      ('new-1', ${inst}, 'image/png', 1, '\\x00', now() - interval '29 days')`;

    const cmds = await sql`
      insert into commands (instance_id, name, args, status, created_at, completed_at) values
        (${inst}, 'send', '{}', 'done', now() - interval '41 days', now() - interval '40 days'),
        (${inst}, 'send', '{}', 'failed', now() - interval '41 days', now() - interval '40 days'),
        (${inst}, 'send', '{}', 'pending', now() - interval '41 days', null),
        (${inst}, 'send', '{}', 'done', now() - interval '2 days', now() - interval '2 days')
      returning id`;
    const oldCommand = Number(cmds[0]!.id);
    await sql`insert into messages (id, instance_id, command_id, "to", type, status) values ('msg-old', ${inst}, ${oldCommand}, '+15551111111', 'text', 'read')`;

    const metrics = new GatewayMetrics({ defaults: false });
    const before = Date.now() / 1000;
    const result = await job({}, metrics).runOnce();
    expect(result).toMatchObject({ skipped: false, pruned: { webhook_deliveries: 4, events: 4, commands: 2, media: 2 } });

    expect(await count('events', sql`id = any(${oldDone}::bigint[])`)).toBe(0);
    expect(await count('webhook_deliveries', sql`event_id = any(${oldDone}::bigint[])`)).toBe(0);
    expect(await count('events', sql`id = ${oldPending}`)).toBe(1);
    expect(await count('webhook_deliveries', sql`event_id = ${oldPending} and status = 'pending'`)).toBe(1);
    expect(await count('events', sql`id = ${oldRecent}`)).toBe(1);
    expect(await count('webhook_deliveries', sql`event_id = ${oldRecent}`)).toBe(1);
    expect(await count('events', sql`id = any(${fresh}::bigint[])`)).toBe(3);
    expect(await count('webhook_deliveries', sql`event_id = any(${fresh}::bigint[])`)).toBe(3);
    expect((await sql`select id from media order by id`).map((r) => r.id)).toEqual(['new-1']);
    expect(await count('commands')).toBe(2);
    expect(await count('commands', sql`status = 'pending'`)).toBe(1);
    // The message of a pruned command stays, only its link goes.
    expect(await sql`select status, command_id from messages`).toEqual([{ status: 'read', command_id: null }] as never);

    expect(await prunedMetric(metrics)).toEqual({ webhook_deliveries: 4, events: 4, commands: 2, media: 2 });
    const lastRun = (await metrics.retentionLastRun.get()).values[0]?.value;
    expect(lastRun).toBeGreaterThanOrEqual(Math.floor(before));

    // A second pass finds nothing more; the pending event is still there.
    expect(await job({}, metrics).runOnce()).toMatchObject({ skipped: false, pruned: { webhook_deliveries: 0, events: 0, commands: 0, media: 0 } });
    expect(await count('events', sql`id = ${oldPending}`)).toBe(1);
  });

  test('0 days keeps a table forever', async () => {
    await sql`truncate events, webhook_deliveries, commands, messages, media cascade`;
    const inst = await instance(true);
    const old = await events(inst, 3, 400);
    await finish(old, 400);
    await sql`insert into media (id, instance_id, mimetype, size, data, created_at) values ('ancient', ${inst}, 'image/png', 1, '\\x00', now() - interval '400 days')`;
    const result = await job({ eventsDays: 0, deliveriesDays: 0, mediaDays: 0 }).runOnce();
    expect(result).toMatchObject({ skipped: false, pruned: { webhook_deliveries: 0, events: 0, commands: 0, media: 0 } });
    expect(await count('events')).toBe(3);
    expect(await count('webhook_deliveries')).toBe(3);
    expect(await count('media')).toBe(1);
    // Deliveries kept forever hold their events too (an event goes only once it has no delivery left).
    expect(await job({ deliveriesDays: 0 }).runOnce()).toMatchObject({ pruned: { webhook_deliveries: 0, events: 0, media: 1 } });
    expect(await count('events')).toBe(3);
  });

  test('works in batches of batchSize, at most maxBatches per table per pass, and converges over passes', async () => {
    await sql`truncate events, webhook_deliveries, commands, messages, media cascade`;
    const inst = await instance(false);
    await events(inst, 25, 60);
    await events(inst, 2, 1);
    const j = job({ batchSize: 10, maxBatches: 2 });
    expect(await j.runOnce()).toMatchObject({ pruned: { events: 20 } });
    expect(await count('events')).toBe(7);
    expect(await j.runOnce()).toMatchObject({ pruned: { events: 5 } });
    expect(await j.runOnce()).toMatchObject({ pruned: { events: 0 } });
    expect(await count('events')).toBe(2);
  });

  test('one replica at a time: a pass while another holds the lock skips and prunes nothing', async () => {
    await sql`truncate events, webhook_deliveries, commands, messages, media cascade`;
    const inst = await instance(false);
    await events(inst, 30, 60);

    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const aMetrics = new GatewayMetrics({ defaults: false });
    const bMetrics = new GatewayMetrics({ defaults: false });
    const a = job({ batchSize: 10, onLocked: () => (locked(), released) }, aMetrics);
    const b = job({ batchSize: 10 }, bMetrics);

    const first = a.runOnce();
    await isLocked;
    // The lock is visible to the database, on a session of a's own.
    expect(await count('pg_locks', sql`locktype = 'advisory' and objid = ${RETENTION_LOCK}::oid and objsubid = 1 and granted`)).toBe(1);
    expect(await b.runOnce()).toEqual({ skipped: true });
    expect(await count('events')).toBe(30);
    expect(await prunedMetric(bMetrics)).toEqual({});
    expect((await bMetrics.retentionLastRun.get()).values).toEqual([{ value: 0, labels: {} }] as never);

    release();
    expect(await first).toMatchObject({ skipped: false, pruned: { events: 30 } });
    expect(await prunedMetric(aMetrics)).toMatchObject({ events: 30 });
    // Released at the end of the pass: b runs the next one.
    await until('the retention lock is free', async () => (await b.runOnce()).skipped === false, 5000);
  });

  test('two jobs started together on one database never prune the same rows twice', async () => {
    await sql`truncate events, webhook_deliveries, commands, messages, media cascade`;
    const inst = await instance(false);
    await events(inst, 50, 60);
    const results = await Promise.all([job({ batchSize: 5 }).runOnce(), job({ batchSize: 5 }).runOnce()]);
    const total = results.reduce((n, r) => n + (r.skipped ? 0 : r.pruned.events), 0);
    expect(total).toBe(50);
    expect(await count('events')).toBe(0);
  });

  test('start() runs passes on its timer and stop() ends them', async () => {
    await sql`truncate events, webhook_deliveries, commands, messages, media cascade`;
    const inst = await instance(false);
    await events(inst, 3, 60);
    const metrics = new GatewayMetrics({ defaults: false });
    const j = job({ intervalMs: 20 }, metrics);
    j.start();
    await until('the timer pruned the old events', async () => (await count('events')) === 0, 10_000);
    await until('the last run recorded', async () => ((await metrics.retentionLastRun.get()).values[0]?.value ?? 0) > 0, 5000);
    await j.stop();
  });
});
