/**
 * Docker engine benchmark: `POST /api/instances` → first QR served with the
 * worker in a container, and memory per idle sandbox container, from /proc
 * (VmRSS of the worker process) and from the cgroup (memory.usage_in_bytes),
 * for 1, 10 and 50 instances on one node. A real gateway process, the
 * real daemon, host networking, loopback only; containers removed after.
 *
 *   make bench     (or: node_modules/.bin/bun bench/docker.ts; needs Docker)
 */
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { LABELS } from '../gateway/src/engines/docker-spec';
import { buildImages, docker, dockerAvailable, removeLabelled } from '../tests/support/docker';
import { spawnGateway } from '../tests/support/gateway-process';
import { until } from '../tests/support/poll';
import { printTable } from './table';

const STEPS = [1, 10, 50];
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;
const MiB = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

if (!(await dockerAvailable())) process.exit(process.env.REQUIRE_DOCKER === '1' ? 1 : 0);
const images = buildImages();
// Containers an interrupted earlier run left behind would hold the names wgs-<id>.
for (const c of await docker.listContainers({ all: true, filters: { label: [LABELS.gateway] } })) {
  if (c.Labels[LABELS.gateway]?.startsWith('bench-')) await docker.getContainer(c.Id).remove({ force: true });
}
const gatewayId = `bench-${randomBytes(3).toString('hex')}`;
const dir = await mkdtemp(join(tmpdir(), 'wgs-bench-docker-'));
await chmod(dir, 0o755);
const rows: [string, string][] = [];
const g = await spawnGateway({ DATA_DIR: dir, ADMIN_API_SECRET: 'bench', LOG_LEVEL: 'warn', GATEWAY_ID: gatewayId, WORKER_IMAGE: images.typescript, WORKER_IMAGE_WHATSMEOW: images.whatsmeow });
try {
  await g.ready();
  const admin = { 'x-admin-api-secret': 'bench', 'content-type': 'application/json' };
  const user = (await (await fetch(`${g.url}/admin/users`, { method: 'POST', headers: admin, body: JSON.stringify({ email: 'd@example.com' }) })).json()) as { apiKey: string };
  const node = await fetch(`${g.url}/admin/nodes`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'bench-docker', engine: 'docker', endpoint: 'unix:///var/run/docker.sock' }) });
  if (node.status !== 200) throw new Error(`node: ${node.status}`);
  const auth = { authorization: `Bearer ${user.apiKey}`, 'content-type': 'application/json' };

  const qrMs: number[] = [];
  let created = 0;
  for (const target of STEPS) {
    while (created < target) {
      const t0 = performance.now();
      const res = await fetch(`${g.url}/api/instances`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ provider: 'sandbox', phone: `4915100${String(created).padStart(5, '0')}`, node: 'bench-docker' }),
      });
      if (res.status !== 200) throw new Error(`create: ${res.status} ${await res.text()}`);
      const { id } = (await res.json()) as { id: number };
      await until('QR', async () => (await fetch(`${g.url}/api/instances/${id}/qr`, { headers: auth })).status === 200, 20_000, 5);
      qrMs.push(performance.now() - t0);
      created++;
    }
    await Bun.sleep(3000); // idle
    const rss: number[] = [];
    const cgroup: number[] = [];
    for (const c of await docker.listContainers({ filters: { label: [`${LABELS.gateway}=${gatewayId}`] } })) {
      const info = await docker.getContainer(c.Id).inspect();
      // PID 1 is docker-init; the worker is its child.
      const children = (await readFile(`/proc/${info.State.Pid}/task/${info.State.Pid}/children`, 'utf8')).trim().split(/\s+/);
      const status = await readFile(`/proc/${children[0]}/status`, 'utf8');
      rss.push(Number(status.match(/VmRSS:\s+(\d+) kB/)![1]) * 1024);
      const usage = await readFile(`/sys/fs/cgroup/memory/docker/${c.Id}/memory.usage_in_bytes`, 'utf8').catch(() => '');
      if (usage) cgroup.push(Number(usage));
    }
    rows.push([
      `${target} idle sandbox container(s): memory per container`,
      `VmRSS median ${MiB(pct(rss, 0.5))}, max ${MiB(Math.max(...rss))}; cgroup usage median ${cgroup.length ? MiB(pct(cgroup, 0.5)) : 'n/a'}`,
    ]);
  }
  rows.unshift([`POST /api/instances → first QR served, docker engine (${qrMs.length} creates)`, `median ${pct(qrMs, 0.5).toFixed(0)} ms, p90 ${pct(qrMs, 0.9).toFixed(0)} ms, max ${Math.max(...qrMs).toFixed(0)} ms`]);
} finally {
  await g.stop();
  await removeLabelled(`${LABELS.gateway}=${gatewayId}`);
  await rm(dir, { recursive: true, force: true });
}

printTable('docker benchmark', rows, ['cgroup v1']);
