/**
 * Migration benchmark: a paired sandbox instance sends a message every
 * 100 ms while it moves between nodes; reported per kind of move: the time
 * from the migrate call to `connected` on the target (the call's answer), the
 * longest gap between two consecutive sends that reached `sent`, and whether
 * any send was lost. A real gateway process, real workers (processes, and
 * containers when Docker answers), loopback only; bounded loops.
 *
 *   make bench     (or: node_modules/.bin/bun bench/migration.ts)
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { LABELS } from '../gateway/src/engines/docker-spec';
import { buildImages, dockerAvailable, removeLabelled } from '../tests/support/docker';
import { spawnGateway } from '../tests/support/gateway-process';
import { until } from '../tests/support/poll';
import { printTable } from './table';

const ROUNDS = 5;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;

const withDocker = await dockerAvailable();
const images = withDocker ? buildImages() : undefined;
const gatewayId = `bench-${randomBytes(3).toString('hex')}`;
const dir = await mkdtemp(join(tmpdir(), 'wgs-bench-move-'));
await chmod(dir, 0o755);
const rows: [string, string][] = [];
const g = await spawnGateway({
  DATA_DIR: dir,
  ADMIN_API_SECRET: 'bench',
  LOG_LEVEL: 'warn',
  GATEWAY_ID: gatewayId,
  SANDBOX_RECEIPT_DELAYS_MS: '20,40,60',
  ...(images && { WORKER_IMAGE: images.typescript }),
});
try {
  await g.ready();
  const admin = { 'x-admin-api-secret': 'bench', 'content-type': 'application/json' };
  const post = (path: string, body: unknown, headers: Record<string, string>) =>
    fetch(`${g.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
  const user = (await (await post('/admin/users', { email: 'm@example.com' }, admin)).json()) as { apiKey: string };
  const auth = { authorization: `Bearer ${user.apiKey}`, 'content-type': 'application/json' };
  await post('/admin/nodes', { name: 'local-2', engine: 'process' }, admin);
  if (withDocker) {
    for (const name of ['dock-a', 'dock-b']) await post('/admin/nodes', { name, engine: 'docker', endpoint: 'unix:///var/run/docker.sock' }, admin);
  }

  const created = await post('/api/instances', { provider: 'sandbox', phone: '4915100099999', node: 'local' }, auth);
  if (created.status !== 200) throw new Error(`create: ${created.status} ${await created.text()}`);
  const { id } = (await created.json()) as { id: number };
  await post(`/api/instances/${id}/sandbox/scan`, {}, auth);

  /** Moves along `path` ROUNDS times while sending every 100 ms; one row per kind of move. */
  const measure = async (label: string, path: string[]) => {
    const moveMs: number[] = [];
    const sends: { id: string; status: number }[] = [];
    let moving = true;
    const loop = (async () => {
      for (let i = 0; i < 2000 && moving; i++) {
        const res = await post(`/api/instances/${id}/send`, { to: '15550100000', text: `m${i}` }, auth);
        sends.push({ id: ((await res.json()) as { id: string }).id, status: res.status });
        await Bun.sleep(100);
      }
    })();
    for (let r = 0; r < ROUNDS; r++) {
      for (const target of path) {
        const t0 = performance.now();
        const res = await post(`/api/instances/${id}/migrate`, { target_node: target }, auth);
        if (res.status !== 200) throw new Error(`migrate to ${target}: ${res.status} ${await res.text()}`);
        moveMs.push(performance.now() - t0);
        await Bun.sleep(300);
      }
    }
    moving = false;
    await loop;
    // Every send must end `sent` (or later); the gap is between consecutive sends' sent times.
    const sentAt: number[] = await until(
      'every send sent',
      async () => {
        const views = await Promise.all(sends.map(async (s) => (await (await fetch(`${g.url}/api/instances/${id}/messages/${s.id}`, { headers: auth })).json()) as any));
        return views.every((v) => v.timestamps?.sentAt) ? views.map((v) => new Date(v.timestamps.sentAt).getTime()) : null;
      },
      60_000,
      200,
    );
    const sorted = [...sentAt].sort((a, b) => a - b);
    const gap = Math.max(...sorted.slice(1).map((t, i) => t - sorted[i]!));
    const bad = sends.filter((s) => s.status !== 200 && s.status !== 202).length;
    rows.push([
      `${label} (${moveMs.length} moves, ${sends.length} sends every 100 ms)`,
      `call → connected median ${pct(moveMs, 0.5).toFixed(0)} ms, max ${Math.max(...moveMs).toFixed(0)} ms; longest gap between sends reaching sent ${gap.toFixed(0)} ms; ` +
        `202 answers ${sends.filter((s) => s.status === 202).length}; failed or lost ${bad + sends.length - sentAt.length}`,
    ]);
  };

  await measure('process → process', ['local-2', 'local']);
  if (withDocker) {
    await measure('process → docker → docker → process', ['dock-a', 'dock-b', 'local']);
  }
} finally {
  await g.stop();
  await removeLabelled(`${LABELS.gateway}=${gatewayId}`);
  await rm(dir, { recursive: true, force: true });
}

printTable('migration benchmark', rows, withDocker ? [] : ['no Docker: process moves only']);
