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
import { closedLoopbackPort } from '../../../tests/conformance/workers';
import { until } from '../../../tests/support/poll';
import { checkNodes } from '../nodes/health';

const enabled = await dockerAvailable();
const gatewayId = `test-${randomBytes(4).toString('hex')}`;

describe.skipIf(!enabled)('sandbox instances in worker containers', () => {
  let t: TestApp;
  let engine: DockerEngine;
  let key: string;
  let images: ReturnType<typeof buildImages>;

  beforeAll(async () => {
    images = buildImages();
    engine = new DockerEngine(docker, {
      node: { name: 'local', network: 'host' },
      images,
      gatewayId,
      logger: createLogger('silent'),
    });
    await engine.watch();
    // whatsmeow workers dial a closed loopback port instead of WhatsApp: nothing leaves the machine.
    t = await createTestApp({ listen: true, engine, gatewayId, workerEnv: { WHATSMEOW_WS_URL: `ws://127.0.0.1:${await closedLoopbackPort()}/ws/chat` } });
    key = (await t.createUser()).apiKey;
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    engine?.unwatch();
    await removeLabelled(`${LABELS.gateway}=${gatewayId}`);
  });

  /** Runs the image's HEALTHCHECK command in the container; its exit code. */
  const healthCheck = async (containerId: string) => {
    const info = await docker.getContainer(containerId).inspect();
    const exec = await docker.getContainer(containerId).exec({ Cmd: info.Config.Healthcheck!.Test!.slice(1), AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({});
    await new Promise((resolve) => stream.on('end', resolve).resume());
    return (await exec.inspect()).ExitCode;
  };

  const container = async (id: number) => {
    const [c] = await docker.listContainers({ all: true, filters: { label: [`${LABELS.gateway}=${gatewayId}`, `${LABELS.instance}=${id}`] } });
    return c;
  };

  test('a whatsmeow instance runs the Go worker image; it reports why WhatsApp is unreachable; delete removes the container', async () => {
    const res = await t.call('POST', '/api/instances', { key, body: { provider: 'whatsmeow', phone: '4915100000556', resources: { memory: '64m' } } });
    expect(res.status).toBe(200);
    const id = res.body.id;
    const inspected = await docker.getContainer((await container(id))!.Id).inspect();
    expect(inspected.Config.Image).toBe(images.whatsmeow);
    expect(inspected.Config.User).toBe('65534:65534');
    expect(inspected.HostConfig.Memory).toBe(64 * 1024 * 1024);
    const r = await until('reconnecting', async () => {
      const v = (await t.call('GET', `/api/instances/${id}`, { key })).body;
      return v.state === 'reconnecting' && v;
    });
    expect(r.stateReason).toContain('cannot reach WhatsApp');
    expect(inspected.Config.Healthcheck?.Test).toEqual(['CMD', '/usr/local/bin/wgs-whatsmeow', '--health']);
    await until('healthy', async () => (await healthCheck(inspected.Id)) === 0);
    expect((await t.call('DELETE', `/api/instances/${id}`, { key })).status).toBe(204);
    expect(await container(id)).toBeUndefined();
  });

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
    // The image's HEALTHCHECK command passes once the worker is connected.
    expect(inspected.Config.Healthcheck?.Test).toEqual(['CMD', '/usr/local/bin/bun', '/app/worker.js', '--health']);
    await until('healthy', async () => (await healthCheck(inspected.Id)) === 0);

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

  test('instances spread over docker nodes by capacity; one that fits nowhere is a 503 and leaves nothing', async () => {
    // Keep the local node out of the way, then register two nodes on this daemon.
    await t.db.database.sql`update nodes set capacity_millicpu = 1 where name = 'local'`;
    const endpoint = 'unix:///var/run/docker.sock';
    const small = await t.call('POST', '/admin/nodes', { body: { name: 'd-small', engine: 'docker', endpoint, capacity: { cpu: 1, memory: '1g' } } });
    const big = await t.call('POST', '/admin/nodes', { body: { name: 'd-big', engine: 'docker', endpoint, capacity: { cpu: 3, memory: '3g' } } });
    expect([small.status, big.status]).toEqual([200, 200]);
    const placed: string[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await t.call('POST', '/api/instances', {
        key,
        body: { provider: 'sandbox', phone: `49151000007${i}0`, resources: { cpu: '0.5', memory: '512m' } },
      });
      expect(res.status).toBe(200);
      expect(res.body.status).toBe('running');
      placed.push(res.body.node);
      const c = await container(res.body.id);
      expect(c?.Labels[LABELS.node]).toBe(res.body.node);
    }
    expect(placed.slice(0, 4)).toEqual(['d-big', 'd-big', 'd-small', 'd-big']);
    expect(placed.filter((n) => n === 'd-small')).toHaveLength(2);
    expect(placed.filter((n) => n === 'd-big')).toHaveLength(6);

    const before = (await t.db.database.sql`select count(*)::int as n from instances`)[0]!.n;
    const full = await t.call('POST', '/api/instances', { key, body: { provider: 'sandbox', phone: '4915100000799', resources: { cpu: '0.5', memory: '512m' } } });
    expect(full.status).toBe(503);
    expect(full.body.code).toBe('no_capacity');
    expect(full.body.error).toContain('d-small: cpu 1.5 of 1 cores');
    expect((await t.db.database.sql`select count(*)::int as n from instances`)[0]!.n).toBe(before);
    const unknown = await t.call('POST', '/api/instances', { key, body: { provider: 'sandbox', phone: '4915100000798', node: 'nope' } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toContain("'node'");
    const pinned = await t.call('POST', '/api/instances', { key, body: { provider: 'sandbox', phone: '4915100000797', node: 'd-small' } });
    expect(pinned.status).toBe(200);
    expect(pinned.body.node).toBe('d-small');
  }, 120_000);

  test('an instance on a node that becomes unreachable moves to another node, no new scan', async () => {
    await t.db.database.sql`update nodes set capacity_millicpu = 1 where name = 'local'`;
    const endpoint = 'unix:///var/run/docker.sock';
    const a = await t.call('POST', '/admin/nodes', { body: { name: 'mover-a', engine: 'docker', endpoint } });
    expect((await t.call('POST', '/admin/nodes', { body: { name: 'mover-b', engine: 'docker', endpoint } })).status).toBe(200);
    // 0.1 core: more than the local node's 0.001, so only mover-b can take it once mover-a is gone.
    const res = await t.call('POST', '/api/instances', { key, body: { provider: 'sandbox', phone: '4915100000333', node: 'mover-a', resources: { cpu: '0.1' } } });
    expect(res.body.node).toBe('mover-a');
    const id = res.body.id;
    expect((await t.call('POST', `/api/instances/${id}/sandbox/scan`, { key })).status).toBe(200);

    // The node's daemon goes away (as far as the gateway can tell).
    expect((await t.call('PUT', `/admin/nodes/${a.body.id}`, { body: { endpoint: 'unix:///nonexistent/docker.sock' } })).status).toBe(200);
    const health = await checkNodes(t.db.database.db, t.runtime.engines);
    expect(health.get('mover-a')!.status).toBe('unreachable');
    const { moved } = await t.runtime.reconcile();
    expect(moved).toEqual([id]);

    const back = await until(
      'connected on the other node',
      async () => {
        const r = await t.call('GET', `/api/instances/${id}`, { key });
        return r.body.status === 'running' && r.body.state === 'connected' && r.body;
      },
      30_000,
    );
    expect(back.node).toBe('mover-b');
    expect(back.stateReason).toBe('session restored');
    const reasons = await t.db.database.sql`select data->>'statusReason' as r from events where instance_id = ${id} and type = 'instance.status'`;
    expect(reasons.map((x) => x.r)).toContain('node mover-a is unreachable; moving to mover-b');
    // The replaced container's exit is seen by every docker node on this daemon: no crash, no restart.
    expect(reasons.map((x) => x.r).filter((r) => r?.startsWith('worker exited'))).toEqual([]);
    expect((await container(id))?.Labels[LABELS.node]).toBe('mover-b');
  }, 120_000);
});
