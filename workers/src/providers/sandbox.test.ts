import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { providerError } from '../testing/provider-error';
import type { SessionState, WorkerEvent } from '../../protocol/frames';
import { createLogger } from '../logger';
import { openStateStore, type StateStore } from '../state/store';
import { waitFor } from '../testing/fake-gateway';
import { TestStateDb } from '../testing/state-db';
import { SandboxProvider } from './sandbox';
import type { ProviderContext } from './types';

const QR_INTERVAL_MS = 50;

/** Records every context call in one timeline, as the connection would see them. */
class RecordingContext implements ProviderContext {
  readonly timeline: (
    | { kind: 'state'; state: SessionState; reason?: string }
    | { kind: 'qr'; code: string; expiresAt: Date; at: number }
    | { kind: 'event'; event: WorkerEvent }
  )[] = [];
  log = createLogger({ level: 'silent', instanceId: 9 });

  constructor(readonly store: StateStore) {}

  setState(state: SessionState, reason?: string) {
    this.timeline.push({ kind: 'state', state, reason });
  }
  setQr(code: string, expiresAt: Date) {
    this.timeline.push({ kind: 'qr', code, expiresAt, at: Date.now() });
  }
  emit(event: WorkerEvent) {
    this.timeline.push({ kind: 'event', event });
  }
  phone() {
    return '15550001111';
  }
  states() {
    return this.timeline.flatMap((e) => (e.kind === 'state' ? [e.state] : []));
  }
  qrs() {
    return this.timeline.flatMap((e) => (e.kind === 'qr' ? [e] : []));
  }
  events() {
    return this.timeline.flatMap((e) => (e.kind === 'event' ? [e.event] : []));
  }
}

let db: TestStateDb;
beforeAll(async () => {
  db = await TestStateDb.create();
});
afterAll(async () => {
  await db.cleanup();
});

const started: SandboxProvider[] = [];
const stores: StateStore[] = [];
const lost: Error[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop()));
  await Promise.all(stores.splice(0).map((s) => s.close()));
  expect(lost.splice(0)).toEqual([]);
});

/** Advisory locks are per database, not per role: each simulated instance needs its own id. */
let nextInstanceId = 1;

/** A fresh instance (role and schema) and its open store. */
async function newStore(): Promise<StateStore> {
  const inst = await db.createInstance();
  const store = await openStateStore({
    dsn: inst.dsn,
    schema: inst.schema,
    instanceId: nextInstanceId++,
    log: createLogger({ level: 'silent', instanceId: 9 }),
    onLost: (err) => lost.push(err),
  });
  stores.push(store);
  return store;
}

async function startSandbox(receiptDelaysMs: [number, number, number] = [5, 10, 15], store?: StateStore) {
  const provider = new SandboxProvider({ instanceId: 9, qrIntervalMs: QR_INTERVAL_MS, receiptDelaysMs });
  const ctx = new RecordingContext(store ?? (await newStore()));
  started.push(provider);
  await provider.start(ctx);
  return { provider, ctx };
}

async function startPaired(receiptDelaysMs?: [number, number, number], store?: StateStore) {
  const s = await startSandbox(receiptDelaysMs, store);
  await s.provider.execute('sandbox.scan', {});
  return s;
}


const SEND = { messageId: 'm-1', to: '15550002222', type: 'text', text: 'hello' };

