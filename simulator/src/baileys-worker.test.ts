/**
 * The judge for the Baileys worker: the real TypeScript worker on its
 * `baileys` provider (npm baileys 7.0.0-rc14, unmodified), bundled and run
 * on Node 24, with a fake gateway and real Postgres, links to the simulator
 * (QR, pairing code), is restored after kill -9 with no new link, is
 * unlinked and logs out, and sends and receives every message type to and
 * from a simulated phone (content checked on the other side), with receipts
 * and media over HTTPS (trusted through NODE_EXTRA_CA_CERTS only); and it
 * messages a whatsmeow worker. Loopback only.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { createHash, randomBytes } from 'node:crypto';
import { until } from '../../tests/support/poll';
import { ensureWhatsmeowBinary } from '../../tests/conformance/workers';
import type { TestStateDb, TestInstanceState } from '../../workers/src/testing/state-db';
import { openBaileysTestbed, startBaileysWorker } from './baileys-testing';
import type { RunningSimulator } from './server';
import { command, control, events, startWorker, statuses, type WorkerRun } from './testing';

let db: TestStateDb;
let sim: RunningSimulator;
/** Cleaned after each test (workers a test starts for itself). */
const cleanups: (() => unknown)[] = [];
/** Cleaned at the end (the shared worker of the message tests). */
const lasting: (() => unknown)[] = [];
const logs: string[] = [];

beforeAll(async () => {
  ({ db, sim } = await openBaileysTestbed(logs));
}, 320_000);

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  for (const c of lasting.splice(0).reverse()) await c();
  await sim?.stop();
  await db?.cleanup();
});

let nextInstance = 1301;
let nextPhone = 4915400000100;
let nextCommand = 1;

async function newPhone(): Promise<string> {
  const phone = String(nextPhone++);
  expect((await control(sim, 'POST', '/phones', { phone })).status).toBe(201);
  return phone;
}

/** On failure, the worker's own log and the simulator's last lines say why. */
async function explain<T>(run: WorkerRun, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    run.proc.kill('SIGKILL');
    const out = await run.output;
    throw new Error(
      `${err instanceof Error ? err.message : String(err)}\nstates: ${run.states().join(' → ')}\nsimulator: ${logs.slice(-20).join('\n')}\nworker log:\n${out.split('\n').slice(-60).join('\n')}`,
    );
  }
}

const connected = (run: WorkerRun) => until('the worker to report connected', () => run.state() === 'connected', 30_000);
const stateFrames = (run: WorkerRun) => run.frames().flatMap((f) => (f.type === 'state' ? [f] : []));

/** A Baileys worker that shows a QR, and the phone that scans it: linked and connected. */
async function linkedByQr(into: (() => unknown)[] = cleanups, env: Record<string, string> = {}) {
  const phone = await newPhone();
  const state = await db.createInstance();
  const instanceId = nextInstance++;
  const run = startBaileysWorker(sim, instanceId, state, into, phone, env);
  const deviceJid = await explain(run, async () => {
    const qr = await until('a qr frame from the worker', () => run.qrCodes()[0], 30_000);
    const link = await control(sim, 'POST', `/phones/${phone}/link`, { qr });
    expect(link.status).toBe(200);
    await connected(run);
    return link.body.deviceJid as string;
  });
  return { phone, state, instanceId, run, deviceJid };
}

const deviceList = async (phone: string) => (await control(sim, 'GET', `/phones/${phone}/devices`)).body.devices as any[];

