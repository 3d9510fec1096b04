/**
 * A gateway with swarm nodes on a real single-node Docker Swarm on loopback
 * (tests/support/swarm.ts), as an operator runs it: a number is one service
 * with its limits, linked and sending; a killed task is replaced with no
 * scan; the number moves inside the swarm, to a docker node and back; a
 * drained swarm node empties. One gateway for the file, to stay short.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ContainerTaskSpec } from 'dockerode';
import { LABELS } from '../../gateway/src/engines/docker-spec';
import { isUp, type SwarmTask } from '../../gateway/src/engines/swarm-spec';
import { buildImages, docker, dockerAvailable, removeLabelled, statusReasonSince } from '../support/docker';
import { gatewayApi as api, sendingThroughout, startGatewayProcess, waitConnected, waitRestored, type GatewayProcess } from '../support/gateway-process';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { until } from '../support/poll';
import { startSwarm, type TestSwarm } from '../support/swarm';

const enabled = await dockerAvailable();
const gatewayId = `e2e-swarm-${randomBytes(3).toString('hex')}`;
const cleanup: (() => Promise<unknown>)[] = [];
let swarm: TestSwarm | undefined;
let g: GatewayProcess;
let db: TestDatabase;
let key: string;

const services = (node?: string) =>
  docker.listServices({ filters: { label: [`${LABELS.gateway}=${gatewayId}`, ...(node ? [`${LABELS.node}=${node}`] : [])] } });
const containers = () => docker.listContainers({ all: true, filters: { label: [`${LABELS.gateway}=${gatewayId}`] } });
const tasksOf = async (serviceId: string) => (await docker.listTasks({ filters: { service: [serviceId] } })) as SwarmTask[];
const runningTask = async (serviceId: string) => (await tasksOf(serviceId)).find((t) => isUp(t) && t.DesiredState === 'running');

beforeAll(async () => {
  if (!enabled) return;
  const images = buildImages();
  swarm = await startSwarm();
  await swarm.label('wgs-zone', 'b');
  db = await createTestDatabase();
  cleanup.push(() => db.drop());
  const dir = await mkdtemp(join(tmpdir(), 'wgs-e2e-swarm-'));
  await chmod(dir, 0o755);
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  g = await startGatewayProcess(
    { DATABASE_URL: db.url, ADMIN_API_SECRET: 's', DATA_DIR: dir, GATEWAY_ID: gatewayId, WORKER_IMAGE: images.typescript, SANDBOX_RECEIPT_DELAYS_MS: '20,40,60' },
    cleanup,
  );
  const socket = 'unix:///var/run/docker.sock';
  // Two gateway nodes in one swarm: one pinned to the host by name, one by a node label; and a docker node.
  for (const node of [
    { name: 'swarm-a', engine: 'swarm', endpoint: socket, labels: { 'node.hostname': swarm.hostname } },
    { name: 'swarm-b', engine: 'swarm', endpoint: socket, labels: { 'wgs-zone': 'b' } },
    { name: 'dock', engine: 'docker', endpoint: socket },
  ]) {
    const res = await api(g, 'POST', '/admin/nodes', undefined, node);
    expect(res.status).toBe(200);
  }
  key = (await api(g, 'POST', '/admin/users', undefined, { email: 'swarm@example.com' })).body.apiKey;
}, 120_000);

afterAll(async () => {
  if (process.env.SWARM_DEBUG) await Bun.write('/tmp/swarm-gateway.log', g?.output() ?? '');
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
  if (!enabled) return;
  for (const s of await services()) await docker.getService(s.ID).remove().catch(() => {});
  await removeLabelled(`${LABELS.gateway}=${gatewayId}`);
  await swarm?.close();
}, 60_000);

let id: number;

test.skipIf(!enabled)('a sandbox number is one service with its limits: QR → scan → connected, send; a killed task is replaced with no scan', async () => {
  const created = await api(g, 'POST', '/api/instances', key, { provider: 'sandbox', phone: '4915100000511', node: 'swarm-a', resources: { cpu: '0.5', memory: '128m' } });
  expect(created.status).toBe(200);
  expect(created.body).toMatchObject({ node: 'swarm-a', status: 'running', state: 'qr' });
  id = created.body.id;

  // What `docker service inspect` shows.
  const [service] = await services('swarm-a');
  const spec = (await docker.getService(service!.ID).inspect()).Spec;
  expect(spec.Mode).toEqual({ Replicated: { Replicas: 1 } });
  expect(spec.Labels).toMatchObject({ [LABELS.instance]: String(id), [LABELS.node]: 'swarm-a', [LABELS.provider]: 'sandbox' });
  const task = spec.TaskTemplate as ContainerTaskSpec;
  const limits = { NanoCPUs: 500_000_000, MemoryBytes: 128 * 2 ** 20 };
  expect(task.Resources).toEqual({ Limits: limits, Reservations: limits });
  expect(task.RestartPolicy).toMatchObject({ Condition: 'none' });
  expect(task.Placement?.Constraints).toEqual([`node.hostname==${swarm!.hostname}`]);
  expect(task.ContainerSpec?.Init).toBe(true);
  expect(task.ContainerSpec?.Image).toMatch(/^sha256:[0-9a-f]{64}$/); // built here: named by id, never pulled
  expect(task.Networks).toHaveLength(1);
  const first = await runningTask(service!.ID);
  expect(first).toBeDefined();
  expect((await docker.getContainer(first!.Status!.ContainerStatus!.ContainerID!).inspect()).HostConfig.NetworkMode).toBe('host');

  expect((await fetch(`${g.url}/api/instances/${id}/qr`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
  expect((await api(g, 'POST', `/api/instances/${id}/sandbox/scan`, key)).body).toEqual({ state: 'connected' });
  const sent = await api(g, 'POST', `/api/instances/${id}/send`, key, { to: '15550100000', text: 'from a swarm service' });
  expect(sent.status).toBe(200);
  await until('read receipt', async () => (await api(g, 'GET', `/api/instances/${id}/messages/${sent.body.id}`, key)).body?.status === 'read');

  // Kill the task's container: Swarm marks the task failed, the gateway starts a new one with a fresh token.
  const killed = Date.now();
  await docker.getContainer(first!.Status!.ContainerStatus!.ContainerID!).kill();
  await until("the task's end seen by the gateway", () => statusReasonSince(db.database.sql, id, 'worker exited (signal SIGKILL: swarm task failed%', killed), 8_000);
  const back = await waitRestored(g, id, key);
  expect(back.stateReason).toBe('session restored');
  console.log(`task killed → connected again in ${Date.now() - killed} ms`);
  // The manager may learn that the new task runs after its worker has already dialled in.
  const second = await until('a new running task', async () => {
    const [after] = await services('swarm-a');
    return after && (await runningTask(after.ID));
  });
  expect(second.ID).not.toBe(first!.ID);
  expect((await api(g, 'POST', `/api/instances/${id}/send`, key, { to: '15550100000', text: 'after the kill' })).status).toBe(200);
}, 60_000);

test.skipIf(!enabled)('the number moves inside the swarm, to a docker node and back, sends answered throughout', async () => {
  await sendingThroughout(g, db.database.sql, id, key, async () => {
    // Inside the swarm: the constraint changes (a new service on the other gateway node).
    const inside = await api(g, 'POST', `/api/instances/${id}/migrate`, key, { target_node: 'swarm-b' });
    expect(inside.status).toBe(200);
    expect(inside.body.instance).toMatchObject({ node: 'swarm-b', state: 'connected', stateReason: 'session restored' });
    expect(await services('swarm-a')).toHaveLength(0);
    const [b] = await services('swarm-b');
    expect(((await docker.getService(b!.ID).inspect()).Spec.TaskTemplate as ContainerTaskSpec).Placement?.Constraints).toEqual(['node.labels.wgs-zone==b']);

    const toDocker = await api(g, 'POST', `/api/instances/${id}/migrate`, key, { target_node: 'dock' });
    expect(toDocker.status).toBe(200);
    expect(toDocker.body.instance).toMatchObject({ node: 'dock', state: 'connected' });
    expect(await services()).toHaveLength(0);
    expect((await containers()).map((c) => [c.Labels[LABELS.node], c.State])).toEqual([['dock', 'running']]);

    const toSwarm = await api(g, 'POST', `/api/instances/${id}/migrate`, key, { target_node: 'swarm-a' });
    expect(toSwarm.status).toBe(200);
    expect(toSwarm.body.instance).toMatchObject({ node: 'swarm-a', state: 'connected' });
    expect(await containers()).toHaveLength(0);
    expect(await services('swarm-a')).toHaveLength(1);
  });
}, 60_000);

test.skipIf(!enabled)('a drained swarm node empties: the number moves off and stays connected; delete removes the service', async () => {
  const nodes = (await api(g, 'GET', '/admin/nodes')).body as { id: number; name: string }[];
  const a = nodes.find((n) => n.name === 'swarm-a')!;
  expect((await api(g, 'POST', `/admin/nodes/${a.id}/drain`)).status).toBe(200);
  const moved = await until(
    'drain finished',
    async () => {
      const node = (await api(g, 'GET', `/admin/nodes/${a.id}`)).body;
      return node.drain?.finishedAt && node.drain.remaining === 0 && node;
    },
    30_000,
  );
  expect(moved.drain).toMatchObject({ total: 1, moved: 1, failed: [] });
  const inst = await waitConnected(g, id, key);
  expect(inst.node).not.toBe('swarm-a');
  expect(await services('swarm-a')).toHaveLength(0);
  expect((await api(g, 'DELETE', `/api/instances/${id}`, key)).status).toBe(204);
  expect(await services()).toHaveLength(0);
  expect(await containers()).toHaveLength(0);
  expect(await g.stop('SIGTERM')).toBe(0);
}, 60_000);