describe('sandbox provider', () => {
  test('start: starting, then qr with a QR code at once', async () => {
    const before = Date.now();
    const { ctx } = await startSandbox();
    expect(ctx.timeline[0]).toEqual({ kind: 'state', state: 'starting', reason: undefined });
    expect(ctx.timeline[1]).toEqual({ kind: 'state', state: 'qr', reason: 'waiting for QR scan' });
    const [first] = ctx.qrs();
    expect(first?.code).toMatch(/^wgs-sandbox:9:[A-Za-z0-9_-]+$/);
    expect(first!.expiresAt.getTime()).toBeGreaterThanOrEqual(before + QR_INTERVAL_MS);
  });

  test('QR codes rotate, each one new and valid for one interval', async () => {
    const { ctx } = await startSandbox();
    const qrs = await waitFor(() => ctx.qrs().length >= 3 && ctx.qrs(), 'three QR codes');
    expect(new Set(qrs.map((q) => q.code)).size).toBe(qrs.length);
    for (const q of qrs) {
      // expiresAt is computed a moment before the context records the call.
      expect(q.expiresAt.getTime() - q.at).toBeWithin(QR_INTERVAL_MS - 5, QR_INTERVAL_MS + 1);
    }
  });

  test('scan: pairing then connected, and the QR rotation stops', async () => {
    const { provider, ctx } = await startSandbox();
    expect(await provider.execute('sandbox.scan', {})).toEqual({ state: 'connected' });
    expect(ctx.states()).toEqual(['starting', 'qr', 'pairing', 'connected']);
    expect(ctx.timeline.at(-1)).toEqual({ kind: 'state', state: 'connected', reason: 'paired by sandbox scan' });
    const qrCount = ctx.qrs().length;
    await Bun.sleep(QR_INTERVAL_MS * 3);
    expect(ctx.qrs().length).toBe(qrCount);
  });

  test('scan when connected: already_connected', async () => {
    const { provider } = await startPaired();
    expect((await providerError(provider.execute('sandbox.scan', {}))).code).toBe('already_connected');
  });

  test('scan before start: not_ready', async () => {
    const provider = new SandboxProvider({ instanceId: 9, qrIntervalMs: QR_INTERVAL_MS, receiptDelaysMs: [1, 2, 3] });
    expect((await providerError(provider.execute('sandbox.scan', {}))).code).toBe('not_ready');
  });

  test('send when not connected: not_connected', async () => {
    const { provider, ctx } = await startSandbox();
    const err = await providerError(provider.execute('send', SEND));
    expect(err.code).toBe('not_connected');
    expect(err.message).toBe('Client not connected');
    expect(ctx.events()).toEqual([]);
  });

  test('send when connected: result, then sent, delivered and read receipts in order', async () => {
    const { provider, ctx } = await startPaired([5, 10, 15]);
    const result = await provider.execute('send', SEND);
    expect(result).toEqual({ messageId: 'm-1', providerMessageId: expect.stringMatching(/^SBX[0-9A-F]+$/), status: 'sent' });
    const again = await provider.execute('send', { ...SEND, messageId: 'm-2' });
    expect(again.providerMessageId).not.toBe(result.providerMessageId);

    const events = await waitFor(() => ctx.events().length >= 6 && ctx.events(), 'six receipts');
    const forM1 = events.filter((e) => e.type === 'message.status' && e.data.messageId === 'm-1');
    expect(forM1.map((e) => (e.type === 'message.status' ? e.data.status : ''))).toEqual(['sent', 'delivered', 'read']);
    for (const e of forM1) expect(new Date(e.data.timestamp).toISOString()).toBe(e.data.timestamp);
  });

  test('equal receipt delays still arrive in order', async () => {
    const { provider, ctx } = await startPaired([0, 0, 0]);
    await provider.execute('send', SEND);
    const events = await waitFor(() => ctx.events().length >= 3 && ctx.events(), 'three receipts');
    expect(events.map((e) => (e.type === 'message.status' ? e.data.status : e.type))).toEqual(['sent', 'delivered', 'read']);
  });

  test('inbound: message.received with from and text', async () => {
    const { provider, ctx } = await startPaired();
    const result = await provider.execute('sandbox.inbound', { from: '15550003333', type: 'text', text: 'hi there' });
    expect(result.id).toMatch(/^SBX/);
    expect(ctx.events()).toEqual([
      {
        type: 'message.received',
        data: { id: result.id as string, from: '15550003333', chat: '15550003333', type: 'text', text: 'hi there', timestamp: expect.any(String) },
      },
    ]);
    // A given provider id (a message from another sandbox instance) is kept, and so is every field of its type.
    const reaction = { from: '15550003333', id: 'SBXSHARED', type: 'reaction', emoji: '🎉', target: { id: 'SBXOTHER', chat: '15550003333', fromMe: true } };
    expect(await provider.execute('sandbox.inbound', reaction)).toEqual({ id: 'SBXSHARED' });
    expect(ctx.events()[1]).toMatchObject({ type: 'message.received', data: { ...reaction, chat: '15550003333' } });
  });

  test('inbound when not connected: not_connected', async () => {
    const { provider } = await startSandbox();
    const err = await providerError(provider.execute('sandbox.inbound', { from: '15550003333', type: 'text', text: 'x' }));
    expect(err.code).toBe('not_connected');
  });

  test('logout: logged_out, then a new QR cycle; sends fail and pending receipts are cancelled', async () => {
    const { provider, ctx } = await startPaired([30, 30, 30]);
    await provider.execute('send', SEND);
    const qrsBefore = ctx.qrs().length;
    expect(await provider.execute('logout', {})).toEqual({ state: 'logged_out' });
    expect(ctx.states().slice(-2)).toEqual(['logged_out', 'qr']);
    expect(ctx.timeline.find((e) => e.kind === 'state' && e.state === 'logged_out')).toMatchObject({ reason: 'logged out via API' });
    expect(ctx.qrs().length).toBe(qrsBefore + 1);
    expect((await providerError(provider.execute('send', SEND))).code).toBe('not_connected');
    // The rotation runs again, and the receipts of the earlier send never come.
    await waitFor(() => ctx.qrs().length >= qrsBefore + 3, 'rotation after logout');
    expect(ctx.events()).toEqual([]);
    // And the account can be paired again.
    expect(await provider.execute('sandbox.scan', {})).toEqual({ state: 'connected' });
  });

  test('invalid args: invalid_args naming the problem', async () => {
    const { provider } = await startPaired();
    const badPhone = await providerError(provider.execute('send', { ...SEND, to: '+1 555' }));
    expect(badPhone.code).toBe('invalid_args');
    expect(badPhone.message).toContain('/to');
    const badType = await providerError(provider.execute('sandbox.inbound', { from: '15550003333', type: 'fax' }));
    expect(badType.code).toBe('invalid_args');
    expect(badType.message).toContain('/type');
    const noMedia = await providerError(provider.execute('send', { messageId: 'm-x', to: '15550001111', type: 'image' }));
    expect(noMedia.code).toBe('invalid_args');
    expect(noMedia.message).toContain('/media');
    expect((await providerError(provider.execute('send', null))).code).toBe('invalid_args');
  });

  test('an unknown command: unsupported_command', async () => {
    const { provider } = await startPaired();
    // Only reachable with a frame the schema would reject, but the provider must not crash on it.
    const err = await providerError(provider.execute('dance' as never, {}));
    expect(err.code).toBe('unsupported_command');
  });

  test('stop() clears every timer: no QR and no receipt afterwards', async () => {
    const paired = await startPaired([20, 25, 30]);
    await paired.provider.execute('send', SEND);
    const qrOnly = await startSandbox();
    await paired.provider.stop();
    await qrOnly.provider.stop();
    const lengths = [paired.ctx.timeline.length, qrOnly.ctx.timeline.length];
    await Bun.sleep(QR_INTERVAL_MS * 3);
    expect([paired.ctx.timeline.length, qrOnly.ctx.timeline.length]).toEqual(lengths);
    expect((await providerError(paired.provider.execute('send', SEND))).code).toBe('not_ready');
  });
});