describe('linking and the session', () => {
  test('QR: qr → pairing → connected ("connected to WhatsApp"); the phone lists the device; creds and keys are in the schema', async () => {
    const { phone, run, deviceJid, state } = await linkedByQr();
    expect(deviceJid).toMatch(new RegExp(`^${phone}:\\d+@s\\.whatsapp\\.net$`));
    const states = run.states();
    expect(states.indexOf('qr')).toBeGreaterThanOrEqual(0);
    expect(states.indexOf('pairing')).toBeGreaterThan(states.indexOf('qr'));
    expect(states.lastIndexOf('connected')).toBeGreaterThan(states.indexOf('pairing'));
    expect(stateFrames(run).at(-1)).toMatchObject({ state: 'connected', reason: 'connected to WhatsApp' });
    expect(await deviceList(phone)).toEqual([expect.objectContaining({ jid: deviceJid, connected: true })]);
    const [creds] = await db.admin.unsafe(`select value from ${state.schema}.baileys_creds`);
    expect(JSON.parse(creds!.value).me.id).toBe(deviceJid);
    const keys = await db.admin.unsafe(`select type, count(*)::int as n from ${state.schema}.baileys_keys group by type`);
    expect(keys.find((k) => k.type === 'pre-key')?.n).toBeGreaterThan(0);
  }, 90_000);

  test('restore: kill -9 of a linked worker; a new worker on the same schema connects ("session restored") with no QR', async () => {
    const { phone, state, instanceId, run, deviceJid } = await linkedByQr();
    run.proc.kill('SIGKILL');
    await run.proc.exited;
    await until('the simulator to see the device disconnected', async () => (await deviceList(phone))[0]?.connected === false);
    const again = startBaileysWorker(sim, instanceId, state, cleanups, phone);
    await explain(again, () => connected(again));
    expect(again.qrCodes()).toEqual([]);
    expect(again.states()).not.toContain('qr');
    expect(stateFrames(again).at(-1)).toMatchObject({ state: 'connected', reason: 'session restored' });
    expect(await deviceList(phone)).toEqual([expect.objectContaining({ jid: deviceJid, connected: true })]);
  }, 90_000);

  test('unlink: the phone removes the device → logged_out, the store is cleared, a fresh QR', async () => {
    const { phone, run, deviceJid, state } = await linkedByQr();
    const qrsBefore = run.qrCodes().length;
    const removed = await control(sim, 'DELETE', `/phones/${phone}/devices/${encodeURIComponent(deviceJid)}`);
    expect(removed.status).toBe(200);
    await explain(run, () => until('logged_out', () => run.states().includes('logged_out'), 30_000));
    expect(stateFrames(run).find((s) => s.state === 'logged_out')?.reason).toContain('logged out');
    await explain(run, () => until('a new QR after the logout', () => run.qrCodes().length > qrsBefore, 30_000));
    expect(run.state()).toBe('qr');
    const [creds] = await db.admin.unsafe(`select value from ${state.schema}.baileys_creds`);
    expect(JSON.parse(creds!.value).me).toBeUndefined();
    expect(await deviceList(phone)).toEqual([]);
  }, 90_000);

  test('unlink while the worker is down: the next start is refused → logged_out, then a QR, never connected', async () => {
    const { phone, state, instanceId, run, deviceJid } = await linkedByQr();
    run.proc.kill('SIGKILL');
    await run.proc.exited;
    expect((await control(sim, 'DELETE', `/phones/${phone}/devices/${encodeURIComponent(deviceJid)}`)).status).toBe(200);
    const again = startBaileysWorker(sim, instanceId, state, cleanups, phone);
    await explain(again, () => until('logged_out', () => again.states().includes('logged_out'), 30_000));
    await explain(again, () => until('a fresh QR', () => again.qrCodes().length > 0, 30_000));
    expect(again.states()).not.toContain('connected');
  }, 90_000);

  test('pairing code: pair-code → an 8-character code; a wrong code is refused, the right one links → connected', async () => {
    const phone = await newPhone();
    const state = await db.createInstance();
    const run = startBaileysWorker(sim, nextInstance++, state, cleanups, phone);
    await explain(run, async () => {
      await until('the login socket (a QR)', () => run.qrCodes()[0], 30_000);
      const result = await command(run, 1, 'pair-code', { phone });
      expect(result).toMatchObject({ ok: true });
      const code = String(result.data?.code);
      expect(code).toMatch(/^[1-9A-HJ-NP-TV-Z]{8}$/);
      expect(run.state()).toBe('pairing');
      const wrong = code === 'AAAAAAAA' ? 'BBBBBBBB' : 'AAAAAAAA';
      const refused = await control(sim, 'POST', `/phones/${phone}/link-code`, { code: wrong });
      expect(refused.status).toBe(410);
      const link = await control(sim, 'POST', `/phones/${phone}/link-code`, { code: `${code.slice(0, 4)}-${code.slice(4)}` });
      expect(link.status).toBe(200);
      await connected(run);
    });
    expect(run.states()).toContain('pairing');
    expect((await command(run, 2, 'pair-code', { phone })).error?.code).toBe('already_connected');
  }, 120_000);

  test('one live socket per device: a second worker on the same keys takes over → the first is failed ("replaced") and stays down', async () => {
    const { phone, state, run } = await linkedByQr();
    const second = startBaileysWorker(sim, nextInstance++, state, cleanups, phone);
    await explain(second, () => connected(second));
    await explain(run, () => until('the first worker to be replaced', () => run.state() === 'failed', 30_000));
    expect(stateFrames(run).at(-1)?.reason).toContain('replaced');
    // Never a reconnect loop: the first stays failed while the second stays connected.
    const seen = run.states().length;
    const deadline = Date.now() + 3_000;
    while (Date.now() < deadline) {
      expect(run.states().length).toBe(seen);
      await Bun.sleep(100);
    }
    expect(second.state()).toBe('connected');
    expect(await deviceList(phone)).toEqual([expect.objectContaining({ connected: true })]);
  }, 120_000);

  test('faults: dropped connections and an outage → reconnecting, then connected again without a new link', async () => {
    const { phone, run } = await linkedByQr();
    const linkedStates = run.states().length;
    const fault = await control(sim, 'POST', '/faults', { dropConnections: true, unreachableMs: 3_000 });
    expect(fault.status).toBe(200);
    await explain(run, () => until('reconnecting', () => run.states().slice(linkedStates).includes('reconnecting'), 30_000));
    await explain(run, () => until('connected again', () => run.states().slice(linkedStates).includes('connected'), 60_000));
    expect(run.states().slice(linkedStates)).not.toContain('qr');
    expect(await deviceList(phone)).toHaveLength(1);
  }, 120_000);

  test('logout command: the companion removes itself, the phone no longer lists it, then a fresh QR', async () => {
    const { phone, run } = await linkedByQr();
    const qrsBefore = run.qrCodes().length;
    const result = await explain(run, () => command(run, 5, 'logout', {}));
    expect(result).toMatchObject({ ok: true, data: { state: 'logged_out' } });
    await until('the device to be gone', async () => (await deviceList(phone)).length === 0);
    await explain(run, () => until('a fresh QR', () => run.qrCodes().length > qrsBefore, 30_000));
    expect(run.states().filter((s) => s === 'logged_out')).toHaveLength(1);
  }, 90_000);
});

