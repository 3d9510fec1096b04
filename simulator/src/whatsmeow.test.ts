/**
 * The judge: the real whatsmeow worker (go.mau.fi/whatsmeow, unmodified,
 * only told the simulator's address and root key) links, logs in,
 * reconnects and logs out against the simulator. Loopback only.
 */
import { afterAll, afterEach, beforeAll, expect, test } from 'bun:test';
import { until } from '../../tests/support/poll';
import type { TestStateDb } from '../../workers/src/testing/state-db';
import type { RunningSimulator } from './server';
import { control, startWorker, type WorkerRun, openTestbed } from './testing';

let db: TestStateDb;
let sim: RunningSimulator;
const cleanups: (() => unknown)[] = [];
const logs: string[] = [];

beforeAll(async () => {
  ({ db, sim } = await openTestbed(logs));
}, 320_000);

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  await sim?.stop();
  await db?.cleanup();
});

let nextInstance = 301;
let nextPhone = 4915100000100;
const newPhone = async () => {
  const phone = String(nextPhone++);
  const created = await control(sim, 'POST', '/phones', { phone: `+${phone}` });
  expect(created.status).toBe(201);
  return phone;
};

/** On failure, the worker's own log says why. */
async function explain<T>(run: WorkerRun, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    run.proc.kill('SIGKILL');
    const out = await run.output;
    throw new Error(`${err instanceof Error ? err.message : String(err)}\nstates: ${run.states().join(' → ')}\nsimulator: ${logs.slice(-20).join('\n')}\nworker log:\n${out.split('\n').slice(-60).join('\n')}`);
  }
}

const connected = (run: WorkerRun) => until('the worker to report connected', () => run.state() === 'connected', 30_000);

/** A worker that shows a QR, and the phone that scans it: linked and connected. */
async function linkedByQr() {
  const phone = await newPhone();
  const state = await db.createInstance();
  const instanceId = nextInstance++;
  const run = startWorker(sim, instanceId, state, cleanups, phone);
  const deviceJid = await explain(run, async () => {
    const qr = await until('a qr frame from the worker', () => run.qrCodes()[0], 30_000);
    const link = await control(sim, 'POST', `/phones/${phone}/link`, { qr });
    expect(link.status).toBe(200);
    await connected(run);
    return link.body.deviceJid as string;
  });
  return { phone, state, instanceId, run, deviceJid };
}

test('QR: the worker shows a QR, the phone scans it, the worker reports connected and the phone lists the device', async () => {
  const { phone, run, deviceJid } = await linkedByQr();
  expect(deviceJid).toMatch(new RegExp(`^${phone}:\\d+@s\\.whatsapp\\.net$`));
  const states = run.states();
  expect(states.indexOf('qr')).toBeGreaterThanOrEqual(0);
  expect(states.indexOf('pairing')).toBeGreaterThan(states.indexOf('qr'));
  expect(states.lastIndexOf('connected')).toBeGreaterThan(states.indexOf('pairing'));
  const devices = await control(sim, 'GET', `/phones/${phone}/devices`);
  expect(devices.status).toBe(200);
  expect(devices.body.devices).toEqual([expect.objectContaining({ jid: deviceJid, connected: true })]);
}, 90_000);

test('restore: kill -9 of a linked worker, a new worker on the same schema connects with no QR in between', async () => {
  const { phone, state, instanceId, run, deviceJid } = await linkedByQr();
  run.proc.kill('SIGKILL');
  await run.proc.exited;
  await until('the simulator to see the device disconnected', async () => {
    const d = await control(sim, 'GET', `/phones/${phone}/devices`);
    return d.body.devices[0]?.connected === false;
  });
  const again = startWorker(sim, instanceId, state, cleanups, phone);
  await explain(again, () => connected(again));
  expect(again.qrCodes()).toEqual([]);
  expect(again.states()).not.toContain('qr');
  const devices = await control(sim, 'GET', `/phones/${phone}/devices`);
  expect(devices.body.devices).toEqual([expect.objectContaining({ jid: deviceJid, connected: true })]);
}, 90_000);

test('unlink: the phone removes the device → the worker reports logged_out and shows a fresh QR', async () => {
  const { phone, run, deviceJid } = await linkedByQr();
  const qrsBefore = run.qrCodes().length;
  const removed = await control(sim, 'DELETE', `/phones/${phone}/devices/${encodeURIComponent(deviceJid)}`);
  expect(removed.status).toBe(200);
  expect(removed.body).toEqual({ deviceJid, wasConnected: true });
  await explain(run, () => until('logged_out', () => run.states().includes('logged_out'), 30_000));
  await explain(run, () => until('a new QR after the logout', () => run.qrCodes().length > qrsBefore, 30_000));
  expect((await control(sim, 'GET', `/phones/${phone}/devices`)).body.devices).toEqual([]);
}, 90_000);

