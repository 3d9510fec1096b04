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
import { until } from '../support/poll';
import { freePort } from '../../gateway/src/lib/net';

const enabled = await dockerAvailable();
const gatewayId = `e2e-${randomBytes(3).toString('hex')}`;
const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
  await removeLabelled(`${LABELS.gateway}=${gatewayId}`);
});

const api = gatewayApi;

test.skipIf(!enabled)('containers outlive a gateway restart and are replaced, session intact', async () => {
  const images = buildImages();
  const db = await createTestDatabase();
  cleanup.push(() => db.drop());
  const dir = await mkdtemp(join(tmpdir(), 'wgs-e2e-docker-'));
  await chmod(dir, 0o755);
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  const env = { DATABASE_URL: db.url, ADMIN_API_SECRET: 's', DATA_DIR: dir, GATEWAY_ID: gatewayId, WORKER_IMAGE: images.typescript, WORKER_IMAGE_WHATSMEOW: images.whatsmeow };
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

test.skipIf(!enabled)('the gateway image migrates, serves, reports healthy and runs a process-node worker from its bundle', async () => {
  const images = buildImages();
  const db = await createTestDatabase();
  cleanup.push(() => db.drop());
  const port = await freePort();
  const container = await docker.createContainer({
    Image: images.gateway,
    name: `wgs-e2e-gateway-${gatewayId}`,
    Env: [`DATABASE_URL=${db.url}`, 'HOST=127.0.0.1', `PORT=${port}`, 'ADMIN_API_SECRET=s', `WEBHOOK_SECRET_KEY=${randomBytes(32).toString('base64')}`, 'LOG_LEVEL=warn'],
    Labels: { [LABELS.gateway]: gatewayId },
    HostConfig: { NetworkMode: 'host', Init: true },
  });
  cleanup.push(() => container.remove({ force: true }));
  await container.start();
  const g = { url: `http://127.0.0.1:${port}` };
  await until('gateway in a container answers', async () => (await fetch(`${g.url}/readyz`).catch(() => null))?.status === 200, 30_000);
  const info = await container.inspect();
  expect(info.Config.User).toBe('65534:65534');
  const exec = await container.exec({ Cmd: info.Config.Healthcheck!.Test!.slice(1), AttachStdout: true });
  await new Promise((resolve) => exec.start({}).then((s) => s.on('end', resolve).resume()));
  expect((await exec.inspect()).ExitCode).toBe(0);

  // The default process node runs the bundled worker inside the container.
  const user = (await api(g, 'POST', '/admin/users', undefined, { email: 'img@example.com' })).body;
  const created = await api(g, 'POST', '/api/instances', user.apiKey, { provider: 'sandbox', phone: '4915100000222' });
  expect(created.status).toBe(200);
  expect(created.body).toMatchObject({ status: 'running', state: 'qr', node: 'local' });
  expect((await api(g, 'POST', `/api/instances/${created.body.id}/sandbox/scan`, user.apiKey)).status).toBe(200);
  await container.stop({ t: 10 });
  expect((await container.inspect()).State.ExitCode).toBe(0);
});