// ---------------------------------------------------------------- messages

/** Sends through the worker; returns the provider's message id once the worker answered ok. */
async function send(run: WorkerRun, args: Record<string, unknown>): Promise<{ messageId: string; providerId: string }> {
  const messageId = `m${nextCommand}`;
  const result = await explain(run, () => command(run, nextCommand++, 'send', { messageId, ...args }));
  if (!result.ok) throw new Error(`send failed: ${JSON.stringify(result.error)}`);
  return { messageId, providerId: result.data.providerMessageId };
}

const inbox = async (phone: string): Promise<any[]> => (await control(sim, 'GET', `/phones/${phone}/messages`)).body;
const onPhone = (phone: string, id: string, what = `message ${id} on ${phone}`) =>
  until(what, async () => (await inbox(phone)).find((m) => m.id === id && !m.fromMe), 20_000);
const received = (run: WorkerRun, id: string) => until(`message.received ${id}`, () => events(run, 'message.received').find((e) => e.id === id), 20_000);
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('one linked Baileys worker and a simulated phone', () => {
  let worker: { phone: string; run: WorkerRun; state: TestInstanceState };
  let phone: string;

  beforeAll(async () => {
    worker = await linkedByQr(lasting);
    phone = await newPhone();
  }, 120_000);

  test('text worker → phone: decrypted by the phone; sent, delivered, then read after the phone reads it', async () => {
    const { messageId, providerId } = await send(worker.run, { to: phone, type: 'text', text: 'hello phone' });
    const got = await explain(worker.run, () => onPhone(phone, providerId));
    expect(got).toMatchObject({ id: providerId, from: worker.phone, type: 'text', text: 'hello phone' });
    await explain(worker.run, () => until('delivered', () => statuses(worker.run, messageId).includes('delivered'), 20_000));
    expect(statuses(worker.run, messageId)).not.toContain('read');
    expect((await control(sim, 'POST', `/phones/${phone}/read`, { chat: worker.phone, ids: [providerId] })).status).toBe(200);
    await explain(worker.run, () => until('read', () => statuses(worker.run, messageId).includes('read'), 20_000));
    expect(statuses(worker.run, messageId)).toEqual(['sent', 'delivered', 'read']);
    // The message is kept for WhatsApp's retry requests (getMessage), keyed by its WhatsApp id.
    const [row] = await db.admin.unsafe(`select message_id, message is not null as kept from ${worker.state.schema}.baileys_sent_messages where wa_id = $1`, [providerId]);
    expect({ ...row }).toEqual({ message_id: messageId, kept: true });
  }, 90_000);

  test('a send redelivered with the same gateway message id reuses its WhatsApp id', async () => {
    const args = { messageId: 'redelivered-1', to: phone, type: 'text', text: 'once' };
    const first = await explain(worker.run, () => command(worker.run, nextCommand++, 'send', args));
    const second = await explain(worker.run, () => command(worker.run, nextCommand++, 'send', args));
    expect(first.ok && second.ok).toBe(true);
    expect(second.data.providerMessageId).toBe(first.data.providerMessageId);
  }, 60_000);

  test('text phone → worker: message.received with the same content; read command → the phone gets a read receipt', async () => {
    const sent = await control(sim, 'POST', `/phones/${phone}/messages`, { to: worker.phone, type: 'text', text: 'hello worker' });
    expect(sent.status).toBe(200);
    const evt = await explain(worker.run, () => received(worker.run, sent.body.id));
    expect(evt).toMatchObject({ from: phone, chat: phone, type: 'text', text: 'hello worker' });
    await until('the delivery receipt on the phone', async () => {
      const s = (await control(sim, 'GET', `/phones/${phone}/sent`)).body.find((m: any) => m.id === sent.body.id);
      return s?.receipts.some((r: any) => r.from.startsWith(`${worker.phone}:`));
    });
    const read = await command(worker.run, nextCommand++, 'read', { chat: phone, messageIds: [sent.body.id] });
    expect(read.ok).toBe(true);
    await until('the read receipt on the phone', async () => {
      const s = (await control(sim, 'GET', `/phones/${phone}/sent`)).body.find((m: any) => m.id === sent.body.id);
      return s?.receipts.some((r: any) => r.type === 'read');
    });
  }, 90_000);

  const mediaCases = [
    { type: 'image', mimetype: 'image/png', caption: 'a picture' },
    { type: 'video', mimetype: 'video/mp4', caption: 'a film' },
    { type: 'audio', mimetype: 'audio/ogg; codecs=opus' },
    { type: 'audio', mimetype: 'audio/ogg; codecs=opus', ptt: true },
    { type: 'document', mimetype: 'application/pdf', caption: 'the plan', filename: 'plan.pdf' },
    { type: 'sticker', mimetype: 'image/webp' },
  ] as const;

  for (const c of mediaCases) {
    const label = `${c.type}${'ptt' in c ? ' (voice note)' : ''}`;
    test(`${label} worker → phone: uploaded over HTTPS, the phone decrypts it (same sha256); delivered`, async () => {
      const bytes = randomBytes(40_000 + Math.floor(Math.random() * 1000));
      const args: Record<string, unknown> = {
        to: phone,
        type: c.type,
        media: { data: bytes.toString('base64'), mimetype: c.mimetype, ...('filename' in c ? { filename: c.filename } : {}) },
      };
      if ('caption' in c) args.caption = c.caption;
      if ('ptt' in c) args.ptt = true;
      const { messageId, providerId } = await send(worker.run, args);
      const got = await explain(worker.run, () => onPhone(phone, providerId));
      expect(got).toMatchObject({ type: c.type, media: { mimetype: c.mimetype, size: bytes.length, sha256: sha256(bytes) } });
      if ('caption' in c) expect(got.caption).toBe(c.caption);
      if ('filename' in c) expect(got.media.filename).toBe(c.filename);
      if (c.type === 'audio') expect(Boolean(got.ptt)).toBe('ptt' in c);
      await explain(worker.run, () => until('delivered', () => statuses(worker.run, messageId).includes('delivered'), 20_000));
    }, 60_000);

    test(`${label} phone → worker: message.received carries the same bytes (base64, sha256)`, async () => {
      const bytes = randomBytes(30_000);
      const body: Record<string, unknown> = {
        to: worker.phone,
        type: c.type,
        media: { base64: bytes.toString('base64'), mimetype: c.mimetype, ...('filename' in c ? { filename: c.filename } : {}) },
      };
      if ('caption' in c) body.caption = c.caption;
      if ('ptt' in c) body.ptt = true;
      const sent = await control(sim, 'POST', `/phones/${phone}/messages`, body);
      expect(sent.status).toBe(200);
      const evt = await explain(worker.run, () => received(worker.run, sent.body.id));
      expect(evt).toMatchObject({ from: phone, type: c.type, media: { mimetype: c.mimetype } });
      expect(typeof evt.media.data).toBe('string');
      expect(sha256(Buffer.from(evt.media.data, 'base64'))).toBe(sha256(bytes));
      if ('caption' in c) expect(evt.caption).toBe(c.caption);
      if ('filename' in c) expect(evt.media.filename).toBe(c.filename);
      if (c.type === 'audio') expect(evt.ptt).toBe('ptt' in c);
    }, 60_000);
  }

  test('location, contact and a reply worker → phone', async () => {
    const loc = await send(worker.run, { to: phone, type: 'location', location: { latitude: 52.52, longitude: 13.405, name: 'Berlin', address: 'Mitte' } });
    const contact = await send(worker.run, { to: phone, type: 'contact', contact: { name: 'Ann Example', phone: '4915100000042' } });
    const base = await control(sim, 'POST', `/phones/${phone}/messages`, { to: worker.phone, type: 'text', text: 'quote me' });
    await explain(worker.run, () => received(worker.run, base.body.id));
    const reply = await send(worker.run, { to: phone, type: 'text', text: 'quoted', replyTo: { id: base.body.id, chat: phone, fromMe: false } });
    expect(await explain(worker.run, () => onPhone(phone, loc.providerId))).toMatchObject({
      type: 'location',
      location: { latitude: 52.52, longitude: 13.405, name: 'Berlin', address: 'Mitte' },
    });
    expect(await onPhone(phone, contact.providerId)).toMatchObject({ type: 'contact', contact: { name: 'Ann Example', phone: '4915100000042' } });
    expect(await onPhone(phone, reply.providerId)).toMatchObject({ type: 'text', text: 'quoted', replyTo: { id: base.body.id } });
  }, 60_000);

  test('reaction, its removal, edit and revoke worker → phone reference the right message', async () => {
    const target = await send(worker.run, { to: phone, type: 'text', text: 'original' });
    await onPhone(phone, target.providerId);
    const ref = { id: target.providerId, chat: phone, fromMe: true };
    const reaction = await send(worker.run, { to: phone, type: 'reaction', target: ref, emoji: '❤️' });
    const removal = await send(worker.run, { to: phone, type: 'reaction', target: ref, emoji: '' });
    const edit = await send(worker.run, { to: phone, type: 'edit', target: ref, text: 'edited' });
    const revoke = await send(worker.run, { to: phone, type: 'revoke', target: ref });
    expect(await explain(worker.run, () => onPhone(phone, reaction.providerId))).toMatchObject({ type: 'reaction', reaction: { targetId: target.providerId, emoji: '❤️' } });
    expect(await onPhone(phone, removal.providerId)).toMatchObject({ type: 'reaction', reaction: { targetId: target.providerId, emoji: '' } });
    expect(await onPhone(phone, edit.providerId)).toMatchObject({ type: 'edit', edit: { targetId: target.providerId, text: 'edited' } });
    expect(await onPhone(phone, revoke.providerId)).toMatchObject({ type: 'revoke', revoke: { targetId: target.providerId } });
  }, 60_000);

  test('location, contact, reply, reaction (and removal), edit and revoke phone → worker', async () => {
    const mine = await send(worker.run, { to: phone, type: 'text', text: 'react to me' });
    await onPhone(phone, mine.providerId);
    const post = async (body: Record<string, unknown>) => {
      const r = await control(sim, 'POST', `/phones/${phone}/messages`, { to: worker.phone, ...body });
      expect(r.status).toBe(200);
      return r.body.id as string;
    };
    const loc = await post({ type: 'location', location: { latitude: -33.86, longitude: 151.21, name: 'Sydney' } });
    const contact = await post({ type: 'contact', contact: { name: 'Bob', phone: '4915100000043' } });
    const own = await post({ type: 'text', text: 'typo' });
    const reply = await post({ type: 'text', text: 'a reply', replyTo: mine.providerId });
    const reaction = await post({ type: 'reaction', reaction: { targetId: mine.providerId, emoji: '👍' } });
    const removal = await post({ type: 'reaction', reaction: { targetId: mine.providerId, emoji: '' } });
    const edit = await post({ type: 'edit', edit: { targetId: own, text: 'fixed' } });
    const revoke = await post({ type: 'revoke', revoke: { targetId: own } });
    expect(await explain(worker.run, () => received(worker.run, loc))).toMatchObject({ type: 'location', location: { latitude: -33.86, longitude: 151.21, name: 'Sydney' } });
    expect(await received(worker.run, contact)).toMatchObject({ type: 'contact', contact: { name: 'Bob', phone: '4915100000043' } });
    expect(await received(worker.run, reply)).toMatchObject({ type: 'text', text: 'a reply', replyTo: { id: mine.providerId, chat: phone, fromMe: true } });
    expect(await received(worker.run, reaction)).toMatchObject({ type: 'reaction', emoji: '👍', target: { id: mine.providerId, chat: phone, fromMe: true } });
    expect(await received(worker.run, removal)).toMatchObject({ type: 'reaction', emoji: '', target: { id: mine.providerId, fromMe: true } });
    expect(await received(worker.run, edit)).toMatchObject({ type: 'edit', text: 'fixed', target: { id: own, chat: phone, fromMe: false } });
    expect(await received(worker.run, revoke)).toMatchObject({ type: 'revoke', target: { id: own, chat: phone, fromMe: false } });
  }, 60_000);

  test('autoRead: the phone reads what arrives at once → the worker reports read', async () => {
    expect((await control(sim, 'PUT', `/phones/${phone}/settings`, { autoRead: true })).status).toBe(200);
    try {
      const { messageId } = await send(worker.run, { to: phone, type: 'text', text: 'read me at once' });
      await explain(worker.run, () => until('read', () => statuses(worker.run, messageId).includes('read'), 20_000));
    } finally {
      await control(sim, 'PUT', `/phones/${phone}/settings`, { autoRead: false });
    }
  }, 60_000);

  test('50 texts worker → phone: every one arrives exactly once', async () => {
    const first = nextCommand;
    const count = 50;
    for (let i = 0; i < count; i++) {
      worker.run.gateway.latest.send({ type: 'command', commandId: first + i, name: 'send', args: { messageId: `bulk${i}`, to: phone, type: 'text', text: `bulk ${i}` } } as never);
    }
    nextCommand += count;
    const results = await explain(worker.run, () =>
      until(
        `${count} results`,
        () => {
          const r = worker.run.frames().filter((f) => f.type === 'result' && f.commandId >= first && f.commandId < first + count);
          return r.length >= count ? r : undefined;
        },
        120_000,
      ),
    );
    const ids = new Map<string, string>();
    for (const r of results as any[]) {
      expect(r.ok).toBe(true);
      ids.set(r.data.providerMessageId, r.data.messageId);
    }
    expect(ids.size).toBe(count);
    const got = await explain(worker.run, () =>
      until(
        `${count} bulk texts on the phone`,
        async () => {
          const m = (await inbox(phone)).filter((x) => !x.fromMe && ids.has(x.id));
          return m.length >= count ? m : undefined;
        },
        60_000,
      ),
    );
    expect(new Set(got.map((m) => m.id)).size).toBe(count);
    for (const m of got) expect(m.text).toBe(`bulk ${ids.get(m.id)!.slice(4)}`);
  }, 180_000);

  test('media from an https url: refused on a loopback address (not public) unless WGS_MEDIA_ALLOW_PRIVATE=1', async () => {
    const result = await command(worker.run, nextCommand++, 'send', {
      messageId: 'private-url',
      to: phone,
      type: 'image',
      media: { url: 'https://127.0.0.1:1/x.png', mimetype: 'image/png' },
    });
    expect(result).toMatchObject({ ok: false, error: { code: 'media_failed' } });
    expect(result.error?.message).toContain('not a public address');
  }, 30_000);

  test('a message to a worker that is down waits and arrives once at its next login ("session restored")', async () => {
    worker.run.proc.kill('SIGKILL');
    await worker.run.proc.exited;
    await until('the device offline', async () => (await deviceList(worker.phone))[0]?.connected === false);
    const sent = await control(sim, 'POST', `/phones/${phone}/messages`, { to: worker.phone, type: 'text', text: 'while you were away' });
    expect(sent.status).toBe(200);
    const instanceId = worker.run.frames().find((f) => f.type === 'hello')!.instanceId;
    const again = startBaileysWorker(sim, instanceId, worker.state, lasting, worker.phone);
    worker = { ...worker, run: again };
    await explain(again, () => connected(again));
    expect(stateFrames(again).at(-1)).toMatchObject({ reason: 'session restored' });
    const evt = await explain(again, () => received(again, sent.body.id));
    expect(evt).toMatchObject({ from: phone, type: 'text', text: 'while you were away' });
    await Bun.sleep(300); // a duplicate, if any, would follow within milliseconds on loopback
    expect(events(again, 'message.received').filter((e) => e.id === sent.body.id)).toHaveLength(1);
    // And it still sends after the restore (its Signal sessions came back from Postgres).
    const { providerId } = await send(again, { to: phone, type: 'text', text: 'back again' });
    expect(await explain(again, () => onPhone(phone, providerId))).toMatchObject({ text: 'back again' });
  }, 90_000);

  test("nothing failed on the way: no decryption errors or retries on the phones, no errors in the worker's log", async () => {
    const phoneProblems = logs.filter((l) => l.includes('could not') || l.includes('retry receipt'));
    expect(phoneProblems).toEqual([]);
    worker.run.proc.kill('SIGTERM');
    const out = await worker.run.output;
    const problems = out.split('\n').filter((l) => /"level":(50|60)/.test(l));
    expect(problems).toEqual([]);
  }, 60_000);
});

