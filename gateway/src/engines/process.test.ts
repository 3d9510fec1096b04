import { afterEach, describe, expect, test } from 'bun:test';
import { ProcessEngine } from './process';
import type { WorkerExit } from './engine';
import { createLogger } from '../logging/logger';
import { until } from '../../../tests/support/poll';

const engines: ProcessEngine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.stopAll(1000)));
});

/** An engine whose "worker" is a small Bun script given in WORKER_SCRIPT. */
function engine() {
  const e = new ProcessEngine({ command: [process.execPath, '-e', 'eval(process.env.WORKER_SCRIPT)'], logger: createLogger('silent') });
  engines.push(e);
  const exits: WorkerExit[] = [];
  e.onExit((x) => exits.push(x));
  return { e, exits };
}

const LONG_RUNNING = `console.log(JSON.stringify({ msg: 'up', secret: process.env.ADMIN_API_SECRET ?? null, mine: process.env.MINE })); setInterval(() => {}, 1000); process.on('SIGTERM', () => { console.log('bye'); process.exit(0); });`;

describe('ProcessEngine', () => {
  test('starts once, passes only its own environment, captures output lines', async () => {
    process.env.ADMIN_API_SECRET = 'must-not-leak';
    const { e } = engine();
    const spec = { instanceId: 1, provider: 'sandbox', env: { WORKER_SCRIPT: LONG_RUNNING, MINE: 'yes' } };
    const first = await e.ensure(spec);
    expect(first.state).toBe('running');
    const again = await e.ensure(spec);
    expect(again.pid).toBe(first.pid);
    const lines = await until('the up line', async () => (await e.logs(1)).find((l) => l.includes('"up"')));
    expect(JSON.parse(lines)).toEqual({ msg: 'up', secret: null, mine: 'yes' });
    expect((await e.list()).map((w) => w.instanceId)).toEqual([1]);
    delete process.env.ADMIN_API_SECRET;
  });

  test('a CA bundle reaches the worker as SSL_CERT_FILE and NODE_EXTRA_CA_CERTS', async () => {
    const { e } = engine();
    const script = `console.log(JSON.stringify({ ssl: process.env.SSL_CERT_FILE, node: process.env.NODE_EXTRA_CA_CERTS })); setInterval(() => {}, 1000);`;
    await e.ensure({ instanceId: 2, provider: 'sandbox', env: { WORKER_SCRIPT: script }, caFile: '/srv/ca/simulator.pem' });
    const line = await until('the line', async () => (await e.logs(2)).find((l) => l.includes('ssl')));
    expect(JSON.parse(line)).toEqual({ ssl: '/srv/ca/simulator.pem', node: '/srv/ca/simulator.pem' });
  });

  test('stop is graceful: SIGTERM, the worker exits by itself, reported as requested', async () => {
    const { e, exits } = engine();
    await e.ensure({ instanceId: 2, provider: 'sandbox', env: { WORKER_SCRIPT: LONG_RUNNING } });
    await until('worker up', async () => (await e.logs(2)).some((l) => l.includes('"up"')));
    await e.stop(2, 5000);
    expect((await e.inspect(2))!.state).toBe('exited');
    expect(await e.logs(2)).toContain('bye');
    expect(exits).toEqual([expect.objectContaining({ instanceId: 2, exitCode: 0, signal: null, requested: true })]);
  });

  test('a worker ignoring SIGTERM is killed after the timeout', async () => {
    const { e, exits } = engine();
    const stubborn = `process.on('SIGTERM', () => console.log('ignored')); console.log('up'); setInterval(() => {}, 1000);`;
    await e.ensure({ instanceId: 3, provider: 'sandbox', env: { WORKER_SCRIPT: stubborn } });
    await until('worker up', async () => (await e.logs(3)).includes('up'));
    const t0 = Date.now();
    await e.stop(3, 300);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(exits[0]).toMatchObject({ instanceId: 3, signal: 'SIGKILL', requested: true });
  });

  test('an unrequested exit is reported, and ensure starts a new process', async () => {
    const { e, exits } = engine();
    const first = await e.ensure({ instanceId: 4, provider: 'sandbox', env: { WORKER_SCRIPT: LONG_RUNNING } });
    process.kill(first.pid!, 'SIGKILL');
    await until('the exit', () => exits.length === 1);
    expect(exits[0]).toMatchObject({ instanceId: 4, signal: 'SIGKILL', requested: false });
    const second = await e.ensure({ instanceId: 4, provider: 'sandbox', env: { WORKER_SCRIPT: LONG_RUNNING } });
    expect(second.pid).not.toBe(first.pid);
    expect(second.state).toBe('running');
  });

  test('remove forgets the worker; unknown workers are null or not_found', async () => {
    const { e } = engine();
    await e.ensure({ instanceId: 5, provider: 'sandbox', env: { WORKER_SCRIPT: LONG_RUNNING } });
    await e.remove(5);
    expect(await e.inspect(5)).toBeNull();
    await expect(e.logs(5)).rejects.toMatchObject({ name: 'EngineError', code: 'not_found' });
    await e.stop(42); // no-op
  });

  test("the runtime's environment (Node's malloc tuning) reaches the worker; the instance's own env wins", async () => {
    const e = new ProcessEngine({
      command: [process.execPath, '-e', 'eval(process.env.WORKER_SCRIPT)'],
      runtimeEnv: (spec): Record<string, string> => (spec.provider === 'baileys' ? { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2', MINE: 'runtime' } : {}),
      logger: createLogger('silent'),
    });
    engines.push(e);
    const script = `console.log(JSON.stringify({ tunables: process.env.GLIBC_TUNABLES ?? null, mine: process.env.MINE })); setInterval(() => {}, 1000);`;
    await e.ensure({ instanceId: 7, provider: 'baileys', env: { WORKER_SCRIPT: script, MINE: 'instance' } });
    await e.ensure({ instanceId: 8, provider: 'sandbox', env: { WORKER_SCRIPT: script, MINE: 'instance' } });
    const line = async (id: number) => JSON.parse(await until(`worker ${id}'s line`, async () => (await e.logs(id)).find((l) => l.includes('tunables'))));
    expect(await line(7)).toEqual({ tunables: 'glibc.malloc.arena_max=2', mine: 'instance' });
    expect(await line(8)).toEqual({ tunables: null, mine: 'instance' });
  });

  test('a command that cannot start is an EngineError', async () => {
    const e = new ProcessEngine({ command: ['/nonexistent/worker'], logger: createLogger('silent') });
    await expect(e.ensure({ instanceId: 6, provider: 'sandbox', env: {} })).rejects.toMatchObject({ name: 'EngineError', code: 'start_failed' });
  });
});
