import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { DockerEngine } from './docker';
import { LABELS } from './docker-spec';
import { EngineError, type WorkerExit } from './engine';
import { createLogger } from '../logging/logger';
import { BUN_BASE_IMAGE, buildImages, docker, dockerAvailable, removeLabelled } from '../../../tests/support/docker';
import { until } from '../../../tests/support/poll';

const enabled = await dockerAvailable();
const gatewayId = `test-${randomBytes(4).toString('hex')}`;

/** A stand-in worker: prints its environment's marker, exits 0 on SIGTERM. */
const SCRIPT = `console.log('up ' + process.env.MARKER); process.on('SIGTERM', () => { console.log('bye'); process.exit(0); }); setInterval(() => {}, 1000);`;

describe.skipIf(!enabled)('DockerEngine against a real daemon', () => {
  let engine: DockerEngine;
  const exits: WorkerExit[] = [];

  beforeAll(async () => {
    buildImages();
    engine = new DockerEngine(docker, {
      node: { name: 'test-node', network: 'host' },
      images: { typescript: BUN_BASE_IMAGE, whatsmeow: BUN_BASE_IMAGE, node: BUN_BASE_IMAGE },
      gatewayId,
      cmd: ['-e', SCRIPT],
      logger: createLogger('silent'),
    });
    engine.onExit((e) => exits.push(e));
    await engine.watch();
  }, 120_000);
  afterAll(async () => {
    engine?.unwatch();
    await removeLabelled(`${LABELS.gateway}=${gatewayId}`);
  });

  const spec = (id: number, extra: Record<string, unknown> = {}) => ({
    instanceId: id,
    name: `inst ${id}`,
    provider: 'sandbox',
    env: { MARKER: `m${id}` },
    resources: { cpu: '0.5', memory: '64m' },
    ...extra,
  });

  test('a container per instance with the requested limits, labels, init and host network', async () => {
    const info = await engine.ensure(spec(1));
    expect(info.state).toBe('running');
    const [c] = await docker.listContainers({ filters: { label: [`${LABELS.gateway}=${gatewayId}`, `${LABELS.instance}=1`] } });
    const inspected = await docker.getContainer(c!.Id).inspect();
    expect(inspected.Name).toBe(`/wgs-${gatewayId}-1-inst-1`);
    expect(inspected.HostConfig.Memory).toBe(64 * 1024 * 1024);
    expect(inspected.HostConfig.NanoCpus).toBe(500_000_000);
    expect(inspected.HostConfig.Init).toBe(true);
    expect(inspected.HostConfig.NetworkMode).toBe('host');
    expect(inspected.Config.Labels).toMatchObject({ [LABELS.instance]: '1', [LABELS.node]: 'test-node', [LABELS.provider]: 'sandbox' });
    await until('output', async () => (await engine.logs(1)).includes('up m1'));
    expect((await engine.ensure(spec(1))).pid).toBe(info.pid); // already running: left alone
    expect((await engine.list()).map((w) => w.instanceId)).toContain(1);
  });

  test('stop is graceful and reported as requested; ensure replaces the stopped container', async () => {
    await engine.ensure(spec(2));
    await until('output', async () => (await engine.logs(2)).includes('up m2'));
    const t0 = Date.now();
    await engine.stop(2, 5000);
    expect(Date.now() - t0).toBeLessThan(4000); // --init passes SIGTERM: no 5 s kill wait
    expect((await engine.inspect(2))!.state).toBe('exited');
    await until('exit event', () => exits.find((e) => e.instanceId === 2));
    expect(exits.find((e) => e.instanceId === 2)).toMatchObject({ exitCode: 0, requested: true });
    const again = await engine.ensure(spec(2, { env: { MARKER: 'second' } }));
    expect(again.state).toBe('running');
    await until('new output', async () => (await engine.logs(2)).includes('up second'));
  });

  test('docker kill is an unrequested exit', async () => {
    await engine.ensure(spec(3));
    const [c] = await docker.listContainers({ filters: { label: [`${LABELS.gateway}=${gatewayId}`, `${LABELS.instance}=3`] } });
    await docker.getContainer(c!.Id).kill();
    const exit = await until('exit event', () => exits.find((e) => e.instanceId === 3));
    expect(exit).toMatchObject({ requested: false, exitCode: 137, signal: 'SIGKILL' });
  });

  test('an event stream that breaks (a daemon restart) is followed again: later exits are still reported', async () => {
    // What a restarting daemon does to the stream: it ends under the engine.
    const stream = (engine as unknown as { events?: { destroy(): void } }).events;
    expect(stream).toBeDefined();
    stream!.destroy();
    await until('the stream followed again', () => {
      const now = (engine as unknown as { events?: unknown }).events;
      return now !== undefined && now !== stream;
    }, 10_000);
    await engine.ensure(spec(5));
    const [c] = await docker.listContainers({ filters: { label: [`${LABELS.gateway}=${gatewayId}`, `${LABELS.instance}=5`] } });
    await docker.getContainer(c!.Id).kill();
    const exit = await until('exit event after the stream came back', () => exits.find((e) => e.instanceId === 5));
    expect(exit).toMatchObject({ requested: false, signal: 'SIGKILL' });
    await engine.remove(5);
  });

  test('removes racing for one container (a DELETE and the control loop) both succeed', async () => {
    await engine.ensure(spec(6));
    await Promise.all([engine.remove(6), engine.remove(6), engine.remove(6)]);
    expect(await engine.inspect(6)).toBeNull();
  });

  test('remove deletes the container; unknown instances are null and not_found', async () => {
    await engine.ensure(spec(4));
    await engine.remove(4);
    expect(await engine.inspect(4)).toBeNull();
    await expect(engine.logs(4)).rejects.toMatchObject({ name: 'EngineError', code: 'not_found' });
    await engine.stop(99); // no-op
  });

  test('an image the node lacks and cannot pull: a typed error saying what to do, and no container', async () => {
    // A registry on a closed loopback port: the pull fails at once and nothing leaves the machine.
    const image = '127.0.0.1:9/wgs-missing:none';
    const broken = new DockerEngine(docker, {
      node: { name: 'n', network: 'host' },
      images: { typescript: image, whatsmeow: image, node: image },
      gatewayId,
      logger: createLogger('silent'),
    });
    const err = await broken.ensure(spec(5)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect(err).toMatchObject({ code: 'unavailable' });
    expect((err as Error).message).toContain(`image ${image} is not on node n and pulling it failed`);
    expect((err as Error).message).toContain('make images');
    expect(await broken.inspect(5)).toBeNull();
  });
});
