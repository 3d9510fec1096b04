/**
 * Worker conformance: the same protocol checks against every worker
 * implementation, each started as a real process against a fake gateway on
 * 127.0.0.1 and a real instance state schema (role + schema, as the gateway
 * grants them). Checks that only apply to one provider say so in their name.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import type postgres from 'postgres';
import { grantInstanceState } from '../../gateway/src/instances/state-store';
import { CloseCodes, PROTOCOL_VERSION } from '../../workers/protocol/frames';
import { dialOrder } from '../../workers/src/failover';
import { FakeGateway, type GatewayConn } from '../../workers/src/testing/fake-gateway';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { until } from '../support/poll';
import {
  closedLoopbackPort,
  ensureNodeWorkerBundle,
  ensureWhatsmeowBinary,
  exitWithin,
  KINDS,
  NODE_BINARY,
  WORKER_NODE_BUNDLE,
  spawnWorker,
  states,
  type WorkerKind,
} from './workers';

const TOKEN = 'wgs-conformance-token-secret';
const STATE_LOCK_CLASS = 2003268353;

let database: TestDatabase;
let sql: postgres.Sql;
beforeAll(async () => {
  database = await createTestDatabase();
  sql = database.database.sql;
  await ensureWhatsmeowBinary();
  await ensureNodeWorkerBundle();
}, 320_000);
afterAll(async () => {
  await database.drop();
});

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Advisory locks are per database: every test gets its own instance id. */
let nextInstanceId = 101;

async function setUp(kind: WorkerKind, opts: { token?: string } = {}) {
  const gateway = new FakeGateway();
  cleanups.push(() => gateway.stop());
  const instanceId = nextInstanceId++;
  const state = await grantInstanceState(sql, database.url, instanceId);
  const password = decodeURIComponent(new URL(state.dsn).password);
  const env: Record<string, string> = {
    WGS_GATEWAY_URL: gateway.baseUrl,
    WGS_INSTANCE_ID: String(instanceId),
    WGS_WORKER_TOKEN: opts.token ?? TOKEN,
    WGS_PROVIDER: kind.provider,
    WGS_STATE_DSN: state.dsn,
    WGS_STATE_SCHEMA: state.schema,
    ...(await kind.env()),
  };
  return { gateway, instanceId, env, password, role: state.role, spawn: () => spawnWorker(kind, env, cleanups) };
}

/** The n-th connection once it has sent its hello. */
const helloOn = (gateway: FakeGateway, n = 0) =>
  until(`connection ${n} to say hello`, () => (gateway.connections[n]?.frames.length ? gateway.connections[n] : undefined), 15_000);

/** Frames that arrived after the welcome: everything but the hello. */
const afterHello = (conn: GatewayConn) => conn.frames.slice(1);

/**
 * WGS_GATEWAY_URL listing `wanted` such that the worker of `instanceId` tries
 * them in that very order: each worker has its own order of the list
 * (workers/src/failover.ts dialOrder, the same in the Go worker).
 */
function listInDialOrder(wanted: string[], instanceId: number): string {
  const order = dialOrder(wanted.map((_, i) => i), instanceId);
  const list: string[] = [];
  order.forEach((position, k) => (list[position] = wanted[k]!));
  return list.join(',');
}

/** The worker's JSON log lines (pino's `msg` and zerolog's `message` both as `msg`). */
function logLines(logs: string): Record<string, unknown>[] {
  return logs.split('\n').flatMap((line) => {
    try {
      const l = JSON.parse(line) as Record<string, unknown>;
      return [{ ...l, msg: l.msg ?? l.message }];
    } catch {
      return [];
    }
  });
}

async function lockIsFree(instanceId: number): Promise<boolean> {
  const [row] = await sql`select pg_try_advisory_lock(${STATE_LOCK_CLASS}::int4, ${instanceId}::int4) as locked`;
  if (row?.locked) await sql`select pg_advisory_unlock(${STATE_LOCK_CLASS}::int4, ${instanceId}::int4)`;
  return Boolean(row?.locked);
}

