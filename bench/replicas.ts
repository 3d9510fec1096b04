/**
 * Gateway replicas benchmark: two real gateway processes on one Postgres
 * database (the test server's), sandbox workers on the process engine, every
 * worker given both URLs. Reports
 *
 * - leader failover: the leader SIGKILLed → the other replica says it leads
 *   (GET /admin/replicas polled every 20 ms), ROUNDS times (the killed one is
 *   started again as a follower in between);
 * - sends/s in a closed loop (CALLERS concurrent, SECONDS each): through one
 *   replica to a worker it holds; through both, alternating, to that worker
 *   (half the sends cross replicas through the database); through both, each
 *   replica sending for the worker it holds (two numbers).
 *
 * Loopback only; every loop is bounded (rounds, seconds, a deadline).
 *
 *   node_modules/.bin/bun bench/replicas.ts
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../gateway/src/lib/net';
import { createTestDatabase, startTestServer } from '../tests/support/postgres';
import { gatewayApi, spawnGateway, type GatewayProcess } from '../tests/support/gateway-process';
import { replicasView, workerHolder } from '../tests/support/replicas';
import { until } from '../tests/support/poll';
import { pct, printTable } from './table';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const CALLERS = 8;

const stopServer = await startTestServer();
const db = await createTestDatabase();
const dirs: string[] = [];
const ports = { a: await freePort(), b: await freePort() };
const webhookKey = randomBytes(32).toString('base64');
const gateways: Partial<Record<'a' | 'b', GatewayProcess>> = {};
const rows: string[][] = [];

async function start(name: 'a' | 'b'): Promise<GatewayProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'wgs-bench-replicas-'));
  await chmod(dir, 0o755);
  dirs.push(dir);
  const other = name === 'a' ? 'b' : 'a';
  const g = await spawnGateway(
    {
      DATABASE_URL: db.url,
      ADMIN_API_SECRET: 's', // gatewayApi's
      DATA_DIR: dir,
      PORT: String(ports[name]),
      GATEWAY_REPLICA_ID: name,
      WEBHOOK_SECRET_KEY: webhookKey,
      WORKER_GATEWAY_URL: `ws://127.0.0.1:${ports[name]},ws://127.0.0.1:${ports[other]}`,
      SANDBOX_RECEIPT_DELAYS_MS: '20,40,60',
      LOG_LEVEL: 'warn',
    },
    { ownProcessGroup: true },
  );
  await g.ready();
  gateways[name] = g;
  return g;
}

const json = gatewayApi;
const leaderOf = async (g: GatewayProcess) => (await replicasView(g).catch(() => null))?.leader;
const holderOf = (id: number) => workerHolder(db.database.sql, id);

try {
  await start('a');
  await start('b');

  // ---------------------------------------------------------------- failover
  const failover: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const leader = (await leaderOf(gateways.a!)) as 'a' | 'b';
    const follower = leader === 'a' ? 'b' : 'a';
    const dead = gateways[leader]!;
    await dead.killGroup();
    const t0 = Date.now();
    await until('the follower leads', async () => (await leaderOf(gateways[follower]!)) === follower, 15_000, 20);
    failover.push(Date.now() - t0);
    await start(leader);
  }
  rows.push(['leader SIGKILLed → the other leads (median / max)', `${pct(failover, 0.5)} / ${Math.max(...failover)} ms (${failover.join(', ')})`]);

  // ---------------------------------------------------------------- sends/s
  const a = gateways.a!;
  const b = gateways.b!;
  const user = (await json(a, 'POST', '/admin/users', undefined, { email: 'bench@example.com' })).body as { apiKey: string };
  /** A paired instance held by `name` (workers spread over replicas by instance id; bounded tries). */
  const heldBy = async (name: 'a' | 'b') => {
    for (let i = 0; i < 8; i++) {
      const made = await json(gateways[name]!, 'POST', '/api/instances', user.apiKey, { provider: 'sandbox', phone: `49151077${String(Date.now() % 1e5).padStart(5, '0')}${i}` });
      if (made.status !== 200) throw new Error(`create: ${made.status} ${JSON.stringify(made.body)}`);
      await json(gateways[name]!, 'POST', `/api/instances/${made.body.id}/sandbox/scan`, user.apiKey);
      await until('connected', async () => (await json(a, 'GET', `/api/instances/${made.body.id}`, user.apiKey)).body?.state === 'connected', 15_000);
      if ((await holderOf(made.body.id)) === name) return made.body.id as number;
      await json(a, 'DELETE', `/api/instances/${made.body.id}`, user.apiKey);
    }
    throw new Error(`no instance held by ${name}`);
  };
  const x = await heldBy('a');
  const y = await heldBy('b');

  /** CALLERS callers for SECONDS; `pick(n)` says which replica and instance the n-th send goes through. */
  const closedLoop = async (pick: (n: number) => [GatewayProcess, number]) => {
    const latencies: number[] = [];
    let n = 0;
    let errors = 0;
    const until = Date.now() + SECONDS * 1000;
    await Promise.all(
      Array.from({ length: CALLERS }, async () => {
        for (let i = 0; i < 100_000 && Date.now() < until; i++) {
          const [g, id] = pick(n++);
          const t0 = performance.now();
          const r = await json(g, 'POST', `/api/instances/${id}/send`, user.apiKey, { to: '4915199990009', text: `bench ${n}` });
          if (r.status === 200) latencies.push(performance.now() - t0);
          else errors++;
        }
      }),
    );
    return `${(latencies.length / SECONDS).toFixed(0)}/s, p50 ${pct(latencies, 0.5).toFixed(0)} ms, p99 ${pct(latencies, 0.99).toFixed(0)} ms${errors ? `, ${errors} not 200` : ''}`;
  };
  rows.push([`one replica, its own worker (${CALLERS} callers)`, await closedLoop(() => [a, x])]);
  rows.push([`two replicas alternating, one worker (half cross replicas)`, await closedLoop((n) => [n % 2 ? b : a, x])]);
  rows.push([`two replicas, each for the worker it holds (two numbers)`, await closedLoop((n) => (n % 2 ? [b, y] : [a, x]))]);
  rows.push([`two replicas, each for the worker the other holds (all cross)`, await closedLoop((n) => (n % 2 ? [b, x] : [a, y]))]);

  printTable('gateway replicas', rows, [
    `two gateway processes on one Postgres (local), sandbox workers on the process engine; ${ROUNDS} failovers; closed loops of ${CALLERS} callers for ${SECONDS} s each`,
  ]);
} finally {
  for (const g of Object.values(gateways)) await g?.killGroup().catch(() => {});
  await db.drop().catch(() => {});
  await stopServer();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
}