/** Receipt statuses of the message.status events, in order. */
const statuses = (events: WorkerEvent[]) =>
  events.map((e) => (e.type === 'message.status' ? `${e.data.messageId}:${e.data.status}` : e.type));

describe('sandbox provider on the state store', () => {
  test('a pairing survives a restart: the next provider is connected at once, without a QR', async () => {
    const a = await startPaired();
    const [device] = await a.ctx.store.sql<{ device_id: string }[]>`select device_id from sandbox_device`;
    expect(device?.device_id).toMatch(/^sandbox-device-[0-9a-f]{16}$/);
    await a.provider.stop();

    const b = await startSandbox(undefined, a.ctx.store);
    expect(b.ctx.timeline).toEqual([
      { kind: 'state', state: 'starting', reason: undefined },
      { kind: 'state', state: 'connected', reason: 'session restored' },
    ]);
    await Bun.sleep(QR_INTERVAL_MS * 2);
    expect(b.ctx.qrs()).toEqual([]);
    // Connected for real: it sends, and a scan is refused.
    expect(await b.provider.execute('send', SEND)).toMatchObject({ status: 'sent' });
    expect((await providerError(b.provider.execute('sandbox.scan', {}))).code).toBe('already_connected');
  });

  test('logout deletes the pairing and the pending receipts: the next provider shows a QR', async () => {
    const a = await startPaired([1_000, 2_000, 3_000]);
    await a.provider.execute('send', SEND);
    expect(await a.ctx.store.sql`select 1 from sandbox_receipts`).toHaveLength(1);
    await a.provider.execute('logout', {});
    expect(await a.ctx.store.sql`select 1 from sandbox_device`).toHaveLength(0);
    expect(await a.ctx.store.sql`select 1 from sandbox_receipts`).toHaveLength(0);
    await a.provider.stop();

    const b = await startSandbox(undefined, a.ctx.store);
    expect(b.ctx.states()).toEqual(['starting', 'qr']);
    expect(b.ctx.qrs()).toHaveLength(1);
  });

  test('each receipt is recorded before it is emitted; the row goes after read', async () => {
    const { provider, ctx } = await startPaired([0, 300, 600]);
    await provider.execute('send', SEND);
    const row = () => ctx.store.sql<{ next_status: string }[]>`select next_status from sandbox_receipts where message_id = 'm-1'`;
    await waitFor(() => ctx.events().length === 1, 'the sent receipt');
    expect((await row())[0]?.next_status).toBe('delivered');
    await waitFor(() => ctx.events().length === 2, 'the delivered receipt');
    expect((await row())[0]?.next_status).toBe('read');
    await waitFor(() => ctx.events().length === 3, 'the read receipt');
    expect(await row()).toHaveLength(0);
  });

  test('receipts resume after a restart, on the schedule of the original send', async () => {
    const a = await startPaired([0, 400, 800]);
    const sentAt = Date.now();
    await a.provider.execute('send', SEND);
    await waitFor(() => a.ctx.events().length === 1, 'the sent receipt');
    await a.provider.stop();
    expect(statuses(a.ctx.events())).toEqual(['m-1:sent']);

    const b = await startSandbox([0, 400, 800], a.ctx.store);
    expect(b.ctx.states()).toEqual(['starting', 'connected']);
    await waitFor(() => b.ctx.events().length === 2, 'the read receipt after the restart', 5_000);
    expect(statuses(b.ctx.events())).toEqual(['m-1:delivered', 'm-1:read']);
    // Not earlier than the original schedule said (a little slack for clock rounding in timestamptz).
    const readAt = Date.parse(b.ctx.events()[1]!.data.timestamp);
    expect(readAt).toBeGreaterThanOrEqual(sentAt + 800 - 5);
    expect(await b.ctx.store.sql`select 1 from sandbox_receipts`).toHaveLength(0);
  });

  test('receipts that fell due while no worker ran are emitted at once, in order', async () => {
    const a = await startPaired([50, 60, 70]);
    await a.provider.execute('send', SEND);
    await a.provider.execute('send', { ...SEND, messageId: 'm-2' });
    await a.provider.stop(); // before any receipt
    expect(a.ctx.events()).toEqual([]);
    await Bun.sleep(100); // every receipt is now overdue

    const started = Date.now();
    const b = await startSandbox([50, 60, 70], a.ctx.store);
    await waitFor(() => b.ctx.events().length === 6, 'six receipts');
    expect(Date.now() - started).toBeLessThan(1_000);
    const byMessage = (id: string) => statuses(b.ctx.events()).filter((s) => s.startsWith(`${id}:`));
    expect(byMessage('m-1')).toEqual(['m-1:sent', 'm-1:delivered', 'm-1:read']);
    expect(byMessage('m-2')).toEqual(['m-2:sent', 'm-2:delivered', 'm-2:read']);
  });

  test('a send redelivered after a restart does not start its receipts twice', async () => {
    const a = await startPaired([200, 250, 300]);
    await a.provider.execute('send', SEND);
    await a.provider.stop();
    const b = await startSandbox([200, 250, 300], a.ctx.store);
    expect(await b.provider.execute('send', SEND)).toMatchObject({ messageId: 'm-1', status: 'sent' });
    await waitFor(() => b.ctx.events().length >= 3, 'three receipts');
    await Bun.sleep(350);
    expect(statuses(b.ctx.events())).toEqual(['m-1:sent', 'm-1:delivered', 'm-1:read']);
  });
});
