/**
 * The real worker image on the docker engine: the instance API works exactly
 * as on the process engine, and the container carries the requested limits.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { DockerEngine } from './docker';
import { LABELS } from './docker-spec';
import { createLogger } from '../logging/logger';
import { buildImages, docker, dockerAvailable, removeLabelled } from '../../../tests/support/docker';
import { createTestApp, type TestApp } from '../../../tests/support/app';
import { until } from '../../../tests/support/poll';

const enabled = await dockerAvailable();
const gatewayId = `test-${randomBytes(4).toString('hex')}`;

describe.skipIf(!enabled)('sandbox instances in worker containers', () => {
  let t: TestApp;
  let engine: DockerEngine;
  let key: string;

  beforeAll(async () => {
    engine = new DockerEngine(docker, {
      node: { name: 'local', network: 'host' },
      image: buildImages(),
      gatewayId,
      logger: createLogger('silent'),
    });
    await engine.watch();
    t = await createTestApp({ listen: true, engine });
    key = (await t.createUser()).apiKey;
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    engine?.unwatch();
    await removeLabelled(`${LABELS.gateway}=${gatewayId}`);
  });

  const container = async (id: number) => {
    const [c] = await docker.listContainers({ all: true, filters: { label: [`${LABELS.gateway}=${gatewayId}`, `${LABELS.instance}=${id}`] } });
    return c;
  };

  test('create, QR, scan, send, receipts, docker kill, delete', async () => {
    const res = await t.call('POST', '/api/instances', { key, body: { provider: 'sandbox', phone: '4915100000555', resources: { cpu: '0.5', memory: '256m' } } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'running', state: 'qr' });
    const id = res.body.id;
    const inspected = await docker.getContainer((await container(id))!.Id).inspect();
    expect(inspected.HostConfig.Memory).toBe(256 * 1024 * 1024);
    expect(inspected.HostConfig.NanoCpus).toBe(500_000_000);
    expect(inspected.Config.User).toBe('65534:65534');
    expect(inspected.Config.Env.some((e: string) => e.startsWith('WGS_WORKER_TOKEN='))).toBe(true);

    expect((await t.call('GET', `/api/instances/${id}/qr`, { key })).headers.get('content-type')).toBe('image/png');
    expect((await t.call('POST', `/api/instances/${id}/sandbox/scan`, { key })).status).toBe(200);
    const sent = await t.call('POST', `/api/instances/${id}/send`, { key, body: { to: '15550100000', text: 'from a container' } });
    expect(sent.status).toBe(200);
    await until('read', async () => (await t.call('GET', `/api/instances/${id}/messages/${sent.body.id}`, { key })).body.status === 'read');

    // docker kill: the runtime restarts it, and the session comes back from Postgres.
    await docker.getContainer((await container(id))!.Id).kill();
    await until('exited', async () => (await t.call('GET', `/api/instances/${id}`, { key })).body.state !== 'connected');
    const back = await until(
      'connected again',
      async () => {
        const r = await t.call('GET', `/api/instances/${id}`, { key });
        return r.body.status === 'running' && r.body.state === 'connected' && r.body;
      },
      20_000,
    );
    expect(back.stateReason).toBe('session restored');

    expect((await t.call('DELETE', `/api/instances/${id}`, { key })).status).toBe(204);
    expect(await container(id)).toBeUndefined();
  });
});
