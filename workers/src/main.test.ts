import { afterAll, afterEach, beforeAll, expect, test } from 'bun:test';
import type { Subprocess } from 'bun';
import { CloseCodes } from '../protocol/frames';
import { createLogger } from './logger';
import { openStateStore } from './state/store';
import { FakeGateway, waitFor, type GatewayConn } from './testing/fake-gateway';
import { TestStateDb, type TestInstanceState } from './testing/state-db';
import { spawnProgram } from './testing/spawn';

const TOKEN = 'wgs-main-test-token-secret';

let db: TestStateDb;
beforeAll(async () => {
  db = await TestStateDb.create();
});
afterAll(async () => {
  await db.cleanup();
});

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function spawnWorker(env: Record<string, string>) {
  return spawnProgram([process.execPath, 'workers/src/main.ts'], env, cleanups);
}

/** The exit code, or a failure if the process is still running after `ms`. */
async function exitWithin(proc: Subprocess, ms: number): Promise<number> {
  const timeout = Bun.sleep(ms).then(() => {
    throw new Error(`worker still running after ${ms} ms`);
  });
  return Promise.race([proc.exited, timeout]);
}

async function startGateway() {
  const gateway = new FakeGateway();
  cleanups.push(() => gateway.stop());
  return gateway;
}

/** Advisory locks are per database: each test's instance gets its own id. */
let nextInstanceId = 5;

interface TestInstance extends TestInstanceState {
  id: number;
}

async function newInstance(): Promise<TestInstance> {
  return { ...(await db.createInstance()), id: nextInstanceId++ };
}

const workerEnv = (gateway: FakeGateway, instance: TestInstance) => ({
  WGS_GATEWAY_URL: gateway.baseUrl,
  WGS_INSTANCE_ID: String(instance.id),
  WGS_WORKER_TOKEN: TOKEN,
  WGS_PROVIDER: 'sandbox',
  WGS_STATE_DSN: instance.dsn,
  WGS_STATE_SCHEMA: instance.schema,
  SANDBOX_RECEIPT_DELAYS_MS: '5,10,15',
});

/** The instance's lock is free right now: a store opened without waiting. */
async function lockIsFree(instance: TestInstance): Promise<boolean> {
  let waited = false;
  const abort = new AbortController();
  const opening = openStateStore({
    dsn: instance.dsn,
    schema: instance.schema,
    instanceId: instance.id,
    log: createLogger({ level: 'silent', instanceId: instance.id }),
    onWaiting: () => {
      waited = true;
      abort.abort();
    },
    onLost: () => {},
    signal: abort.signal,
  });
  const store = await opening.catch(() => undefined);
  await store?.close();
  return !waited && store !== undefined;
}

const states = (conn: GatewayConn) => conn.ofType('state').map((f) => (f.reason ? `${f.state}: ${f.reason}` : f.state));

test('the worker says hello, reports its QR, runs commands and stops cleanly on SIGTERM, releasing the lock', async () => {
  const gateway = await startGateway();
  const instance = await newInstance();
  const { proc, stdout } = spawnWorker(workerEnv(gateway, instance));

  const conn = await waitFor(() => gateway.connections[0]?.frames.length && gateway.connections[0], 'a hello', 15_000);
  expect(conn.frames[0]).toMatchObject({ type: 'hello', instanceId: instance.id, token: TOKEN, provider: 'sandbox' });
  await waitFor(() => conn.ofType('qr').length, 'a QR', 10_000);
  expect(conn.ofType('state').at(-1)).toEqual({ type: 'state', state: 'qr', reason: 'waiting for QR scan' });
  expect(conn.ofType('qr')[0]!.code).toStartWith(`wgs-sandbox:${instance.id}:`);

  conn.send({ type: 'command', commandId: 1, name: 'sandbox.scan', args: {} });
  conn.send({ type: 'command', commandId: 2, name: 'send', args: { messageId: 'm-1', to: '15550002222', type: 'text', text: 'hi' } });
  const events = await waitFor(() => conn.ofType('event').length >= 3 && conn.ofType('event'), 'three receipts');
  expect(conn.ofType('result').map((r) => [r.commandId, r.ok])).toEqual([
    [1, true],
    [2, true],
  ]);
  expect(conn.ofType('state').at(-1)).toMatchObject({ state: 'connected' });
  expect(events.map((e) => (e.event.type === 'message.status' ? e.event.data.status : e.event.type))).toEqual(['sent', 'delivered', 'read']);
  expect(conn.invalid).toEqual([]);

  proc.kill('SIGTERM');
  expect(await exitWithin(proc, 5_000)).toBe(0);
  expect(conn.closed?.code).toBe(1000);
  expect(await lockIsFree(instance)).toBe(true);
  const logs = await stdout;
  expect(logs).not.toContain(TOKEN);
  expect(logs).not.toContain(instance.password);
  expect(logs).toContain('instance lock held');
  const first = JSON.parse(logs.split('\n')[0]!);
  expect(first).toMatchObject({ service: 'wgs-worker', instanceId: instance.id });
});

test('a 4401 close from the gateway ends the worker with code 1', async () => {
  const gateway = await startGateway();
  const { proc } = spawnWorker(workerEnv(gateway, await newInstance()));
  const conn = await waitFor(() => gateway.connections[0]?.frames.length && gateway.connections[0], 'a hello', 15_000);
  conn.close(CloseCodes.unauthorized, 'bad token');
  expect(await exitWithin(proc, 5_000)).toBe(1);
});