describe('a whatsmeow worker and a Baileys worker (two accounts)', () => {
  test('they exchange text and an image both ways, with receipts', async () => {
    await ensureWhatsmeowBinary();
    const b = await linkedByQr();
    const wPhone = await newPhone();
    const wState = await db.createInstance();
    const w = startWorker(sim, nextInstance++, wState, cleanups, wPhone);
    await explain(w, async () => {
      const qr = await until('a qr frame from whatsmeow', () => w.qrCodes()[0], 30_000);
      expect((await control(sim, 'POST', `/phones/${wPhone}/link`, { qr })).status).toBe(200);
      await until('whatsmeow connected', () => w.state() === 'connected', 30_000);
    });

    const toW = await send(b.run, { to: wPhone, type: 'text', text: 'hello from baileys' });
    expect(await explain(w, () => received(w, toW.providerId))).toMatchObject({ from: b.phone, type: 'text', text: 'hello from baileys' });
    await explain(b.run, () => until('delivered to whatsmeow', () => statuses(b.run, toW.messageId).includes('delivered'), 20_000));

    const bytes = randomBytes(20_000);
    const toB = await send(w, {
      to: b.phone,
      type: 'image',
      caption: 'back',
      media: { data: bytes.toString('base64'), mimetype: 'image/jpeg' },
      replyTo: { id: toW.providerId, chat: b.phone, fromMe: false },
    });
    const atB = await explain(b.run, () => received(b.run, toB.providerId));
    expect(atB).toMatchObject({ from: wPhone, type: 'image', caption: 'back', replyTo: { id: toW.providerId, fromMe: true } });
    expect(sha256(Buffer.from(atB.media.data, 'base64'))).toBe(sha256(bytes));

    const read = await command(b.run, nextCommand++, 'read', { chat: wPhone, messageIds: [toB.providerId] });
    expect(read.ok).toBe(true);
    await explain(w, () => until('read at whatsmeow', () => statuses(w, toB.messageId).includes('read'), 20_000));

    const back = await send(w, { to: b.phone, type: 'text', text: 'and text' });
    expect(await explain(b.run, () => received(b.run, back.providerId))).toMatchObject({ from: wPhone, text: 'and text' });
  }, 180_000);
});
