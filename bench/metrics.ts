/**
 * Metrics benchmark: what GET /metrics costs on a large fleet, and what
 * counting costs the send path.
 *
 *   make bench     (or: node_modules/.bin/bun bench/metrics.ts)
 *
 * 1. Scrape cost: a database with 10,000 instances (100 tenants, 5 nodes,
 *    mixed providers, statuses and states), 1,000,000 events, 200,000
 *    commands (10,000 pending), 100,000 webhook deliveries (5,000 pending)
 *    and 200,000 messages, filled with generate_series straight into
 *    Postgres, then ANALYZEd. GET /metrics through the real app (every
 *    collector, over HTTP on loopback), median and p95 of 20 scrapes after
 *    3 warm-up ones, and each collector's query alone.
 *    Then 2,000 session schemas of 10 tables are added (each instance's
 *    worker keeps its session in a schema of its own) and the sizes query
 *    (pg_database_size stats every file) and the scrape are timed again.
 * 2. Send path: sends/s of one paired sandbox instance, closed loop (16
 *    callers, 8 s), with metrics and without, in the same run. "With": the
 *    real GatewayMetrics and a scrape of GET /metrics every second during
 *    the loop (Prometheus scrapes every 15 s by default: this is the
 *    pessimistic case). "Without": the same app whose metrics are switched
 *    off: every counter, gauge and histogram's inc/dec/set/observe is a
 *    no-op (what remains is the call itself), and nothing scrapes. Three
 *    rounds, the order alternating (with, without; without, with; ...), since
 *    the machine's load drifts.
 * 3. The counting calls themselves, 1,000,000 each: on a shared machine the
 *    end-to-end rows cannot resolve a few microseconds per send; these can.
 *
 * In process, on its own embedded Postgres (or TEST_DATABASE_URL's server),
 * loopback only, every loop bounded.
 */
import { tmpdir } from 'node:os';
import { Counter, Gauge, Histogram, Summary } from 'prom-client';
import { fleetCollectors } from '../gateway/src/metrics/fleet';
import { GatewayMetrics } from '../gateway/src/metrics/metrics';
import { createTestApp, type TestApp } from '../tests/support/app';
import { until } from '../tests/support/poll';
import { startTestServer } from '../tests/support/postgres';
import { pct, printTable } from './table';

const FLEET = { instances: 10_000, users: 100, nodes: 5, events: 1_000_000, commands: 200_000, pendingCommands: 10_000, deliveries: 100_000, pendingDeliveries: 5_000, messages: 200_000 };
const SCRAPES = 20;
const WARMUP = 3;
/** Session schemas added after the first measurements (a whatsmeow session has about 15 tables). */
const SESSION_SCHEMAS = { schemas: 2_000, tables: 10 };
const ROUNDS = 3;
const LOOP = { concurrency: 16, seconds: 8, maxRequests: 40_000 };

const rows: [string, string][] = [];
const ms = (x: number) => `${x.toFixed(1)} ms`;

// ------------------------------------------------------------ Postgres (as tests/support/preload.ts does)
const stopServer = await startTestServer();

/** Fills the app's database with the fleet above; returns how long it took. */
async function seed(t: TestApp): Promise<number> {
  const t0 = performance.now();
  const { sql } = t.db.database;
  await sql.begin(async (tx) => {
    // Bulk load: no per-row outbox trigger (the deliveries are generated below).
    await tx`set local session_replication_role = replica`;
    await tx`insert into nodes (name, engine, endpoint, status, reported_millicpu, reported_memory_bytes)
             select 'node' || n, 'docker', 'tcp://10.0.0.' || n || ':2376', (array['ready','ready','unreachable'])[1 + n % 3]::node_status, 16000, 64 * 2^30
             from generate_series(2, ${FLEET.nodes}) n`;
    await tx`insert into users (email) select 'tenant' || u || '@example.com' from generate_series(1, ${FLEET.users}) u`;
    await tx`insert into instances (user_id, node_id, phone_number, provider, status, state, desired_state, cpu_limit, memory_limit)
             select (select min(id) from users) + i % ${FLEET.users},
                    (select id from nodes order by id offset i % ${FLEET.nodes} limit 1),
                    '4915' || lpad(i::text, 9, '0'),
                    (array['whatsmeow','baileys','waba','sandbox'])[1 + i % 4]::provider,
                    (array['running','running','running','stopped','error','starting'])[1 + i % 6]::instance_status,
                    (array['connected','connected','connected','qr','reconnecting','logged_out','starting'])[1 + i % 7]::session_state,
                    'running', (array['0.25','0.5',null])[1 + i % 3], (array['256m','512m',null])[1 + i % 3]
             from generate_series(1, ${FLEET.instances}) i`;
    const [{ min }] = (await tx`select min(id)::int as min from instances`) as unknown as [{ min: number }];
    await tx`insert into events (instance_id, worker_event_id, type, data, created_at)
             select ${min} + e % ${FLEET.instances}, 'w' || e, (array['message.received','message.status','instance.status'])[1 + e % 3],
                    jsonb_build_object('id', 'MSG' || e, 'text', 'hello number ' || e), now() - make_interval(secs => e / 10.0)
             from generate_series(1, ${FLEET.events}) e`;
    await tx`insert into commands (instance_id, name, args, status, created_at)
             select ${min} + c % ${FLEET.instances}, (array['send','send','send','read','logout'])[1 + c % 5], '{"type":"text"}',
                    (case when c <= ${FLEET.pendingCommands} then 'pending' else 'done' end)::command_status, now() - make_interval(secs => c / 100.0)
             from generate_series(1, ${FLEET.commands}) c`;
    await tx`insert into webhooks (instance_id, url, secret_encrypted, enabled)
             select id, 'https://hooks.example.com/' || id, 'x', id % 50 <> 0 from instances`;
    await tx`insert into webhook_deliveries (webhook_id, event_id, status, created_at)
             select (select min(id) from webhooks) + d % ${FLEET.instances}, (select min(id) from events) + d,
                    (case when d <= ${FLEET.pendingDeliveries} then 'pending' else 'succeeded' end)::delivery_status, now() - make_interval(secs => d / 10.0)
             from generate_series(1, ${FLEET.deliveries}) d`;
    await tx`insert into messages (id, instance_id, "to", type, text, status)
             select 'msg_' || m, ${min} + m % ${FLEET.instances}, '4917000000', 'text', 'hi', 'read'
             from generate_series(1, ${FLEET.messages}) m`;
  });
  await sql`analyze`;
  return performance.now() - t0;
}