test('a missing WGS_INSTANCE_ID: exit 1 with one line naming it', async () => {
  const gateway = await startGateway();
  const { WGS_INSTANCE_ID: _omitted, ...env } = workerEnv(gateway, await newInstance());
  const { proc, stderr } = spawnWorker(env);
  expect(await exitWithin(proc, 10_000)).toBe(1);
  const text = await stderr;
  expect(text).toStartWith('wgs worker failed to start: invalid configuration: WGS_INSTANCE_ID:');
  expect(text.trimEnd().split('\n')).toHaveLength(1);
  expect(gateway.connections).toHaveLength(0);
});

test('a missing WGS_STATE_DSN: exit 1 naming it, before dialling the gateway', async () => {
  const gateway = await startGateway();
  const { WGS_STATE_DSN: _omitted, ...env } = workerEnv(gateway, await newInstance());
  const { proc, stderr } = spawnWorker(env);
  expect(await exitWithin(proc, 10_000)).toBe(1);
  expect(await stderr).toStartWith(
    'wgs worker failed to start: invalid configuration: WGS_STATE_DSN: required when WGS_PROVIDER is sandbox',
  );
  expect(gateway.connections).toHaveLength(0);
});

test('one owner at a time: a second worker waits, holds its commands, and takes over after a SIGKILL of the first', async () => {
  const gateway = await startGateway();
  const instance = await newInstance();
  const first = spawnWorker(workerEnv(gateway, instance));
  const conn1 = await waitFor(() => gateway.connections[0]?.ofType('qr').length && gateway.connections[0], "the first worker's QR", 15_000);
  conn1.send({ type: 'command', commandId: 1, name: 'sandbox.scan', args: {} });
  await waitFor(() => conn1.ofType('result').length, 'the scan result');
  expect(conn1.ofType('result')[0]).toMatchObject({ commandId: 1, ok: true });

  const second = spawnWorker(workerEnv(gateway, instance));
  const conn2 = await waitFor(() => gateway.connections[1], 'the second worker to connect', 15_000);
  await waitFor(() => states(conn2).includes('starting: waiting for previous owner'), 'the second worker to wait', 10_000);
  // A command for the instance reaches the waiting worker: it is held, not refused.
  const send = { messageId: 'm-1', to: '15550002222', type: 'text', text: 'hi' };
  conn2.send({ type: 'command', commandId: 2, name: 'send', args: send });
  await Bun.sleep(1_000); // the first worker lives on: nothing may change on the second
  expect(states(conn2)).toEqual(['starting', 'starting: waiting for previous owner']);
  expect(conn2.ofType('result')).toEqual([]);
  expect(states(conn1).filter((s) => s.startsWith('connected'))).toEqual(['connected: paired by sandbox scan']);

  const killedAt = Date.now();
  first.proc.kill('SIGKILL');
  await waitFor(() => states(conn2).some((s) => s.startsWith('connected')), 'the second worker to take over', 10_000);
  expect(Date.now() - killedAt).toBeLessThan(10_000);
  expect(states(conn2).slice(-1)).toEqual(['connected: session restored']);
  expect(conn2.ofType('qr')).toEqual([]);
  // The held command ran once the lock was taken, on the restored session.
  await waitFor(() => conn2.ofType('result').length, 'the held send to run');
  expect(conn2.ofType('result')[0]).toMatchObject({ commandId: 2, ok: true, data: { messageId: 'm-1', status: 'sent' } });
  await waitFor(() => conn2.ofType('event').length >= 3, 'its receipts');
  expect(conn2.invalid).toEqual([]);

  second.proc.kill('SIGTERM');
  expect(await exitWithin(second.proc, 5_000)).toBe(0);
});

test('SIGTERM while waiting for the lock: exit 0 within 5 s', async () => {
  const gateway = await startGateway();
  const instance = await newInstance();
  spawnWorker(workerEnv(gateway, instance));
  await waitFor(() => gateway.connections[0]?.ofType('qr').length, "the first worker's QR", 15_000);
  const second = spawnWorker(workerEnv(gateway, instance));
  const conn2 = await waitFor(() => gateway.connections[1], 'the second worker to connect', 15_000);
  await waitFor(() => states(conn2).includes('starting: waiting for previous owner'), 'the second worker to wait', 10_000);
  second.proc.kill('SIGTERM');
  expect(await exitWithin(second.proc, 5_000)).toBe(0);
  expect(conn2.closed?.code).toBe(1000);
});

test('a lost state connection ends the worker with code 1 at once', async () => {
  const gateway = await startGateway();
  const instance = await newInstance();
  const { proc, stdout } = spawnWorker(workerEnv(gateway, instance));
  await waitFor(() => gateway.connections[0]?.ofType('qr').length, 'a QR', 15_000);
  await db.terminate(instance.role);
  expect(await exitWithin(proc, 5_000)).toBe(1);
  expect(await stdout).toContain('lost the state connection');
});

test('a state store that cannot be opened: state failed, then exit 1', async () => {
  const gateway = await startGateway();
  const instance = await newInstance();
  const { proc } = spawnWorker({ ...workerEnv(gateway, instance), WGS_STATE_SCHEMA: 'no_such_schema' });
  expect(await exitWithin(proc, 10_000)).toBe(1);
  // The exit can be seen before the gateway has read the last frames and the close: wait for them.
  const conn = await waitFor(() => gateway.connections.at(-1)?.ofType('state').some((f) => f.state === 'failed') && gateway.latest, 'the failed state');
  await waitFor(() => conn.closed, 'the close');
  expect(conn.ofType('state').at(-1)).toMatchObject({ state: 'failed', reason: expect.stringContaining('no_such_schema') });
  expect(conn.closed?.code).toBe(1000);
});
