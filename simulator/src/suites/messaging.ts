/**
 * One worker's messages against the simulator: every message type both ways
 * between the worker and a simulated phone (content checked on the other
 * side), receipts, media over HTTPS, bursts, offline delivery and prekeys;
 * and two accounts' workers talking to each other. Each worker's test file
 * calls `messagingSuite` (and `exchangeSuite`) with its WorkerUnderTest and
 * its Testbed.
 */
import { beforeAll, describe, expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { until } from '../../../tests/support/poll';
import { events, statuses } from '../testing';
import { connected, sha256, stateFrames, type Linked, type Testbed } from './testbed';
import type { WorkerUnderTest } from './workers';

/** The suite's shared worker and the phone it talks to (set in its beforeAll). */
export interface SharedWorker {
  worker: Linked;
  phone: string;
}

const mediaCases = [
  { type: 'image', mimetype: 'image/png', caption: 'a picture' },
  { type: 'video', mimetype: 'video/mp4', caption: 'a film' },
  { type: 'audio', mimetype: 'audio/ogg; codecs=opus' },
  { type: 'audio', mimetype: 'audio/ogg; codecs=opus', ptt: true },
  { type: 'document', mimetype: 'application/pdf', caption: 'the plan', filename: 'plan.pdf' },
  { type: 'sticker', mimetype: 'image/webp' },
] as const;

/**
 * The message tests on one linked worker; `own` registers the worker's own
 * tests on the same shared worker (they run after the common ones, before
 * the offline delivery and the log check).
 */
export function messagingSuite(worker: WorkerUnderTest, bed: Testbed, own?: (shared: SharedWorker) => void): void {
  describe(`${worker.name}: one linked worker and a simulated phone`, () => {
    const shared = {} as SharedWorker;
    beforeAll(async () => {
      shared.worker = await bed.linkedByQr(worker, { lasting: true });
      shared.phone = await bed.newPhone();
    }, 120_000);

    test('text worker → phone: decrypted by the phone; sent, delivered, then read after the phone reads it', async () => {
      const { worker: w, phone } = shared;
      const { messageId, providerId } = await bed.send(w.run, { to: phone, type: 'text', text: 'hello phone' });
      const got = await bed.explain(w.run, () => bed.onPhone(phone, providerId));
      expect(got).toMatchObject({ id: providerId, from: w.phone, type: 'text', text: 'hello phone' });
      expect(got.fromDevice).toMatch(new RegExp(`^${w.phone}:\\d+@s\\.whatsapp\\.net$`));
      await bed.explain(w.run, () => until('delivered', () => statuses(w.run, messageId).includes('delivered'), 20_000));
      expect(statuses(w.run, messageId)).not.toContain('read');
      expect((await bed.control('POST', `/phones/${phone}/read`, { chat: w.phone, ids: [providerId] })).status).toBe(200);
      await bed.explain(w.run, () => until('read', () => statuses(w.run, messageId).includes('read'), 20_000));
      expect(statuses(w.run, messageId)).toEqual(['sent', 'delivered', 'read']);
      if (worker.ownPhoneCopy) {
        // the worker's own primary phone got the DeviceSentMessage copy
        const copy = await until("the copy on the worker account's phone", async () => (await bed.inbox(w.phone)).find((m) => m.id === providerId));
        expect(copy).toMatchObject({ fromMe: true, to: `${phone}@s.whatsapp.net`, text: 'hello phone' });
      }
    }, 90_000);

    test("text phone → worker: message.received with the same content; the phone records the worker's delivery receipt; read command → a read receipt", async () => {
      const { worker: w, phone } = shared;
      const sent = await bed.control('POST', `/phones/${phone}/messages`, { to: w.phone, type: 'text', text: 'hello worker' });
      expect(sent.status).toBe(200);
      const evt = await bed.explain(w.run, () => bed.received(w.run, sent.body.id));
      expect(evt).toMatchObject({ from: phone, chat: phone, type: 'text', text: 'hello worker' });
      const onPhone = async () => (await bed.control('GET', `/phones/${phone}/sent`)).body.find((m: any) => m.id === sent.body.id);
      await until('the delivery receipt on the phone', async () => (await onPhone())?.receipts.some((r: any) => r.from.startsWith(`${w.phone}:`)));
      // the worker reads it (read command) → the phone gets a read receipt
      const read = await bed.command(w.run, 'read', { chat: phone, messageIds: [sent.body.id] });
      expect(read.ok).toBe(true);
      await until('the read receipt on the phone', async () => (await onPhone())?.receipts.some((r: any) => r.type === 'read'));
    }, 90_000);

    for (const c of mediaCases) {
      const label = `${c.type}${'ptt' in c ? ' (voice note)' : ''}`;
      const media = (bytes: Buffer, key: 'data' | 'base64') => ({ [key]: bytes.toString('base64'), mimetype: c.mimetype, ...('filename' in c ? { filename: c.filename } : {}) });

      test(`${label} worker → phone: uploaded over HTTPS, the phone decrypts it (same sha256); delivered`, async () => {
        const { worker: w, phone } = shared;
        const bytes = randomBytes(40_000 + Math.floor(Math.random() * 1000));
        const args: Record<string, unknown> = { to: phone, type: c.type, media: media(bytes, 'data') };
        if ('caption' in c) args.caption = c.caption;
        if ('ptt' in c) args.ptt = true;
        const { messageId, providerId } = await bed.send(w.run, args);
        const got = await bed.explain(w.run, () => bed.onPhone(phone, providerId));
        expect(got).toMatchObject({ type: c.type, media: { mimetype: c.mimetype, size: bytes.length, sha256: sha256(bytes) } });
        if ('caption' in c) expect(got.caption).toBe(c.caption);
        if ('filename' in c) expect(got.media.filename).toBe(c.filename);
        if (c.type === 'audio') expect(got.ptt).toBe('ptt' in c);
        await bed.explain(w.run, () => until('delivered', () => statuses(w.run, messageId).includes('delivered'), 20_000));
      }, 60_000);

      test(`${label} phone → worker: message.received carries the same bytes (base64, sha256)`, async () => {
        const { worker: w, phone } = shared;
        const bytes = randomBytes(30_000);
        const body: Record<string, unknown> = { to: w.phone, type: c.type, media: media(bytes, 'base64') };
        if ('caption' in c) body.caption = c.caption;
        if ('ptt' in c) body.ptt = true;
        const sent = await bed.control('POST', `/phones/${phone}/messages`, body);
        expect(sent.status).toBe(200);
        const evt = await bed.explain(w.run, () => bed.received(w.run, sent.body.id));
        expect(evt).toMatchObject({ from: phone, type: c.type, media: { mimetype: c.mimetype } });
        expect(typeof evt.media.data).toBe('string');
        expect(sha256(Buffer.from(evt.media.data, 'base64'))).toBe(sha256(bytes));
        if ('caption' in c) expect(evt.caption).toBe(c.caption);
        if ('filename' in c) expect(evt.media.filename).toBe(c.filename);
        if (c.type === 'audio') expect(evt.ptt).toBe('ptt' in c);
      }, 60_000);
    }

    test('location, contact and a reply worker → phone', async () => {
      const { worker: w, phone } = shared;
      const loc = await bed.send(w.run, { to: phone, type: 'location', location: { latitude: 52.52, longitude: 13.405, name: 'Berlin', address: 'Mitte' } });
      const contact = await bed.send(w.run, { to: phone, type: 'contact', contact: { name: 'Ann Example', phone: '4915100000042' } });
      const base = await bed.control('POST', `/phones/${phone}/messages`, { to: w.phone, type: 'text', text: 'quote me' });
      await bed.explain(w.run, () => bed.received(w.run, base.body.id));
      const reply = await bed.send(w.run, { to: phone, type: 'text', text: 'quoted', replyTo: { id: base.body.id, chat: phone, fromMe: false } });
      expect(await bed.explain(w.run, () => bed.onPhone(phone, loc.providerId))).toMatchObject({
        type: 'location',
        location: { latitude: 52.52, longitude: 13.405, name: 'Berlin', address: 'Mitte' },
      });
      expect(await bed.onPhone(phone, contact.providerId)).toMatchObject({ type: 'contact', contact: { name: 'Ann Example', phone: '4915100000042' } });
      expect(await bed.onPhone(phone, reply.providerId)).toMatchObject({ type: 'text', text: 'quoted', replyTo: { id: base.body.id, participant: `${phone}@s.whatsapp.net` } });
    }, 60_000);

    test('reaction, its removal, edit and revoke worker → phone reference the right message', async () => {
      const { worker: w, phone } = shared;
      const target = await bed.send(w.run, { to: phone, type: 'text', text: 'original' });
      await bed.onPhone(phone, target.providerId);
      const ref = { id: target.providerId, chat: phone, fromMe: true };
      const reaction = await bed.send(w.run, { to: phone, type: 'reaction', target: ref, emoji: '❤️' });
      const removal = await bed.send(w.run, { to: phone, type: 'reaction', target: ref, emoji: '' });
      const edit = await bed.send(w.run, { to: phone, type: 'edit', target: ref, text: 'edited' });
      const revoke = await bed.send(w.run, { to: phone, type: 'revoke', target: ref });
      expect(await bed.explain(w.run, () => bed.onPhone(phone, reaction.providerId))).toMatchObject({ type: 'reaction', reaction: { targetId: target.providerId, emoji: '❤️' } });
      expect(await bed.onPhone(phone, removal.providerId)).toMatchObject({ type: 'reaction', reaction: { targetId: target.providerId, emoji: '' } });
      expect(await bed.onPhone(phone, edit.providerId)).toMatchObject({ type: 'edit', edit: { targetId: target.providerId, text: 'edited' } });
      expect(await bed.onPhone(phone, revoke.providerId)).toMatchObject({ type: 'revoke', revoke: { targetId: target.providerId } });
    }, 60_000);

    test('location, contact, reply, reaction (and removal), edit and revoke phone → worker', async () => {
      const { worker: w, phone } = shared;
      const mine = await bed.send(w.run, { to: phone, type: 'text', text: 'react to me' });
      await bed.onPhone(phone, mine.providerId);
      const post = async (body: Record<string, unknown>) => {
        const r = await bed.control('POST', `/phones/${phone}/messages`, { to: w.phone, ...body });
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
      expect(await bed.explain(w.run, () => bed.received(w.run, loc))).toMatchObject({ type: 'location', location: { latitude: -33.86, longitude: 151.21, name: 'Sydney' } });
      expect(await bed.received(w.run, contact)).toMatchObject({ type: 'contact', contact: { name: 'Bob', phone: '4915100000043' } });
      expect(await bed.received(w.run, reply)).toMatchObject({ type: 'text', text: 'a reply', replyTo: { id: mine.providerId, chat: phone, fromMe: true } });
      expect(await bed.received(w.run, reaction)).toMatchObject({ type: 'reaction', emoji: '👍', target: { id: mine.providerId, chat: phone, fromMe: true } });
      expect(await bed.received(w.run, removal)).toMatchObject({ type: 'reaction', emoji: '', target: { id: mine.providerId, fromMe: true } });
      expect(await bed.received(w.run, edit)).toMatchObject({ type: 'edit', text: 'fixed', target: { id: own, chat: phone, fromMe: false } });
      expect(await bed.received(w.run, revoke)).toMatchObject({ type: 'revoke', target: { id: own, chat: phone, fromMe: false } });
    }, 60_000);

    test('autoRead: the phone reads what arrives at once → the worker reports read', async () => {
      const { worker: w, phone } = shared;
      expect((await bed.control('PUT', `/phones/${phone}/settings`, { autoRead: true })).status).toBe(200);
      try {
        const { messageId } = await bed.send(w.run, { to: phone, type: 'text', text: 'read me at once' });
        await bed.explain(w.run, () => until('read', () => statuses(w.run, messageId).includes('read'), 20_000));
      } finally {
        await bed.control('PUT', `/phones/${phone}/settings`, { autoRead: false });
      }
    }, 60_000);

    test('autoDeliver off: no delivery receipt until the phone reads', async () => {
      const { worker: w, phone } = shared;
      expect((await bed.control('PUT', `/phones/${phone}/settings`, { autoDeliver: false })).status).toBe(200);
      try {
        const { messageId, providerId } = await bed.send(w.run, { to: phone, type: 'text', text: 'silent' });
        await bed.onPhone(phone, providerId);
        await Bun.sleep(500); // a receipt, if one were sent, arrives within milliseconds on loopback
        expect(statuses(w.run, messageId)).toEqual(['sent']);
        await bed.control('POST', `/phones/${phone}/read`, { chat: w.phone, ids: [providerId] });
        await bed.explain(w.run, () => until('read', () => statuses(w.run, messageId).includes('read'), 20_000));
      } finally {
        await bed.control('PUT', `/phones/${phone}/settings`, { autoDeliver: true });
      }
    }, 60_000);

    const count = worker.burst;

    test(`${count} texts worker → phone: every one arrives exactly once`, async () => {
      const { worker: w, phone } = shared;
      const commandIds = Array.from({ length: count }, () => bed.commandId());
      commandIds.forEach((commandId, i) =>
        w.run.gateway.latest.send({ type: 'command', commandId, name: 'send', args: { messageId: `bulk${i}`, to: phone, type: 'text', text: `bulk ${i}` } } as never),
      );
      const wanted = new Set(commandIds);
      const results = await bed.explain(w.run, () =>
        until(
          `${count} results`,
          () => {
            const r = w.run.frames().filter((f) => f.type === 'result' && wanted.has(f.commandId));
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
      const got = await bed.explain(w.run, () =>
        until(
          `${count} bulk texts on the phone`,
          async () => {
            const m = (await bed.inbox(phone)).filter((x) => !x.fromMe && ids.has(x.id));
            return m.length >= count ? m : undefined;
          },
          60_000,
        ),
      );
      expect(got.length).toBe(count);
      expect(new Set(got.map((m) => m.id)).size).toBe(count);
      expect(got.map((m) => m.text).sort()).toEqual(Array.from({ length: count }, (_, i) => `bulk ${i}`).sort());
      for (const m of got) expect(m.text).toBe(`bulk ${ids.get(m.id)!.slice(4)}`);
    }, 180_000);

    test(`${count} texts phone → worker, posted concurrently: the worker reports every one exactly once`, async () => {
      const { worker: w, phone } = shared;
      const posted = await Promise.all(Array.from({ length: count }, (_, i) => bed.control('POST', `/phones/${phone}/messages`, { to: w.phone, type: 'text', text: `inbound ${i}` })));
      const ids = new Map<string, string>(posted.map((p, i) => [p.body.id as string, `inbound ${i}`]));
      expect(ids.size).toBe(count);
      const got = await bed.explain(w.run, () =>
        until(
          `${count} inbound texts`,
          () => {
            const e = events(w.run, 'message.received').filter((x) => ids.has(x.id));
            return e.length >= count ? e : undefined;
          },
          60_000,
        ),
      );
      expect(got.length).toBe(count);
      for (const e of got) expect(e.text).toBe(ids.get(e.id));
    }, 120_000);

    own?.(shared);

    test('a new session takes exactly one one-time prekey; a message to a worker that is down waits and arrives once at its next login ("session restored"), which still sends', async () => {
      const w = await bed.linkedByQr(worker);
      const p = await bed.newPhone();
      const device = async () => (await bed.deviceList(w.phone))[0];
      const before = await until("the worker's prekey upload", async () => (await device())?.preKeys || undefined);
      const post = async (text: string) => (await bed.control('POST', `/phones/${p}/messages`, { to: w.phone, type: 'text', text })).body.id as string;
      const first = await post('first');
      await bed.explain(w.run, () => bed.received(w.run, first));
      expect((await device()).preKeys).toBe(before - 1);
      const second = await post('second');
      await bed.explain(w.run, () => bed.received(w.run, second));
      expect((await device()).preKeys).toBe(before - 1);

      w.run.proc.kill('SIGKILL');
      await w.run.proc.exited;
      await until('the device offline', async () => (await device()).connected === false);
      const third = await post('while you were away');
      expect((await device()).pending).toBe(1);
      const again = bed.start(worker, w.instanceId, w.state, w.phone);
      await bed.explain(again, () => connected(again));
      expect(stateFrames(again).at(-1)).toMatchObject({ reason: 'session restored' });
      const evt = await bed.explain(again, () => bed.received(again, third));
      expect(evt).toMatchObject({ from: p, type: 'text', text: 'while you were away' });
      expect((await device()).pending).toBe(0);
      await Bun.sleep(300); // a duplicate, if any, would follow within milliseconds on loopback
      expect(events(again, 'message.received').filter((e) => e.id === third)).toHaveLength(1);
      // And it still sends after the restore (its Signal sessions came back from Postgres).
      const { providerId } = await bed.send(again, { to: p, type: 'text', text: 'back again' });
      expect(await bed.explain(again, () => bed.onPhone(p, providerId))).toMatchObject({ text: 'back again' });
    }, 120_000);

    test("nothing failed on the way: no decryption errors or retry receipts on the phones, no warnings or errors in the worker's log", async () => {
      const phoneProblems = bed.logs.filter((l) => l.includes('could not') || l.includes('retry receipt'));
      expect(phoneProblems).toEqual([]);
      const { run } = shared.worker;
      run.proc.kill('SIGTERM');
      expect(worker.logProblems(await run.output)).toEqual([]);
    }, 60_000);
  });
}

/**
 * Two accounts, one on worker `a` and one on worker `b`: text a → b (delivered,
 * the b account's phone keeps its copy), an image with a reply b → a, a read
 * a → b, and text b → a.
 */
export function exchangeSuite(a: WorkerUnderTest, b: WorkerUnderTest, bed: Testbed): void {
  describe(`a ${a.name} worker and a ${b.name} worker (two accounts)`, () => {
    test("they exchange text and an image both ways through the simulator, with receipts; each account's phone keeps its copy", async () => {
      const wa = await bed.linkedByQr(a);
      const wb = await bed.linkedByQr(b);
      const toB = await bed.send(wa.run, { to: wb.phone, type: 'text', text: `hello from ${a.name}` });
      expect(await bed.explain(wb.run, () => bed.received(wb.run, toB.providerId))).toMatchObject({ from: wa.phone, chat: wa.phone, type: 'text', text: `hello from ${a.name}` });
      await bed.explain(wa.run, () => until(`delivered to ${b.name}`, () => statuses(wa.run, toB.messageId).includes('delivered'), 20_000));
      expect(await bed.onPhone(wb.phone, toB.providerId)).toMatchObject({ from: wa.phone, text: `hello from ${a.name}` });

      const bytes = randomBytes(20_000);
      const toA = await bed.send(wb.run, {
        to: wa.phone,
        type: 'image',
        caption: 'back',
        media: { data: bytes.toString('base64'), mimetype: 'image/jpeg' },
        replyTo: { id: toB.providerId, chat: wa.phone, fromMe: false },
      });
      const atA = await bed.explain(wa.run, () => bed.received(wa.run, toA.providerId));
      expect(atA).toMatchObject({ from: wb.phone, type: 'image', caption: 'back', replyTo: { id: toB.providerId, fromMe: true } });
      expect(sha256(Buffer.from(atA.media.data, 'base64'))).toBe(sha256(bytes));

      const read = await bed.command(wa.run, 'read', { chat: wb.phone, messageIds: [toA.providerId] });
      expect(read.ok).toBe(true);
      await bed.explain(wb.run, () => until(`read at ${b.name}`, () => statuses(wb.run, toA.messageId).includes('read'), 20_000));

      const back = await bed.send(wb.run, { to: wa.phone, type: 'text', text: 'and text' });
      expect(await bed.explain(wa.run, () => bed.received(wa.run, back.providerId))).toMatchObject({ from: wb.phone, text: 'and text' });
    }, 180_000);
  });
}