async function timeScrapes(url: string): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < WARMUP + SCRAPES; i++) {
    const t0 = performance.now();
    const res = await fetch(`${url}/metrics`);
    const body = await res.text();
    if (res.status !== 200 || !body.includes('wgs_instances{')) throw new Error(`scrape: ${res.status}`);
    if (i >= WARMUP) times.push(performance.now() - t0);
  }
  return times;
}

/** Switches every metric of `m` off: inc/dec/set/observe do nothing. */
function silence(m: GatewayMetrics): void {
  const noop = () => {};
  for (const metric of Object.values(m)) {
    if (metric instanceof Counter || metric instanceof Gauge || metric instanceof Histogram || metric instanceof Summary) {
      Object.assign(metric, { inc: noop, dec: noop, set: noop, observe: noop });
    }
  }
}

/** Sends/s of one paired sandbox instance, closed loop. */
async function sendRate(withMetrics: boolean): Promise<{ rate: number; p50: number; p99: number; scrapes: number }> {
  const t = await createTestApp({ listen: true });
  try {
    if (!withMetrics) silence(t.metrics);
    const user = await t.createUser();
    const created = await t.call('POST', '/api/instances', { key: user.apiKey, body: { provider: 'sandbox', phone: '491510000001' } });
    if (created.status !== 200) throw new Error(`create: ${created.status}`);
    const id = created.body.id as number;
    await t.call('POST', `/api/instances/${id}/sandbox/scan`, { key: user.apiKey });
    await until('connected', async () => (await t.call('GET', `/api/instances/${id}`, { key: user.apiKey })).body.state === 'connected');
    const headers = { authorization: `Bearer ${user.apiKey}`, 'content-type': 'application/json' };
    const latencies: number[] = [];
    let issued = 0;
    let scrapes = 0;
    let stop = false;
    const scraper = (async () => {
      while (withMetrics && !stop) {
        await (await fetch(`${t.url}/metrics`)).text();
        scrapes++;
        await Bun.sleep(1000);
      }
    })();
    const t0 = performance.now();
    const deadline = t0 + LOOP.seconds * 1000;
    await Promise.all(
      Array.from({ length: LOOP.concurrency }, async () => {
        while (performance.now() < deadline && issued < LOOP.maxRequests) {
          issued++;
          const s = performance.now();
          const res = await fetch(`${t.url}/api/instances/${id}/send`, { method: 'POST', headers, body: JSON.stringify({ to: '15550100000', text: `bench ${issued}` }) });
          await res.arrayBuffer();
          if (res.status !== 200) throw new Error(`send: ${res.status}`);
          latencies.push(performance.now() - s);
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    stop = true;
    await scraper;
    return { rate: latencies.length / seconds, p50: pct(latencies, 0.5), p99: pct(latencies, 0.99), scrapes };
  } finally {
    await t.close();
  }
}

try {
  // 1. scrape cost on a large fleet
  const big = await createTestApp({ listen: true });
  try {
    const seedMs = await seed(big);
    const times = await timeScrapes(big.url!);
    rows.push([`GET /metrics, ${FLEET.instances.toLocaleString('en')} instances, ${FLEET.events.toLocaleString('en')} events, median / p95 of ${SCRAPES}`, `${ms(pct(times, 0.5))} / ${ms(pct(times, 0.95))}`]);
    // Each collector alone (its one query, sizes uncached: fresh collectors each time), through the same pool.
    const query = async (s: Parameters<Parameters<typeof fleetCollectors>[1]>[0]) => [...(await big.db.database.db.execute<Record<string, unknown>>(s))];
    const fresh = () => fleetCollectors(big.metrics, query, { applicationName: big.db.database.applicationName!, dataDir: tmpdir() });
    const alone = async (name: string) => {
      const each: number[] = [];
      for (let i = 0; i < WARMUP + SCRAPES; i++) {
        const collect = fresh()[name]!;
        const t0 = performance.now();
        await collect();
        if (i >= WARMUP) each.push(performance.now() - t0);
      }
      return `${ms(pct(each, 0.5))} / ${ms(pct(each, 0.95))}`;
    };
    for (const name of Object.keys(fresh())) rows.push([`  collector ${name} alone, median / p95`, await alone(name)]);
    const body = await (await fetch(`${big.url}/metrics`)).text();
    rows.push(['  series in the scrape / bytes', `${body.split('\n').filter((l) => l && !l.startsWith('#')).length} / ${body.length}`]);
    rows.push(['  (filling the database: generate_series + ANALYZE)', `${(seedMs / 1000).toFixed(1)} s`]);

    // Session schemas: each instance's worker keeps its session in a schema of its own; pg_database_size stats every file.
    const s0 = performance.now();
    for (let i = 0; i < SESSION_SCHEMAS.schemas; i++) {
      await big.db.database.sql.unsafe(
        `create schema bench_s${i}; ${Array.from({ length: SESSION_SCHEMAS.tables }, (_, k) => `create table bench_s${i}.t${k} (id text primary key, v bytea);`).join(' ')}`,
      );
    }
    const schemasS = (performance.now() - s0) / 1000;
    rows.push([`with ${SESSION_SCHEMAS.schemas.toLocaleString('en')} session schemas × ${SESSION_SCHEMAS.tables} tables added (${schemasS.toFixed(0)} s to create)`, '']);
    rows.push(['  collector storage alone (uncached: pg_database_size), median / p95', await alone('storage')]);
    const after = await timeScrapes(big.url!);
    rows.push([`  GET /metrics (sizes refreshed every 60 s in the background), median / p95 of ${SCRAPES}`, `${ms(pct(after, 0.5))} / ${ms(pct(after, 0.95))}`]);
  } finally {
    await big.close();
  }

  // 2. send path with and without metrics, alternating (with, without, without, with, with, without)
  const results: Record<'with' | 'without', { rate: number; p50: number; p99: number; scrapes: number }[]> = { with: [], without: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? [true, false] : [false, true];
    for (const withMetrics of order) results[withMetrics ? 'with' : 'without'].push(await sendRate(withMetrics));
  }
  for (const variant of ['with', 'without'] as const) {
    const r = results[variant];
    rows.push([
      `send closed loop (${LOOP.concurrency} callers, ${LOOP.seconds} s), ${variant} metrics, median of ${ROUNDS} runs (each run)`,
      `${pct(r.map((x) => x.rate), 0.5).toFixed(0)}/s (${r.map((x) => `${x.rate.toFixed(0)}/s p50 ${ms(x.p50)} p99 ${ms(x.p99)}${variant === 'with' ? ` ${x.scrapes} scrapes` : ''}`).join('; ')})`,
    ]);
  }

  // 3. what one count costs: the calls a send makes (HTTP request + duration, send result, three receipts)
  const m = new GatewayMetrics({ defaults: false });
  const CALLS = 1_000_000;
  let t0 = performance.now();
  for (let i = 0; i < CALLS; i++) m.sends.inc({ provider: 'sandbox', type: 'text', result: 'sent' });
  const incNs = ((performance.now() - t0) * 1e6) / CALLS;
  t0 = performance.now();
  for (let i = 0; i < CALLS; i++) m.httpDuration.observe({ method: 'POST', route: '/api/instances/:id/send' }, 0.012);
  const observeNs = ((performance.now() - t0) * 1e6) / CALLS;
  rows.push([`one labelled counter inc / histogram observe (${CALLS.toLocaleString('en')} calls each)`, `${incNs.toFixed(0)} ns / ${observeNs.toFixed(0)} ns`]);
  rows.push(['  counting one send (HTTP: 1 inc + 1 observe; its result: 1 inc; up to 3 receipts: 3 inc)', `${((5 * incNs + observeNs) / 1000).toFixed(1)} µs`]);
} finally {
  await stopServer();
}

printTable('metrics benchmark', rows, [
  `load: ${FLEET.instances} instances on ${FLEET.nodes} nodes, ${FLEET.events} events, ${FLEET.commands} commands (${FLEET.pendingCommands} pending), ${FLEET.deliveries} webhook deliveries (${FLEET.pendingDeliveries} pending), ${FLEET.messages} messages`,
  'scrapes over HTTP on loopback, client, gateway and Postgres on the same machine; sends: one paired sandbox instance, end to end (HTTP → gateway → worker → result → HTTP)',
]);
