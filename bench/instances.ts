/**
 * Instances benchmark: time from `POST /api/instances` to a QR being served,
 * idle RSS of a sandbox worker (from /proc), `send` latency through one
 * gateway to one connected sandbox worker, paced at fixed rates and closed
 * loop, and the time from `kill -9` of a paired worker to `connected` again. A real gateway process on its embedded Postgres, loopback only, every
 * loop bounded in count and time.
 *
 *   make bench     (or: node_modules/.bin/bun bench/instances.ts)
 */
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnGateway } from '../tests/support/gateway-process';
import { until } from '../tests/support/poll';
import { printTable } from './table';

const INSTANCES = 5;
const RATES = [100, 250, 500];
const PACED_SECONDS = 8;
const CLOSED_LOOP = { concurrency: 16, seconds: 8, maxRequests: 40_000 };

const rows: [string, string][] = [];
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
};
const ms = (x: number) => `${x.toFixed(1)} ms`;

async function workerPid(instanceId: number): Promise<number | undefined> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const environ = await readFile(`/proc/${entry}/environ`, 'utf8').catch(() => '');
    if (environ.split('\0').includes(`WGS_INSTANCE_ID=${instanceId}`) && environ.includes('WGS_WORKER_TOKEN=')) return Number(entry);
  }
  return undefined;
}

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(status.match(/VmRSS:\s+(\d+) kB/)![1]) / 1024;
}

const dir = await mkdtemp(join(tmpdir(), 'wgs-bench-'));
await chmod(dir, 0o755);
const g = await spawnGateway({ DATA_DIR: dir, ADMIN_API_SECRET: 'bench', LOG_LEVEL: 'warn' });
try {
  await g.ready();
  const user = (await (
    await fetch(`${g.url}/admin/users`, {
      method: 'POST',
      headers: { 'x-admin-api-secret': 'bench', 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'bench@example.com' }),
    })
  ).json()) as { apiKey: string };
  const auth = { authorization: `Bearer ${user.apiKey}`, 'content-type': 'application/json' };
  const api = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    fetch(`${g.url}${path}`, { method, headers: { ...auth, ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });

  // 1. create → QR served
  const createMs: number[] = [];
  const qrMs: number[] = [];
  const ids: number[] = [];
  for (let i = 0; i < INSTANCES; i++) {
    const t0 = performance.now();
    const res = await api('POST', '/api/instances', { provider: 'sandbox', phone: `4915100${String(i).padStart(5, '0')}` });
    if (res.status !== 200) throw new Error(`create: ${res.status} ${await res.text()}`);
    const { id } = (await res.json()) as { id: number };
    createMs.push(performance.now() - t0);
    await until('QR', async () => (await api('GET', `/api/instances/${id}/qr`)).status === 200, 10_000, 5);
    qrMs.push(performance.now() - t0);
    ids.push(id);
  }
  rows.push([`POST /api/instances → 200 (worker running), ${INSTANCES} instances`, `median ${ms(pct(createMs, 0.5))}, max ${ms(Math.max(...createMs))}`]);
  rows.push([`POST /api/instances → first QR PNG served`, `median ${ms(pct(qrMs, 0.5))}, max ${ms(Math.max(...qrMs))}`]);

  // 2. idle RSS of sandbox workers
  await Bun.sleep(2000);
  const rss: number[] = [];
  for (const id of ids) {
    const pid = await workerPid(id);
    if (pid) rss.push(await rssMiB(pid));
  }
  rows.push([`sandbox worker VmRSS idle (${rss.length} workers)`, `median ${pct(rss, 0.5).toFixed(1)} MiB, max ${Math.max(...rss).toFixed(1)} MiB`]);

  // 3. sends through one gateway to one paired worker
  const id = ids[0]!;
  const scan = await api('POST', `/api/instances/${id}/sandbox/scan`);
  if (scan.status !== 200) throw new Error(`scan: ${scan.status}`);
  let seq = 0;
  const sendOnce = async (): Promise<number> => {
    const t0 = performance.now();
    const res = await api('POST', `/api/instances/${id}/send`, { to: '15550100000', text: `bench ${seq++}` });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`send: ${res.status}`);
    return performance.now() - t0;
  };
  for (const rate of RATES) {
    const latencies: number[] = [];
    const total = rate * PACED_SECONDS;
    const t0 = performance.now();
    const inflight: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const due = t0 + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await Bun.sleep(wait);
      inflight.push(sendOnce().then((l) => void latencies.push(l)));
    }
    await Promise.all(inflight);
    const achieved = total / ((performance.now() - t0) / 1000);
    rows.push([
      `send paced at ${rate}/s for ${PACED_SECONDS} s (${total} sends)`,
      `achieved ${achieved.toFixed(0)}/s, p50 ${ms(pct(latencies, 0.5))}, p99 ${ms(pct(latencies, 0.99))}, max ${ms(Math.max(...latencies))}`,
    ]);
  }
  {
    const latencies: number[] = [];
    const deadline = performance.now() + CLOSED_LOOP.seconds * 1000;
    let issued = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CLOSED_LOOP.concurrency }, async () => {
        while (performance.now() < deadline && issued < CLOSED_LOOP.maxRequests) {
          issued++;
          latencies.push(await sendOnce());
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    rows.push([
      `send closed loop, ${CLOSED_LOOP.concurrency} concurrent, ${CLOSED_LOOP.seconds} s`,
      `${(latencies.length / seconds).toFixed(0)}/s, p50 ${ms(pct(latencies, 0.5))}, p99 ${ms(pct(latencies, 0.99))}`,
    ]);
  }
  // 4. kill -9 of a paired worker → connected again (session from Postgres, no scan); one kill per instance
  const recovery: number[] = [];
  for (const victim of ids.slice(1, 4)) {
    const paired = await api('POST', `/api/instances/${victim}/sandbox/scan`);
    if (paired.status !== 200) throw new Error(`scan: ${paired.status}`);
    const pid = await workerPid(victim);
    const t0 = performance.now();
    process.kill(pid!, 'SIGKILL');
    await until('worker gone', async () => (await api('GET', `/api/instances/${victim}`).then((r) => r.json() as Promise<{ status: string }>)).status !== 'running', 10_000, 5);
    await until(
      'connected again',
      async () => {
        const i = (await (await api('GET', `/api/instances/${victim}`)).json()) as { status: string; state: string };
        return i.status === 'running' && i.state === 'connected';
      },
      30_000,
      5,
    );
    recovery.push(performance.now() - t0);
  }
  rows.push([
    `kill -9 of a paired sandbox worker → running and connected again, no scan (${recovery.length} instances)`,
    `median ${ms(pct(recovery, 0.5))}, max ${ms(Math.max(...recovery))}`,
  ]);

  const gatewayRss = await rssMiB(g.proc.pid);
  rows.push(['gateway VmRSS after the run', `${gatewayRss.toFixed(1)} MiB`]);
} finally {
  await g.stop();
  await rm(dir, { recursive: true, force: true });
}

printTable('instances benchmark', rows, ['send latency is end to end: HTTP request → gateway → worker → result → HTTP response (client, gateway, worker and Postgres share the machine)']);
