/**
 * Worker footprint, side by side: idle VmRSS of the TypeScript worker
 * (sandbox provider) and of the Go whatsmeow worker, as processes of a real
 * gateway (5 of each, read from /proc after 5 s idle), their program sizes,
 * and their image sizes when Docker answers. The whatsmeow workers dial a
 * closed loopback port instead of WhatsApp, so they idle in `reconnecting`:
 * nothing leaves the machine.
 *
 *   make bench     (or: node_modules/.bin/bun bench/workers.ts; needs Go for the whatsmeow worker)
 */
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closedLoopbackPort, ensureWhatsmeowBinary, WHATSMEOW_BINARY } from '../tests/conformance/workers';
import { docker, dockerAvailable } from '../tests/support/docker';
import { spawnGateway } from '../tests/support/gateway-process';
import { until } from '../tests/support/poll';
import { printTable } from './table';
import { descendants } from './proc';

const PER_KIND = 5;
const MiB = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

await ensureWhatsmeowBinary();
const dir = await mkdtemp(join(tmpdir(), 'wgs-bench-workers-'));
await chmod(dir, 0o755);
const rows: [string, string][] = [];
const g = await spawnGateway({ DATA_DIR: dir, ADMIN_API_SECRET: 'bench', LOG_LEVEL: 'warn', WHATSMEOW_WS_URL: `ws://127.0.0.1:${await closedLoopbackPort()}/ws/chat` });

try {
  await g.ready();
  const admin = { 'x-admin-api-secret': 'bench', 'content-type': 'application/json' };
  const user = (await (await fetch(`${g.url}/admin/users`, { method: 'POST', headers: admin, body: JSON.stringify({ email: 'w@example.com' }) })).json()) as { apiKey: string };
  const auth = { authorization: `Bearer ${user.apiKey}`, 'content-type': 'application/json' };
  for (const provider of ['sandbox', 'whatsmeow']) {
    for (let i = 0; i < PER_KIND; i++) {
      const res = await fetch(`${g.url}/api/instances`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ provider, phone: `49151${provider === 'sandbox' ? 1 : 2}000${String(i).padStart(4, '0')}` }),
      });
      if (res.status !== 200) throw new Error(`create ${provider}: ${res.status} ${await res.text()}`);
    }
  }
  await until('every worker reporting', async () => {
    const list = (await (await fetch(`${g.url}/api/instances`, { headers: auth })).json()) as { state: string }[];
    return list.length === 2 * PER_KIND && list.every((i) => i.state === 'qr' || i.state === 'reconnecting');
  }, 30_000);
  await Bun.sleep(5000);
  const rss: Record<string, number[]> = { sandbox: [], whatsmeow: [] };
  for (const pid of await descendants(g.proc.pid)) {
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    const kind = cmdline[0]?.endsWith('wgs-whatsmeow') ? 'whatsmeow' : cmdline.some((a) => a.endsWith('workers/src/main.ts')) ? 'sandbox' : undefined;
    if (!kind) continue;
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    rss[kind]!.push(Number(status.match(/VmRSS:\s+(\d+) kB/)![1]) * 1024);
  }
  for (const [kind, values] of Object.entries(rss)) {
    if (values.length !== PER_KIND) throw new Error(`found ${values.length} ${kind} workers, expected ${PER_KIND}`);
    rows.push([
      `idle VmRSS, ${kind === 'sandbox' ? 'TypeScript worker (sandbox)' : 'Go whatsmeow worker'} (${values.length} processes)`,
      `median ${MiB(median(values))}, max ${MiB(Math.max(...values))}`,
    ]);
  }
  rows.push(['program size: Go whatsmeow worker (static, stripped)', MiB((await stat(WHATSMEOW_BINARY)).size)]);
  if (await dockerAvailable()) {
    for (const image of ['wgs-worker-ts:local', 'wgs-worker-whatsmeow:local']) {
      const info = await docker.getImage(image).inspect().catch(() => null);
      rows.push([`image size: ${image}`, info ? MiB(info.Size) : 'not built (make images)']);
    }
  }
} finally {
  await g.stop();
  await rm(dir, { recursive: true, force: true });
}

printTable('worker footprint', rows, []);
