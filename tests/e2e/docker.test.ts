/**
 * A gateway with a docker node, as an operator runs it: containers outlive a
 * gateway restart, and the next gateway replaces them with fresh tokens.
 */
import { afterAll, expect, test } from 'bun:test';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { LABELS } from '../../gateway/src/engines/docker-spec';
import { buildImages, docker, dockerAvailable, removeLabelled } from '../support/docker';
import { gatewayApi, startGatewayProcess, waitConnected } from '../support/gateway-process';
import { createTestDatabase } from '../support/postgres';

const enabled = await dockerAvailable();
const gatewayId = `e2e-${randomBytes(3).toString('hex')}`;
const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
  await removeLabelled(`${LABELS.gateway}=${gatewayId}`);
});

const api = gatewayApi;

test.skipIf(!enabled)('containers outlive a gateway restart and are replaced, session intact', async () => {
  const image = buildImages();
  const db = await createTestDatabase();
  cleanup.push(() => db.drop());
  const dir = await mkdtemp(join(tmpdir(), 'wgs-e2e-docker-'));
  await chmod(dir, 0o755);
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  const env = { DATABASE_URL: db.url, ADMIN_API_SECRET: 's', DATA_DIR: dir, GATEWAY_ID: gatewayId, WORKER_IMAGE: image };
  const start = () => startGatewayProcess(env, cleanup);
  const containers = () => docker.listContainers({ filters: { label: [`${LABELS.gateway}=${gatewayId}`] } });

  let g = await start();
  expect((await api(g, 'POST', '/admin/nodes', undefined, { name: 'dock', engine: 'docker', endpoint: 'unix:///var/run/docker.sock' })).status).toBe(200);
  const user = (await api(g, 'POST', '/admin/users', undefined, { email: 'dock@example.com' })).body;
  const created = await api(g, 'POST', '/api/instances', user.apiKey, { provider: 'sandbox', phone: '4915100000111', node: 'dock' });
  expect(created.status).toBe(200);
  expect(created.body.node).toBe('dock');
  const id = created.body.id;
  expect((await api(g, 'POST', `/api/instances/${id}/sandbox/scan`, user.apiKey)).status).toBe(200);
  const [before] = await containers();
  expect(before).toBeDefined();

  // SIGTERM: the gateway exits promptly although its containers keep their sockets open.
  const t0 = Date.now();
  expect(await g.stop('SIGTERM')).toBe(0);
  expect(Date.now() - t0).toBeLessThan(10_000);
  expect((await containers()).map((c) => c.Id)).toEqual([before!.Id]);

  g = await start();
  const back = await waitConnected(g, id, user.apiKey);
  expect(back.stateReason).toBe('session restored');
  const after = await containers();
  expect(after).toHaveLength(1);
  expect(after[0]!.Id).not.toBe(before!.Id);
  expect((await api(g, 'POST', `/api/instances/${id}/send`, user.apiKey, { to: '15550100000', text: 'still here' })).status).toBe(200);
  expect((await api(g, 'DELETE', `/api/instances/${id}`, user.apiKey)).status).toBe(204);
  expect(await containers()).toHaveLength(0);
  expect(await g.stop('SIGTERM')).toBe(0);
}, 120_000);