test('unlink while the worker is down: the next start is refused (401) → logged_out, then a QR', async () => {
  const { phone, state, instanceId, run, deviceJid } = await linkedByQr();
  run.proc.kill('SIGKILL');
  await run.proc.exited;
  const removed = await control(sim, 'DELETE', `/phones/${phone}/devices/${encodeURIComponent(deviceJid)}`);
  expect(removed.status).toBe(200);
  const again = startWorker(sim, instanceId, state, cleanups, phone);
  await explain(again, () => until('logged_out', () => again.states().includes('logged_out'), 30_000));
  await explain(again, () => until('a fresh QR', () => again.qrCodes().length > 0, 30_000));
  expect(again.states()).not.toContain('connected');
}, 90_000);

test('pairing code: the worker asks for a code (pair-code command), the phone enters it → connected', async () => {
  const phone = await newPhone();
  const state = await db.createInstance();
  const run = startWorker(sim, nextInstance++, state, cleanups, phone);
  await explain(run, async () => {
    await until('the login socket (a QR)', () => run.qrCodes()[0], 30_000);
    run.gateway.latest.send({ type: 'command', commandId: 1, name: 'pair-code', args: { phone } });
    const result = await until('the pair-code result', () => run.frames().find((f) => f.type === 'result' && f.commandId === 1), 30_000);
    const code = String((result as { data?: { code?: unknown } }).data?.code);
    expect(result).toMatchObject({ ok: true });
    expect(code).toMatch(/^[1-9A-HJ-NP-TV-Z]{8}$/);
    // a wrong code is refused and the right one still works afterwards
    const wrong = code === 'AAAAAAAA' ? 'BBBBBBBB' : 'AAAAAAAA';
    const refused = await control(sim, 'POST', `/phones/${phone}/link-code`, { code: wrong });
    expect(refused.status).toBe(410);
    expect(refused.body.code).toBe('unknown_code');
    const link = await control(sim, 'POST', `/phones/${phone}/link-code`, { code: `${code.slice(0, 4)}-${code.slice(4)}` });
    expect(link.status).toBe(200);
    expect(link.body.deviceJid).toMatch(new RegExp(`^${phone}:\\d+@s\\.whatsapp\\.net$`));
    await connected(run);
  });
}, 120_000);

test('one live socket per device: a second client with the same device replaces the first (stream replaced → failed)', async () => {
  const { phone, state, run } = await linkedByQr();
  // Same schema (same device keys), another instance id (its own lock): a second client for one device.
  const second = startWorker(sim, nextInstance++, state, cleanups, phone);
  await explain(second, () => connected(second));
  await explain(run, () => until('the first worker to be replaced', () => run.state() === 'failed', 30_000));
  const failed = run.frames().filter((f) => f.type === 'state' && f.state === 'failed').at(-1);
  expect(failed).toMatchObject({ reason: expect.stringContaining('replaced') });
  const devices = await control(sim, 'GET', `/phones/${phone}/devices`);
  expect(devices.body.devices).toEqual([expect.objectContaining({ connected: true, replaced: 1 })]);
  expect(second.state()).toBe('connected');
}, 120_000);

test('faults: dropped connections and an outage → reconnecting, then connected again without a new link', async () => {
  const { phone, run } = await linkedByQr();
  const linkedStates = run.states().length;
  const fault = await control(sim, 'POST', '/faults', { dropConnections: true, unreachableMs: 3_000 });
  expect(fault.status).toBe(200);
  expect(fault.body.dropped).toBeGreaterThanOrEqual(1);
  await explain(run, () => until('reconnecting', () => run.states().slice(linkedStates).includes('reconnecting'), 30_000));
  await explain(run, () => until('connected again', () => run.states().slice(linkedStates).includes('connected'), 60_000));
  const after = run.states().slice(linkedStates);
  expect(after.indexOf('connected')).toBeGreaterThan(after.indexOf('reconnecting'));
  expect(after).not.toContain('qr');
  expect((await control(sim, 'GET', `/phones/${phone}/devices`)).body.devices).toHaveLength(1);
}, 120_000);

test('trust: a worker told another root key refuses the simulator (whatsmeow checks the chain) and never shows a QR', async () => {
  const state = await db.createInstance();
  const impostor = { ...sim, rootPublicKey: '11'.repeat(32) };
  const run = startWorker(impostor, nextInstance++, state, cleanups);
  const reconnecting = await explain(run, () =>
    until('a reconnecting state', () => run.frames().find((f) => f.type === 'state' && f.state === 'reconnecting'), 30_000),
  );
  expect(reconnecting).toMatchObject({ reason: expect.stringContaining('failed to verify server cert') });
  expect(run.qrCodes()).toEqual([]);
}, 60_000);

test('logout from the worker (logout command): the companion removes itself and the phone no longer lists it', async () => {
  const { phone, run } = await linkedByQr();
  run.gateway.latest.send({ type: 'command', commandId: 5, name: 'logout', args: {} });
  const result = await explain(run, () => until('the logout result', () => run.frames().find((f) => f.type === 'result' && f.commandId === 5), 30_000));
  expect(result).toMatchObject({ ok: true });
  await until('the device to be gone', async () => (await control(sim, 'GET', `/phones/${phone}/devices`)).body.devices.length === 0);
}, 90_000);