for (const kind of KINDS) {
  const p = `[${kind.provider}]`;
  describe(`worker conformance ${p}`, () => {
    test(`${p} says hello with its token, instance, provider and protocol ${PROTOCOL_VERSION}; a state frame follows the welcome`, async () => {
      const { gateway, instanceId, spawn } = await setUp(kind);
      spawn();
      const conn = await helloOn(gateway);
      expect(conn.frames[0]).toMatchObject({ type: 'hello', protocol: PROTOCOL_VERSION, instanceId, token: TOKEN, provider: kind.provider });
      const first = await until('a frame after the welcome', () => afterHello(conn)[0]);
      expect(first.type).toBe('state');
      expect(conn.invalid).toEqual([]);
    });

    test(`${p} pings right after the welcome (after the state) with its process's usage: resident memory and CPU time`, async () => {
      const { gateway, spawn } = await setUp(kind);
      spawn();
      const conn = await helloOn(gateway);
      const ping = await until('a ping', () => conn.ofType('ping')[0]);
      expect(afterHello(conn)[0]!.type).toBe('state');
      expect(Number.isInteger(ping.usage?.rssBytes)).toBe(true);
      expect(ping.usage!.rssBytes).toBeGreaterThan(1024 * 1024);
      expect(ping.usage!.cpuSeconds).toBeGreaterThanOrEqual(0);
      expect(conn.invalid).toEqual([]);
    });

    test(`${p} a 4401 close for a bad token ends the worker with exit code 1 and no reconnect`, async () => {
      const { gateway, spawn } = await setUp(kind, { token: 'not-the-instance-token' });
      const { proc } = spawn();
      const conn = await helloOn(gateway);
      const hello = conn.ofType('hello')[0]!;
      expect(hello.token).not.toBe(TOKEN);
      conn.close(CloseCodes.unauthorized, 'bad token');
      expect(await exitWithin(proc, 5_000)).toBe(1);
      expect(gateway.connections).toHaveLength(1);
    });

    test(`${p} send while WhatsApp is not connected: result not_connected "Client not connected"`, async () => {
      const { gateway, spawn } = await setUp(kind);
      spawn();
      const conn = await helloOn(gateway);
      await until('the provider to run', () => kind.live(conn));
      const args = { messageId: 'm-1', to: '15550002222', type: 'text', text: 'hi' };
      conn.send({ type: 'command', commandId: 1, name: 'send', args });
      const result = await until('the send result', () => conn.ofType('result')[0]);
      expect(result).toEqual({ type: 'result', commandId: 1, ok: false, error: { code: 'not_connected', message: 'Client not connected' } });
      expect(conn.invalid).toEqual([]);
    });

    test(`${p} presence (typing indicator): bad args are invalid_args; good ones while WhatsApp is not connected: not_connected (waba: unsupported_command)`, async () => {
      const { gateway, spawn } = await setUp(kind);
      spawn();
      const conn = await helloOn(gateway);
      await until('the provider to run', () => kind.live(conn));
      conn.send({ type: 'command', commandId: 5, name: 'presence', args: { chat: '15550002222', state: 'typing' } });
      conn.send({ type: 'command', commandId: 6, name: 'presence', args: { chat: '15550002222', state: 'composing' } });
      const results = await until('both results', () => (conn.ofType('result').length >= 2 ? conn.ofType('result') : undefined));
      const waba = kind.provider === 'waba';
      expect(results.find((r) => r.commandId === 5)).toMatchObject({ ok: false, error: { code: 'invalid_args' } });
      expect(results.find((r) => r.commandId === 6)).toMatchObject({ ok: false, error: { code: waba ? 'unsupported_command' : 'not_connected' } });
      expect(conn.invalid).toEqual([]);
    });

    const unsupported = kind.unsupported;
    if (unsupported) {
      test(`${p} a protocol command the provider does not implement (${unsupported.name}): unsupported_command`, async () => {
        const { gateway, spawn } = await setUp(kind);
        spawn();
        const conn = await helloOn(gateway);
        await until('the provider to run', () => kind.live(conn));
        conn.send({ type: 'command', commandId: 2, name: unsupported.name, args: unsupported.args });
        const result = await until('the result', () => conn.ofType('result')[0]);
        expect(result).toMatchObject({ commandId: 2, ok: false, error: { code: 'unsupported_command' } });
      });
    }

    test(`${p} the same commandId twice: executed once, answered twice with the same result`, async () => {
      const { gateway, spawn } = await setUp(kind);
      spawn();
      const conn = await helloOn(gateway);
      await until('the provider to run', () => kind.live(conn));
      conn.send({ type: 'command', commandId: 7, name: 'logout', args: {} });
      conn.send({ type: 'command', commandId: 7, name: 'logout', args: {} });
      const results = await until('two results', () => (conn.ofType('result').length >= 2 ? conn.ofType('result') : undefined));
      expect(results[0]).toEqual({ type: 'result', commandId: 7, ok: true, data: { state: 'logged_out' } });
      expect(results[1]).toEqual(results[0]!);
      // Executed once: one logout, one logged_out state.
      expect(conn.ofType('state').filter((s) => s.state === 'logged_out')).toHaveLength(1);
    });

    test(`${p} SIGTERM: exit 0 within 5 s, socket closed with 1000, lock released, no secret in the logs`, async () => {
      const { gateway, instanceId, spawn, password } = await setUp(kind);
      const { proc, output } = spawn();
      const conn = await helloOn(gateway);
      await until('the provider to run', () => kind.live(conn));
      expect(await lockIsFree(instanceId)).toBe(false);
      proc.kill('SIGTERM');
      expect(await exitWithin(proc, 5_000)).toBe(0);
      await until('the close to reach the gateway', () => conn.closed);
      expect(conn.closed?.code).toBe(1000);
      expect(await lockIsFree(instanceId)).toBe(true);
      const logs = await output;
      expect(logs).toContain('instance lock held');
      expect(logs).not.toContain(TOKEN);
      expect(logs).not.toContain(password);
    });

    test(`${p} a lost state connection (its backend terminated) ends the worker with exit code 1`, async () => {
      const { gateway, spawn, role } = await setUp(kind);
      const { proc, output } = spawn();
      const conn = await helloOn(gateway);
      await until('the provider to run', () => kind.live(conn));
      const killed = await sql`select pg_terminate_backend(pid) from pg_stat_activity where usename = ${role}`;
      expect(killed.length).toBeGreaterThan(0);
      expect(await exitWithin(proc, 5_000)).toBe(1);
      expect(await output).toContain('lost the state connection');
    });

    test(`${p} several gateway URLs: a dead first one is skipped, and when the gateway dies the worker moves on to the next, same token, still owning the instance`, async () => {
      const { gateway: second, instanceId, env, spawn } = await setUp(kind);
      const third = new FakeGateway();
      cleanups.push(() => third.stop());
      const dead = `ws://127.0.0.1:${await closedLoopbackPort()}`;
      const [secondUrl, thirdUrl] = [second.workerUrl, third.workerUrl];
      env.WGS_GATEWAY_URL = listInDialOrder([dead, second.baseUrl, third.baseUrl], instanceId);
      const { proc, output } = spawn();

      const conn = await helloOn(second);
      await until('the provider to run', () => kind.live(conn));
      expect(third.connections).toHaveLength(0);
      expect(await lockIsFree(instanceId)).toBe(false);

      await second.stop(); // the replica is gone: its listener and its connections
      const next = await helloOn(third);
      expect(next.frames[0]).toMatchObject({ type: 'hello', protocol: PROTOCOL_VERSION, instanceId, token: TOKEN, provider: kind.provider });
      await until('the state after the welcome', () => afterHello(next)[0]);
      expect(afterHello(next)[0]!.type).toBe('state');
      // The same process, still holding the instance: no restart, no second owner.
      expect(proc.exitCode).toBeNull();
      expect(await lockIsFree(instanceId)).toBe(false);
      expect(next.invalid).toEqual([]);

      proc.kill('SIGTERM');
      expect(await exitWithin(proc, 5_000)).toBe(0);
      const lines = logLines(await output);
      // The first URL it dialled was the dead one (its failure is logged with it), then the connections it logged.
      expect(lines.find((l) => typeof l.url === 'string' && l.url.startsWith('ws://127.0.0.1:'))?.url).toBe(`${dead}/internal/workers/ws`);
      expect(lines.filter((l) => l.msg === 'connected to gateway; saying hello').map((l) => l.url)).toEqual([secondUrl, thirdUrl]);
    });

    test(`${p} two workers for one instance: the second waits for the lock and takes over only after the first exits`, async () => {
      const { gateway, spawn } = await setUp(kind);
      const first = spawn();
      const conn1 = await helloOn(gateway, 0);
      await until("the first worker's provider to run", () => kind.live(conn1));

      const second = spawn();
      const conn2 = await helloOn(gateway, 1);
      await until('the second worker to wait', () => states(conn2).includes('starting: waiting for previous owner'), 10_000);
      // While the first lives, the second stays 'starting' (a bounded look, not a wait for readiness).
      const deadline = Date.now() + 1_000;
      while (Date.now() < deadline) {
        expect(conn2.ofType('state').every((s) => s.state === 'starting')).toBe(true);
        await Bun.sleep(50);
      }

      first.proc.kill('SIGTERM');
      expect(await exitWithin(first.proc, 5_000)).toBe(0);
      await until('the second worker to take over', () => kind.live(conn2), 10_000);
      expect(conn2.invalid).toEqual([]);
      second.proc.kill('SIGTERM');
      expect(await exitWithin(second.proc, 5_000)).toBe(0);
    });
  });
}

