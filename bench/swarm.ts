/**
 * Swarm engine benchmark on a real single-node swarm on loopback
 * (tests/support/swarm.ts; initialised and left again when the daemon was
 * not in a swarm): `POST /api/instances` → first QR served with the worker
 * as a Swarm service, beside the same on a docker node; then a paired number
 * moving swarm → docker → swarm: the migrate call until `connected` on the
 * target. A real gateway process, host networking, loopback only; bounded
 * loops; services and containers removed after.
 *
 *   make bench     (or: node_modules/.bin/bun bench/swarm.ts; needs Docker)
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { LABELS } from '../gateway/src/engines/docker-spec';
import { buildImages, docker, dockerAvailable, removeLabelled } from '../tests/support/docker';
import { spawnGateway } from '../tests/support/gateway-process';
import { until } from '../tests/support/poll';
import { startSwarm } from '../tests/support/swarm';
import { pct, printTable } from './table';

const CREATES = 10;
const ROUNDS = 5;

if (!(await dockerAvailable())) process.exit(process.env.REQUIRE_DOCKER === '1' ? 1 : 0);
const images = buildImages();
const swarm = await startSwarm();
const gatewayId = `bench-${randomBytes(3).toString('hex')}`;
const dir = await mkdtemp(join(tmpdir(), 'wgs-bench-swarm-'));
await chmod(dir, 0o755);
const rows: [string, string][] = [];
const stats = (xs: number[]) => `median ${pct(xs, 0.5).toFixed(0)} ms, p90 ${pct(xs, 0.9).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms`;
const g = await spawnGateway({ DATA_DIR: dir, ADMIN_API_SECRET: 'bench', LOG_LEVEL: 'warn', GATEWAY_ID: gatewayId, WORKER_IMAGE: images.typescript, SANDBOX_RECEIPT_DELAYS_MS: '20,40,60' });
try {
  await g.ready();
  const admin = { 'x-admin-api-secret': 'bench', 'content-type': 'application/json' };
  const post = (path: string, body: unknown, headers: Record<string, string>) => fetch(`${g.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
  const user = (await (await post('/admin/users', { email: 's@example.com' }, admin)).json()) as { apiKey: string };
  const auth = { authorization: `Bearer ${user.apiKey}`, 'content-type': 'application/json' };
  for (const node of [
    { name: 'bench-swarm', engine: 'swarm', endpoint: 'unix:///var/run/docker.sock' },
    { name: 'bench-docker', engine: 'docker', endpoint: 'unix:///var/run/docker.sock' },
  ]) {
    const res = await post('/admin/nodes', node, admin);
    if (res.status !== 200) throw new Error(`node ${node.name}: ${res.status} ${await res.text()}`);
  }

  let phone = 0;
  const create = async (node: string) => {
    const t0 = performance.now();
    const res = await post('/api/instances', { provider: 'sandbox', phone: `4915100${String(phone++).padStart(5, '0')}`, node }, auth);
    if (res.status !== 200) throw new Error(`create: ${res.status} ${await res.text()}`);
    const { id } = (await res.json()) as { id: number };
    await until('QR', async () => (await fetch(`${g.url}/api/instances/${id}/qr`, { headers: auth })).status === 200, 20_000, 5);
    return { id, ms: performance.now() - t0 };
  };
  const remove = (id: number) => fetch(`${g.url}/api/instances/${id}`, { method: 'DELETE', headers: auth });

  // Create → QR, one at a time, each deleted before the next (so the numbers are not a growing node's).
  for (const node of ['bench-swarm', 'bench-docker']) {
    const ms: number[] = [];
    for (let i = 0; i < CREATES; i++) {
      const { id, ms: took } = await create(node);
      ms.push(took);
      await remove(id);
    }
    rows.push([`POST /api/instances → first QR served, ${node === 'bench-swarm' ? 'swarm service' : 'docker container'} (${CREATES} creates)`, stats(ms)]);
  }

  // A paired number moving swarm → docker → swarm.
  const { id } = await create('bench-swarm');
  await post(`/api/instances/${id}/sandbox/scan`, {}, auth);
  const moves: Record<string, number[]> = { 'bench-docker': [], 'bench-swarm': [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const target of ['bench-docker', 'bench-swarm']) {
      const t0 = performance.now();
      const res = await post(`/api/instances/${id}/migrate`, { target_node: target }, auth);
      if (res.status !== 200) throw new Error(`migrate to ${target}: ${res.status} ${await res.text()}`);
      const body = (await res.json()) as { instance: { state: string } };
      if (body.instance.state !== 'connected') throw new Error(`migrate to ${target}: state ${body.instance.state}`);
      moves[target]!.push(performance.now() - t0);
    }
  }
  rows.push([`migrate swarm → docker, call → connected (${ROUNDS} moves)`, stats(moves['bench-docker']!)]);
  rows.push([`migrate docker → swarm, call → connected (${ROUNDS} moves)`, stats(moves['bench-swarm']!)]);
  await remove(id);
} finally {
  await g.stop();
  for (const s of await docker.listServices({ filters: { label: [`${LABELS.gateway}=${gatewayId}`] } })) await docker.getService(s.ID).remove().catch(() => {});
  await removeLabelled(`${LABELS.gateway}=${gatewayId}`);
  await swarm.close();
  await rm(dir, { recursive: true, force: true });
}

printTable('swarm benchmark', rows, [`single-node swarm on loopback (${swarm.initialised ? 'initialised for this run' : 'the daemon\'s own'}), host networking`]);
