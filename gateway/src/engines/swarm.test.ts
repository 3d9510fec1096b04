import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import { LABELS } from './docker-spec';
import { EngineError, type WorkerExit } from './engine';
import { SwarmEngine, swarmHealth } from './swarm';
import { createLogger } from '../logging/logger';
import { BUN_BASE_IMAGE, buildImages, docker, dockerAvailable } from '../../../tests/support/docker';
import { startSwarm, type TestSwarm } from '../../../tests/support/swarm';
import { until } from '../../../tests/support/poll';

const enabled = await dockerAvailable();
const gatewayId = `test-swarm-${randomBytes(3).toString('hex')}`;

/** A stand-in worker: prints its marker, exits 0 on SIGTERM; `EAT=1` makes it allocate until the kernel kills it. */
const SCRIPT = `console.log('up ' + process.env.MARKER); process.on('SIGTERM', () => { console.log('bye'); process.exit(0); });
if (process.env.EAT) setTimeout(() => { const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1)); }, 300);
setInterval(() => {}, 1000);`;

describe.skipIf(!enabled)('SwarmEngine against a real single-node swarm', () => {
  let swarm: TestSwarm;
  let engine: SwarmEngine;
  const exits: WorkerExit[] = [];
  const make = (over: Partial<ConstructorParameters<typeof SwarmEngine>[1]> = {}) =>
    new SwarmEngine(docker, {
      node: { name: 'test-swarm', network: 'host', labels: {} },
      images: { typescript: BUN_BASE_IMAGE, whatsmeow: BUN_BASE_IMAGE, node: BUN_BASE_IMAGE },
      gatewayId,
      cmd: ['-e', SCRIPT],
      logger: createLogger('silent'),
      pollMs: 250,
      ...over,
    });

  beforeAll(async () => {
    buildImages();
    swarm = await startSwarm();
    engine = make();
    engine.onExit((e) => exits.push(e));
    await engine.watch();
  }, 120_000);
  afterAll(async () => {
    engine?.unwatch();
    for (const s of await docker.listServices({ filters: { label: [`${LABELS.gateway}=${gatewayId}`] } })) await docker.getService(s.ID).remove().catch(() => {});
    await swarm?.close();
  }, 60_000);

  const spec = (id: number, extra: Record<string, unknown> = {}) => ({
    instanceId: id,
    name: `inst ${id}`,
    provider: 'sandbox',
    env: { MARKER: `m${id}` },
    resources: { cpu: '0.25', memory: '96m' },
    ...extra,
  });

  test('a running service per instance; logs, list, inspect; ensure leaves a running one alone', async () => {
    const serviceIds = async () => (await docker.listServices({ filters: { label: [`${LABELS.gateway}=${gatewayId}`, `${LABELS.instance}=1`] } })).map((s) => s.ID);
    const info = await engine.ensure(spec(1));
    expect(info.state).toBe('running');
    const [first] = await serviceIds();
    await until('output', async () => (await engine.logs(1)).includes('up m1'), 10_000, 100);
    expect((await engine.ensure(spec(1))).state).toBe('running');
    expect(await serviceIds()).toEqual([first!]);
    expect((await engine.list()).map((w) => [w.instanceId, w.state])).toContainEqual([1, 'running']);
    const inspected = await until('the manager reports the pid', async () => {
      const w = await engine.inspect(1);
      return w?.pid ? w : null;
    });
    expect(inspected).toMatchObject({ instanceId: 1, state: 'running' });
    expect(inspected.pid).toBeGreaterThan(0);
  });

  test('stop is graceful and requested; ensure replaces the stopped service with a fresh environment', async () => {
    await until('output', async () => (await engine.logs(1)).includes('up m1'), 10_000, 100);
    const t0 = Date.now();
    await engine.stop(1, 5000);
    expect(Date.now() - t0).toBeLessThan(4000); // --init passes SIGTERM: no wait for the kill
    expect(await engine.inspect(1)).toMatchObject({ state: 'exited', exitCode: 0 });
    expect(exits.find((e) => e.instanceId === 1)).toMatchObject({ requested: true, exitCode: 0 });
    const again = await engine.ensure(spec(1, { env: { MARKER: 'second' } }));
    expect(again.state).toBe('running');
    await until('new output', async () => (await engine.logs(1)).includes('up second'), 10_000, 100);
  });

  test('a killed task is an unrequested SIGKILL exit, seen by polling the tasks', async () => {
    await engine.ensure(spec(2));
    const [service] = await docker.listServices({ filters: { label: [`${LABELS.gateway}=${gatewayId}`, `${LABELS.instance}=2`] } });
    const [task] = (await docker.listTasks({ filters: { service: [service!.ID], 'desired-state': ['running'] } })) as { Status: { ContainerStatus: { ContainerID: string } } }[];
    await docker.getContainer(task!.Status.ContainerStatus.ContainerID).kill();
    const exit = await until('exit', () => exits.find((e) => e.instanceId === 2), 5_000);
    expect(exit).toMatchObject({ requested: false, signal: 'SIGKILL', exitCode: 137 });
    expect(exit.reason).toContain('swarm task failed: task: non-zero exit (137)');
    expect(await engine.inspect(2)).toMatchObject({ state: 'exited', exitCode: 137 });
    expect((await engine.list()).find((w) => w.instanceId === 2)?.state).toBe('exited');
    await engine.remove(2);
    expect(await engine.inspect(2)).toBeNull();
  });

  test('a worker over its memory limit: the exit says out of memory', async () => {
    await engine.ensure(spec(3, { env: { MARKER: 'm3', EAT: '1' }, resources: { memory: '64m' } }));
    const exit = await until('exit', () => exits.find((e) => e.instanceId === 3), 15_000);
    expect(exit.requested).toBe(false);
    expect(exit.reason).toContain('out of memory (limit 64 MiB)');
    await engine.remove(3);
  });

  test("swarm's refusals fail the start with swarm's reason and leave no service: no suitable node, no such image", async () => {
    const tooBig = await engine.ensure(spec(4, { resources: { memory: '4096g' } })).catch((e: unknown) => e);
    expect(tooBig).toBeInstanceOf(EngineError);
    expect((tooBig as Error).message).toContain('no suitable node');
    expect(await engine.inspect(4)).toBeNull();

    // A registry on a closed loopback port: the pull fails at once and nothing leaves the machine.
    const image = '127.0.0.1:9/wgs-missing:none';
    const broken = make({ images: { typescript: image, whatsmeow: image, node: image } });
    const missing = await broken.ensure(spec(5)).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(EngineError);
    expect((missing as Error).message).toMatch(/No such image|pull access denied|connection refused/);
    expect(await broken.inspect(5)).toBeNull();
  }, 30_000);

  test('removes racing for one service all succeed; unknown instances are null and not_found', async () => {
    await engine.ensure(spec(6));
    await Promise.all([engine.remove(6), engine.remove(6), engine.remove(6)]);
    expect(await engine.inspect(6)).toBeNull();
    await expect(engine.logs(6)).rejects.toMatchObject({ name: 'EngineError', code: 'not_found' });
    await engine.stop(99); // no-op
  });

  test("health: a manager with ready nodes reports the swarm's capacity; constraints no node meets say so", async () => {
    const ok = await swarmHealth(docker, { name: 'test-swarm', labels: { 'node.hostname': swarm.hostname } }, gatewayId);
    expect(ok).toMatchObject({ status: 'ready', reason: null, millicpu: cpus().length * 1000 });
    expect(Math.abs(ok.memoryBytes! - totalmem())).toBeLessThan(2 ** 30);
    expect(ok.version).toBeTruthy();
    const none = await swarmHealth(docker, { name: 'x', labels: { 'wgs-zone': 'nowhere' } }, gatewayId);
    expect(none.status).toBe('unreachable');
    expect(none.reason).toBe('no ready, active swarm node matching node.labels.wgs-zone==nowhere (1 node in the swarm)');
  });
});