test('[sandbox only] after the welcome: state qr with a QR code', async () => {
  const kind = KINDS.find((k) => k.provider === 'sandbox')!;
  const { gateway, spawn } = await setUp(kind);
  spawn();
  const conn = await helloOn(gateway);
  const qr = await until('a QR', () => conn.ofType('qr')[0]);
  expect(qr.code.length).toBeGreaterThan(0);
  expect(Date.parse(qr.expiresAt)).toBeGreaterThan(Date.now() - 1_000);
  expect(conn.ofType('state').at(-1)).toMatchObject({ state: 'qr' });
});

test('[whatsmeow only] after the welcome: starting, then reconnecting with the network reason while WhatsApp is unreachable', async () => {
  const kind = KINDS.find((k) => k.provider === 'whatsmeow')!;
  const { gateway, spawn, env } = await setUp(kind);
  const { proc } = spawn();
  const conn = await helloOn(gateway);
  const reconnecting = await until('a reconnecting state', () => conn.ofType('state').find((s) => s.state === 'reconnecting'));
  expect(conn.ofType('state')[0]!.state).toBe('starting');
  const port = new URL(env.WHATSMEOW_WS_URL ?? '').port;
  expect(reconnecting.reason).toContain('cannot reach WhatsApp');
  expect(reconnecting.reason).toContain(`127.0.0.1:${port}`);
  // It keeps retrying (with backoff) instead of crashing.
  await until('a second attempt', () => conn.ofType('state').filter((s) => s.state === 'reconnecting').length >= 2, 10_000);
  expect(proc.exitCode).toBeNull();
  expect(conn.ofType('qr')).toEqual([]);
  expect(conn.invalid).toEqual([]);
});

