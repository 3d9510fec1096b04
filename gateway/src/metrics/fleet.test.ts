import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gauge } from 'prom-client';
import { until } from '../../../tests/support/poll';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/postgres';
import { nodeLoads } from '../scheduler/loads';
import { fleetCollectors, registerFleetCollectors, SIZED_TABLES, type Query } from './fleet';
import { GatewayMetrics } from './metrics';

let t: TestDatabase;
let metrics: GatewayMetrics;
let dataDir: string;
const ids: Record<string, number> = {};

/** A gauge's series as `labels → value`, labels written `a=x,b=y` in the gauge's label order. */
async function series(gauge: Gauge<string>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await gauge.get()).values) out[Object.values(v.labels).join(',')] = v.value;
  return out;
}

async function scrape(): Promise<string> {
  const errors: unknown[] = [];
  const text = await metrics.text((err) => errors.push(err));
  expect(errors).toEqual([]);
  return text;
}

beforeAll(async () => {
  t = await createTestDatabase();
  dataDir = mkdtempSync(join(tmpdir(), 'wgs-fleet-'));
  metrics = new GatewayMetrics({ defaults: false });
  registerFleetCollectors(metrics, t.database, { dataDir });
  const { sql } = t.database;
  const [user] = await sql`insert into users (email) values ('fleet@example.com') returning id`;
  await sql`update nodes set status = 'ready', capacity_millicpu = 4000, capacity_memory_bytes = ${8 * 2 ** 30} where name = 'local'`;
  const [dock] = await sql`insert into nodes (name, engine, endpoint, status, reported_millicpu, reported_memory_bytes)
                           values ('dock', 'docker', 'unix:///var/run/docker.sock', 'unreachable', 2000, ${2 * 2 ** 30}) returning id`;
  await sql`insert into nodes (name, engine, endpoint, status, draining_since) values ('drained', 'docker', 'tcp://10.0.0.9:2376', 'ready', now())`;
  const [local] = await sql`select id from nodes where name = 'local'`;
  ids.dock = dock!.id;
  const insert = (phone: string, provider: string, nodeId: number | null, status: string, state: string, cpu: string | null, memory: string | null, target: number | null = null) =>
    sql`insert into instances (user_id, node_id, target_node_id, phone_number, provider, status, state, cpu_limit, memory_limit)
        values (${user!.id}, ${nodeId}, ${target}, ${phone}, ${provider}, ${status}, ${state}, ${cpu}, ${memory}) returning id`.then((r) => r[0]!.id as number);
  ids.a = await insert('15550000001', 'sandbox', local!.id, 'running', 'connected', '0.5', '512m');
  ids.b = await insert('15550000002', 'sandbox', local!.id, 'running', 'connected', '0.5', '512m');
  ids.c = await insert('15550000003', 'whatsmeow', dock!.id, 'stopped', 'starting', '1', null);
  ids.d = await insert('15550000004', 'sandbox', null, 'creating', 'starting', null, null);
  // Moving from local to dock: its limits count on both until the move ends.
  ids.e = await insert('15550000005', 'sandbox', local!.id, 'migrating', 'connected', '0.25', '256m', dock!.id);

  await sql`insert into commands (instance_id, name, args, created_at) values (${ids.a}, 'send', '{}', now() - interval '120 seconds')`;
  await sql`insert into commands (instance_id, name, args) values (${ids.a}, 'send', '{}'), (${ids.b}, 'send', '{}'), (${ids.c}, 'logout', '{}')`;
  await sql`insert into commands (instance_id, name, args, status) values (${ids.a}, 'read', '{}', 'done')`;

  await sql`insert into webhooks (instance_id, url, secret_encrypted) values (${ids.a}, 'https://example.com/hook', 'x')`;
  await sql`insert into webhooks (instance_id, url, secret_encrypted, enabled, disabled_reason) values (${ids.b}, 'https://example.com/gone', 'x', false, '410')`;
  // The outbox trigger adds one delivery per event for the enabled subscription (none for b's disabled one).
  await sql`insert into events (instance_id, type, data) values (${ids.a}, 'message.received', '{}'), (${ids.a}, 'message.received', '{}'), (${ids.b}, 'message.received', '{}')`;
  await sql`update webhook_deliveries set created_at = now() - interval '60 seconds' where id = (select min(id) from webhook_deliveries)`;
});
afterAll(async () => {
  await t.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('fleet gauges', () => {
  test('instances by provider, node (none without one), status and state', async () => {
    await scrape();
    expect(await series(metrics.instances)).toEqual({
      'sandbox,local,running,connected': 2,
      'whatsmeow,dock,stopped,starting': 1,
      'sandbox,none,creating,starting': 1,
      'sandbox,local,migrating,connected': 1,
    });
  });

  test('pending commands by name and the oldest one', async () => {
    await scrape();
    expect(await series(metrics.commandsPending)).toEqual({ send: 3, logout: 1 });
    const [oldest] = (await metrics.commandsOldestPending.get()).values;
    expect(oldest!.value).toBeGreaterThanOrEqual(119);
    expect(oldest!.value).toBeLessThan(300);
  });

  test('outbox depth, its oldest entry, and disabled subscriptions', async () => {
    await scrape();
    expect((await metrics.outboxPending.get()).values[0]!.value).toBe(2);
    const oldest = (await metrics.outboxOldestPending.get()).values[0]!.value;
    expect(oldest).toBeGreaterThanOrEqual(59);
    expect(oldest).toBeLessThan(300);
    expect((await metrics.subscriptionsDisabled.get()).values[0]!.value).toBe(1);
  });

  test('nodes: up only when ready and not drained; capacity configured or reported; reserved as the scheduler counts it', async () => {
    await scrape();
    expect(await series(metrics.nodeUp)).toEqual({ 'local,process,ready': 1, 'dock,docker,unreachable': 0, 'drained,docker,draining': 0 });
    expect(await series(metrics.nodeCapacityCpu)).toEqual({ local: 4, dock: 2 }); // drained: nothing known, no series
    expect(await series(metrics.nodeCapacityMemory)).toEqual({ local: 8 * 2 ** 30, dock: 2 * 2 ** 30 });
    // local: 0.5 + 0.5 + 0.25 (the moving one); dock: 1 + 0.25 (its move target).
    expect(await series(metrics.nodeReservedCpu)).toEqual({ local: 1.25, dock: 1.25, drained: 0 });
    expect(await series(metrics.nodeReservedMemory)).toEqual({ local: 1280 * 2 ** 20, dock: 256 * 2 ** 20, drained: 0 });
    // The same sums as placement's own view.
    for (const load of await nodeLoads(t.database.db)) {
      expect((await series(metrics.nodeReservedCpu))[load.name]).toBe(load.used.millicpu / 1000);
      expect((await series(metrics.nodeReservedMemory))[load.name]).toBe(load.used.memoryBytes);
    }
  });

  test('sizes of the large tables and the database; free space of DATA_DIR', async () => {
    await scrape();
    const sizes = await series(metrics.tableSize);
    expect(Object.keys(sizes).sort()).toEqual([...SIZED_TABLES].sort());
    expect(sizes.events).toBeGreaterThan(0);
    const database = (await metrics.databaseSize.get()).values[0]!.value;
    expect(database).toBeGreaterThan(Object.values(sizes).reduce((a, b) => a + b, 0));
    expect((await metrics.dataDirFree.get()).values[0]!.value).toBeGreaterThan(0);
  });

  test('pool: connections this client has open, and those in a query or a transaction', async () => {
    const { sql } = t.database;
    // A transaction held open on one connection; the collector's query runs on another and does not count itself.
    await sql.begin(async (tx) => {
      await tx`select 1`;
      await scrape();
      expect((await metrics.dbPoolInUse.get()).values[0]!.value).toBe(1);
      expect((await metrics.dbPoolSize.get()).values[0]!.value).toBeGreaterThanOrEqual(2);
    });
    await scrape();
    expect((await metrics.dbPoolInUse.get()).values[0]!.value).toBe(0);
  });

  test('series whose rows are gone disappear at the next scrape', async () => {
    const { sql } = t.database;
    await sql`delete from instances where id = ${ids.c!}`; // the only whatsmeow, the only one on dock (its commands go with it)
    await sql`update commands set status = 'done' where name = 'send'`;
    await sql`update webhook_deliveries set status = 'succeeded'`;
    await sql`update webhooks set enabled = true`;
    await sql`delete from nodes where name = 'drained'`;
    await scrape();
    expect(await series(metrics.instances)).toEqual({
      'sandbox,local,running,connected': 2,
      'sandbox,none,creating,starting': 1,
      'sandbox,local,migrating,connected': 1,
    });
    expect(await series(metrics.commandsPending)).toEqual({});
    expect((await metrics.commandsOldestPending.get()).values[0]!.value).toBe(0);
    expect((await metrics.outboxPending.get()).values[0]!.value).toBe(0);
    expect((await metrics.outboxOldestPending.get()).values[0]!.value).toBe(0);
    expect((await metrics.subscriptionsDisabled.get()).values[0]!.value).toBe(0);
    expect(Object.keys(await series(metrics.nodeUp)).sort()).toEqual(['dock,docker,unreachable', 'local,process,ready']);
    expect(await series(metrics.nodeReservedCpu)).toEqual({ local: 1.25, dock: 0.25 });
  });

  test('each collector issues one query', async () => {
    const counts: number[] = [];
    const collectors = fleetCollectors(new GatewayMetrics({ defaults: false }), async () => [], { applicationName: 'x', dataDir });
    for (const name of Object.keys(collectors)) {
      let n = 0;
      const counting: Query = async (statement) => {
        n++;
        return [...(await t.database.db.execute<Record<string, unknown>>(statement))];
      };
      const collect = fleetCollectors(new GatewayMetrics({ defaults: false }), counting, { applicationName: 'x', dataDir })[name]!;
      await collect();
      await collect(); // a second scrape right after
      counts.push(n);
    }
    expect(Object.keys(collectors).sort()).toEqual(['commands', 'dataDir', 'instances', 'nodes', 'outbox', 'pool', 'storage']);
    // dataDir reads the filesystem, not the database; sizes are read again only after STORAGE_REFRESH_MS.
    expect(counts).toEqual(Object.keys(collectors).map((name) => (name === 'dataDir' ? 0 : name === 'storage' ? 1 : 2)));
  });

  test('sizes: a stale reading refreshes in the background, the scrape does not wait for it', async () => {
    const m = new GatewayMetrics({ defaults: false });
    let calls = 0;
    let release: () => void = () => {};
    const collectors = fleetCollectors(
      m,
      async (statement) => {
        calls++;
        if (calls === 2) await new Promise<void>((r) => (release = r)); // the refresh hangs until released
        return [...(await t.database.db.execute<Record<string, unknown>>(statement))];
      },
      { storageRefreshMs: 0 },
    );
    await collectors.storage!(); // first: waits
    const first = (await m.databaseSize.get()).values[0]!.value;
    expect(first).toBeGreaterThan(0);
    await collectors.storage!(); // stale at once: starts a refresh, serves the last value
    expect(calls).toBe(2);
    expect((await m.databaseSize.get()).values[0]!.value).toBe(first);
    release();
    await until('refreshed', async () => {
      await collectors.storage!();
      return calls >= 3;
    });
  });

  test('a failing collector is reported and its series vanish instead of going stale', async () => {
    const m = new GatewayMetrics({ defaults: false });
    let fail = false;
    const collectors = fleetCollectors(m, async (statement) => {
      if (fail) throw new Error('database away');
      return [...(await t.database.db.execute<Record<string, unknown>>(statement))];
    });
    await collectors.instances!();
    expect(Object.keys(await series(m.instances)).length).toBeGreaterThan(0);
    fail = true;
    await expect(collectors.instances!()).rejects.toThrow('database away');
    expect(await series(m.instances)).toEqual({});
  });

  test('no series carries an instance, tenant or user label (only the opt-in per-instance worker ones)', async () => {
    const text = await scrape();
    const labelled = text.split('\n').filter((l) => l && !l.startsWith('#') && l.includes('{'));
    expect(labelled.length).toBeGreaterThan(10);
    for (const line of labelled) {
      if (line.startsWith('wgs_instance_worker_')) continue;
      expect(line).not.toMatch(/[{,](instance|instance_id|tenant|user|user_id|phone)=/);
    }
  });

  test('without DATA_DIR or a pool name, those gauges are left out rather than read 0', async () => {
    const m = new GatewayMetrics({ defaults: false });
    registerFleetCollectors(m, { db: t.database.db });
    const text = await m.text();
    expect(text).not.toContain('wgs_data_dir_free_bytes');
    expect(text).not.toContain('wgs_db_pool_connections');
    expect(text).toContain('wgs_instances{');
  });
});
