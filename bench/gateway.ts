/**
 * Gateway foundation benchmark: start-up time on the embedded Postgres (first
 * start and restart), request throughput and latency for an unauthenticated
 * and an API-key route, and the gateway's resident memory.
 *
 *   make bench        (or: node_modules/.bin/bun bench/gateway.ts)
 *
 * Loopback only; every loop is bounded in count. Prints a markdown table.
 */
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnGateway, type GatewayProcess } from '../tests/support/gateway-process';
import { printTable } from './table';

const REQUESTS = 4000;
const CONCURRENCY = 16;
const STARTS = 3;

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(status.match(/VmRSS:\s+(\d+) kB/)![1]) / 1024;
}

async function timedStart(dir: string): Promise<{ ms: number; g: GatewayProcess }> {
  const t0 = performance.now();
  const g = await spawnGateway({ DATA_DIR: dir, ADMIN_API_SECRET: 'bench', LOG_LEVEL: 'warn' });
  await g.ready();
  return { ms: performance.now() - t0, g };
}

async function load(url: string, headers: Record<string, string>) {
  const latencies: number[] = [];
  let next = 0;
  let failures = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < REQUESTS) {
        next++;
        const s = performance.now();
        const res = await fetch(url, { headers });
        await res.arrayBuffer();
        if (res.status !== 200) failures++;
        latencies.push(performance.now() - s);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
  return { rps: latencies.length / seconds, p50: pct(0.5), p99: pct(0.99), failures };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const rows: [string, string][] = [];
const dirs: string[] = [];
try {
  const firstStarts: number[] = [];
  const restarts: number[] = [];
  for (let i = 0; i < STARTS; i++) {
    const dir = await mkdtemp(join(tmpdir(), 'wgs-bench-'));
    await chmod(dir, 0o755);
    dirs.push(dir);
    const first = await timedStart(dir);
    firstStarts.push(first.ms);
    await first.g.stop();
    const again = await timedStart(dir);
    restarts.push(again.ms);
    await again.g.stop();
  }
  rows.push([`first start to /healthz 200 (initdb + migrate), median of ${STARTS}`, `${median(firstStarts).toFixed(0)} ms`]);
  rows.push([`restart to /healthz 200, median of ${STARTS}`, `${median(restarts).toFixed(0)} ms`]);

  const { g } = await timedStart(dirs[0]!);
  const idle = await rssMiB(g.proc.pid);
  const created = await fetch(`${g.url}/admin/users`, {
    method: 'POST',
    headers: { 'x-admin-api-secret': 'bench', 'content-type': 'application/json' },
    body: JSON.stringify({ email: `bench-${Date.now()}@example.com` }),
  }).then((r) => r.json() as Promise<{ apiKey: string }>);

  const health = await load(`${g.url}/healthz`, {});
  const me = await load(`${g.url}/api/me`, { authorization: `Bearer ${created.apiKey}` });
  const loaded = await rssMiB(g.proc.pid);
  await g.stop();

  for (const [name, r] of [['GET /healthz', health], ['GET /api/me (API key lookup in Postgres)', me]] as const) {
    rows.push([`${name}: ${REQUESTS} requests, ${CONCURRENCY} concurrent`, `${r.rps.toFixed(0)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, ${r.failures} non-200`]);
  }
  rows.push(['gateway VmRSS idle after start', `${idle.toFixed(1)} MiB`]);
  rows.push([`gateway VmRSS after ${2 * REQUESTS} requests`, `${loaded.toFixed(1)} MiB`]);
} finally {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
}

printTable('gateway benchmark', rows, []);