test('[baileys only] after the welcome: starting, then reconnecting with the network reason while WhatsApp is unreachable; no crash, no QR', async () => {
  const kind = KINDS.find((k) => k.provider === 'baileys')!;
  const { gateway, spawn, env } = await setUp(kind);
  const { proc } = spawn();
  const conn = await helloOn(gateway);
  const reconnecting = await until('a reconnecting state', () => conn.ofType('state').find((s) => s.state === 'reconnecting'), 15_000);
  expect(conn.ofType('state')[0]!.state).toBe('starting');
  const port = new URL(env.BAILEYS_WS_URL ?? '').port;
  expect(reconnecting.reason).toContain(`127.0.0.1:${port}`);
  await until('a second attempt', () => conn.ofType('state').filter((s) => s.state === 'reconnecting').length >= 2, 15_000);
  expect(proc.exitCode).toBeNull();
  expect(conn.ofType('qr')).toEqual([]);
  expect(conn.invalid).toEqual([]);
});

test('[waba only] after the welcome: starting, then reconnecting naming the unreachable Graph API; no QR; the token never in the output', async () => {
  const kind = KINDS.find((k) => k.provider === 'waba')!;
  const { gateway, spawn, env } = await setUp(kind);
  const { proc, output } = spawn();
  const conn = await helloOn(gateway);
  const reconnecting = await until('a reconnecting state', () => conn.ofType('state').find((s) => s.state === 'reconnecting'), 15_000);
  expect(conn.ofType('state')[0]!.state).toBe('starting');
  expect(reconnecting.reason).toContain(`cannot reach the Graph API at ${env.WABA_GRAPH_BASE_URL}`);
  await until('a second attempt', () => conn.ofType('state').filter((s) => s.state === 'reconnecting').length >= 2, 15_000);
  expect(proc.exitCode).toBeNull();
  expect(conn.ofType('qr')).toEqual([]);
  expect(conn.invalid).toEqual([]);
  proc.kill('SIGTERM');
  expect(await exitWithin(proc, 5_000)).toBe(0);
  expect(await output).not.toContain(env.WABA_ACCESS_TOKEN!);
});

