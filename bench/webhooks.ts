/**
 * Webhook benchmark: deliveries per second from one gateway to a receiver on
 * loopback (a burst of events recorded at once), and the time from an event
 * being recorded to its delivery at a paced rate. A real gateway process on
 * a real Postgres; events are inserted straight into `events`, as the runtime
 * records them. Loopback only, bounded.
 *
 *   make bench     (or: node_modules/.bin/bun bench/webhooks.ts)
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { startEmbeddedPostgres } from '../gateway/src/db/embedded';
import { createLogger } from '../gateway/src/logging/logger';
import { spawnGateway } from '../tests/support/gateway-process';
import { until } from '../tests/support/poll';
import { printTable } from './table';

const BURST = 5000;
const PACED = { rate: 200, seconds: 5 };

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;
const rows: [string, string][] = [];

const dir = await mkdtemp(join(tmpdir(), 'wgs-bench-hooks-'));
await chmod(dir, 0o755);
const pg = await startEmbeddedPostgres({ dataDir: join(dir, 'db'), port: 0, logger: createLogger('warn') });
const sql = postgres(pg.url, { max: 2, onnotice: () => {} });
const arrivals = new Map<number, number>(); // event id → arrival ms
const receiver = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(req) {
    const id = Number(req.headers.get('webhook-id')!.slice(4));
    await req.arrayBuffer();
    if (!arrivals.has(id)) arrivals.set(id, Date.now());
    return new Response('ok');
  },
});
const g = await spawnGateway({ DATABASE_URL: pg.url, DATA_DIR: dir, ADMIN_API_SECRET: 'bench', LOG_LEVEL: 'warn', WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' });
try {
  await g.ready();
  const headers = { 'x-admin-api-secret': 'bench', 'content-type': 'application/json' };
  const user = (await (await fetch(`${g.url}/admin/users`, { method: 'POST', headers, body: JSON.stringify({ email: 'hooks@example.com' }) })).json()) as { apiKey: string };
  const auth = { authorization: `Bearer ${user.apiKey}`, 'content-type': 'application/json' };
  const inst = (await (await fetch(`${g.url}/api/instances`, { method: 'POST', headers: auth, body: JSON.stringify({ provider: 'sandbox', phone: '4915100000777' }) })).json()) as { id: number };
  const hook = await fetch(`${g.url}/api/instances/${inst.id}/webhooks`, {
    method: 'POST',
    headers: auth,
    body: JSON.stringify({ url: `http://127.0.0.1:${receiver.port}/hook`, events: ['message.received'] }),
  });
  if (hook.status !== 201) throw new Error(`subscribe: ${hook.status}`);

  // 1. burst: BURST events in one statement, time until the last is delivered
  const t0 = Date.now();
  const ids = (await sql`
    insert into events (instance_id, type, data)
    select ${inst.id}, 'message.received', jsonb_build_object('id', 'B' || n, 'from', '4477000000', 'type', 'text', 'text', 'burst ' || n)
    from generate_series(1, ${BURST}) n returning id`).map((r) => Number(r.id));
  await until('burst delivered', () => ids.every((id) => arrivals.has(id)), 120_000, 20);
  const seconds = (Math.max(...ids.map((id) => arrivals.get(id)!)) - t0) / 1000;
  rows.push([`burst of ${BURST} events recorded at once → all delivered`, `${(BURST / seconds).toFixed(0)} deliveries/s (${seconds.toFixed(2)} s)`]);

  // 2. paced: event recorded → delivered
  const latencies: number[] = [];
  const created = new Map<number, number>();
  const start = Date.now();
  for (let i = 0; i < PACED.rate * PACED.seconds; i++) {
    const due = start + (i * 1000) / PACED.rate;
    if (due > Date.now()) await Bun.sleep(due - Date.now());
    const [row] = await sql`insert into events (instance_id, type, data) values (${inst.id}, 'message.received', ${JSON.stringify({ id: `P${i}`, from: '1', type: 'text', text: 'p' })}::jsonb) returning id`;
    created.set(Number(row!.id), Date.now());
  }
  await until('paced delivered', () => [...created.keys()].every((id) => arrivals.has(id)), 60_000, 20);
  for (const [id, at] of created) latencies.push(arrivals.get(id)! - at);
  rows.push([
    `paced ${PACED.rate} events/s for ${PACED.seconds} s: event recorded → delivered`,
    `p50 ${pct(latencies, 0.5).toFixed(0)} ms, p99 ${pct(latencies, 0.99).toFixed(0)} ms, max ${Math.max(...latencies).toFixed(0)} ms`,
  ]);
} finally {
  await g.stop();
  receiver.stop(true);
  await sql.end();
  await pg.stop();
  await rm(dir, { recursive: true, force: true });
}

printTable('webhooks benchmark', rows, []);
