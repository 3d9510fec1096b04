import { afterEach, expect, test } from 'bun:test';
import { join } from 'node:path';
import type { Subprocess } from 'bun';
import { CloseCodes } from '../protocol/frames';
import { FakeGateway, waitFor } from './testing/fake-gateway';

const REPO = join(import.meta.dir, '..', '..');
const TOKEN = 'wgs-main-test-token-secret';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function spawnWorker(env: Record<string, string>) {
  const proc = Bun.spawn([process.execPath, 'workers/src/main.ts'], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  cleanups.push(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  return { proc, stdout: new Response(proc.stdout).text(), stderr: new Response(proc.stderr).text() };
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

const workerEnv = (gateway: FakeGateway) => ({
  WGS_GATEWAY_URL: gateway.baseUrl,
  WGS_INSTANCE_ID: '5',
  WGS_WORKER_TOKEN: TOKEN,
  WGS_PROVIDER: 'sandbox',
  SANDBOX_RECEIPT_DELAYS_MS: '5,10,15',
});

test('the worker says hello, reports its QR, runs commands and stops cleanly on SIGTERM', async () => {
  const gateway = await startGateway();
  const { proc, stdout } = spawnWorker(workerEnv(gateway));

  const conn = await waitFor(() => gateway.connections[0]?.frames.length && gateway.connections[0], 'a hello', 15_000);
  expect(conn.frames[0]).toMatchObject({ type: 'hello', instanceId: 5, token: TOKEN, provider: 'sandbox' });
  await waitFor(() => conn.ofType('qr').length, 'a QR');
  expect(conn.ofType('state').at(-1)).toEqual({ type: 'state', state: 'qr', reason: 'waiting for QR scan' });
  expect(conn.ofType('qr')[0]!.code).toStartWith('wgs-sandbox:5:');

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
  const logs = await stdout;
  expect(logs).not.toContain(TOKEN);
  const first = JSON.parse(logs.split('\n')[0]!);
  expect(first).toMatchObject({ service: 'wgs-worker', instanceId: 5 });
});

test('a 4401 close from the gateway ends the worker with code 1', async () => {
  const gateway = await startGateway();
  const { proc } = spawnWorker(workerEnv(gateway));
  const conn = await waitFor(() => gateway.connections[0]?.frames.length && gateway.connections[0], 'a hello', 15_000);
  conn.close(CloseCodes.unauthorized, 'bad token');
  expect(await exitWithin(proc, 5_000)).toBe(1);
});

test('a missing WGS_INSTANCE_ID: exit 1 with one line naming it', async () => {
  const gateway = await startGateway();
  const { WGS_INSTANCE_ID: _omitted, ...env } = workerEnv(gateway);
  const { proc, stderr } = spawnWorker(env);
  expect(await exitWithin(proc, 10_000)).toBe(1);
  const text = await stderr;
  expect(text).toStartWith('wgs worker failed to start: invalid configuration: WGS_INSTANCE_ID:');
  expect(text.trimEnd().split('\n')).toHaveLength(1);
  expect(gateway.connections).toHaveLength(0);
});