test('[baileys only] a store with corrupt credentials: state failed naming the problem, the worker stays up (no crash loop)', async () => {
  const kind = KINDS.find((k) => k.provider === 'baileys')!;
  const { gateway, spawn, env } = await setUp(kind);
  const { BAILEYS_TABLES } = await import('../../workers/src/providers/baileys/auth-store');
  const { default: postgresClient } = await import('postgres');
  const own = postgresClient(env.WGS_STATE_DSN!, { max: 1, onnotice: () => {}, connection: { search_path: env.WGS_STATE_SCHEMA! } });
  try {
    for (const statement of BAILEYS_TABLES) await own.unsafe(statement);
    await own`insert into baileys_creds (id, value) values (1, '{"noiseKey": broken')`;
  } finally {
    await own.end();
  }
  const { proc } = spawn();
  const conn = await helloOn(gateway);
  const failed = await until('a failed state', () => conn.ofType('state').find((s) => s.state === 'failed'), 15_000);
  expect(failed.reason).toContain('credentials are not valid JSON');
  // Still running a second later, still failed: the gateway sees why instead of restarting a crashing worker.
  const deadline = Date.now() + 1_000;
  while (Date.now() < deadline) {
    expect(proc.exitCode).toBeNull();
    await Bun.sleep(100);
  }
  expect(conn.ofType('state').at(-1)?.state).toBe('failed');
  conn.send({ type: 'command', commandId: 3, name: 'send', args: { messageId: 'm-1', to: '15550002222', type: 'text', text: 'hi' } });
  const result = await until('the send result', () => conn.ofType('result')[0]);
  expect(result).toMatchObject({ ok: false, error: { code: 'not_connected' } });
  // The way out: a logout clears the store and the worker starts over (here: reconnecting, WhatsApp is a closed port).
  conn.send({ type: 'command', commandId: 4, name: 'logout', args: {} });
  const logout = await until('the logout result', () => conn.ofType('result').find((r) => r.commandId === 4));
  expect(logout).toMatchObject({ ok: true, data: { state: 'logged_out' } });
  await until('reconnecting after the logout', () => conn.ofType('state').at(-1)?.state === 'reconnecting', 15_000);
  expect(proc.exitCode).toBeNull();
});

test('[sandbox on Node] the same worker program, bundled for Node: QR, scan, send with receipts, SIGTERM exit 0', async () => {
  const kind = { ...KINDS.find((k) => k.provider === 'sandbox')!, command: () => [NODE_BINARY, WORKER_NODE_BUNDLE] };
  const { gateway, spawn } = await setUp(kind);
  const { proc } = spawn();
  const conn = await helloOn(gateway);
  await until('a QR', () => conn.ofType('qr')[0]);
  conn.send({ type: 'command', commandId: 1, name: 'sandbox.scan', args: {} });
  await until('connected', () => conn.ofType('state').at(-1)?.state === 'connected');
  conn.send({ type: 'command', commandId: 2, name: 'send', args: { messageId: 'm-node', to: '15550002222', type: 'text', text: 'hi' } });
  await until('the read receipt', () => conn.ofType('event').some((e) => e.event.type === 'message.status' && e.event.data.status === 'read'), 10_000);
  proc.kill('SIGTERM');
  expect(await exitWithin(proc, 5_000)).toBe(0);
  expect(conn.invalid).toEqual([]);
});
