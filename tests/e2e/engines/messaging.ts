/**
 * One engine's messages end to end on the simulator, as a user sees them: a
 * real gateway, the engine's real worker (Signal sessions with the simulated
 * phones), the simulator relaying and decrypting, and webhooks checked by a
 * receiver that verifies Standard Webhooks signatures itself. Every type the
 * send route offers, in both directions, with receipts. All on loopback.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHash, randomBytes } from 'node:crypto';
import { freePort } from '../../../gateway/src/lib/net';
import { gatewayApi, workerPids, type GatewayProcess } from '../../support/gateway-process';
import { until } from '../../support/poll';
import { webhookReceiver, type Receiver } from '../../support/receiver';
import * as wm from '../../support/whatsmeow';
import type { EngineUnderTest } from './engines';

export function messagingSuite(engine: EngineUnderTest): void {
  describe(`${engine.provider}: messages`, () => {
    const api = gatewayApi;
    const cleanup: (() => Promise<unknown>)[] = [];
    let stack: wm.WhatsmeowStack;
    let g: GatewayProcess;
    let key: string;
    let receiver: Receiver;
    /** The linked number (instance `a`) and a simulated phone with no instance (`phoneB`). */
    let a: { phone: string; id: number };
    let phoneB: string;

    const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
    const control = (method: string, path: string, body?: unknown) => wm.control(stack, method, path, body);

    /** What phone `phone`'s primary device received and decrypted, after `since`. */
    async function phoneInbox(phone: string, since?: string): Promise<any[]> {
      const r = await control('GET', `/phones/${phone}/messages${since ? `?since=${encodeURIComponent(since)}` : ''}`);
      expect(r.status).toBe(200);
      return Array.isArray(r.body) ? r.body : r.body.messages;
    }

    /** A linked whatsmeow number whose events go to the receiver at /<id>. */
    async function linkedNumber(): Promise<{ phone: string; id: number }> {
      const n = await wm.newNumber(stack, g, key, { provider: engine.provider });
      await wm.linkByQr(stack, g, key, n.phone, n.id);
      const hook = await api(g, 'POST', `/api/instances/${n.id}/webhooks`, key, { url: receiver.url(`/${n.id}`) });
      expect(hook.status).toBe(201);
      receiver.secrets.set(`/${n.id}`, hook.body.secret);
      return n;
    }

    beforeAll(async () => {
      stack = await wm.whatsmeowStack(cleanup, { env: { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true', WEBHOOK_RETRY_SCHEDULE: '0,1,1,1,1' } });
      expect(stack.env.WORKER_CA_FILE).toBeDefined(); // media needs the simulator's CA
      ({ g, key } = await wm.startStackGateway(stack, cleanup, `${engine.provider}-messages@example.com`));
      receiver = webhookReceiver(await freePort(), cleanup);
      a = await linkedNumber();
      phoneB = `49170${String(Date.now() % 1e7).padStart(7, '0')}`;
      expect((await control('POST', '/phones', { phone: phoneB })).status).toBe(201);
    });

    afterAll(async () => {
      for (const fn of cleanup.reverse()) await fn().catch(() => {});
    });

    /** The `message.status` webhooks of one sent message, in order of arrival. */
    const statusesOf = (instanceId: number, messageId: string) =>
      receiver.delivered.filter((d) => d.instance === instanceId && d.type === 'message.status' && d.data.messageId === messageId).map((d) => d.data.status as string);

    /** Sends through the gateway and waits for `sent`; returns the API id and WhatsApp's id. */
    async function send(instanceId: number, body: Record<string, unknown>): Promise<{ id: string; waId: string }> {
      const res = await api(g, 'POST', `/api/instances/${instanceId}/send`, key, body);
      expect(res).toMatchObject({ status: 200, body: { status: 'sent' } });
      const view = await api(g, 'GET', `/api/instances/${instanceId}/messages/${res.body.id}`, key);
      expect(view.body.providerMessageId).toEqual(expect.any(String));
      return { id: res.body.id, waId: view.body.providerMessageId };
    }

    /** The phone's decrypted copy of WhatsApp message `waId`. */
    async function received(phone: string, waId: string): Promise<any> {
      return until(`phone ${phone} to have ${waId}`, async () => (await phoneInbox(phone)).find((m) => m.id === waId), 20_000, 50);
    }

    const media = (bytes: number, mimetype: string, filename?: string) => {
      const data = randomBytes(bytes);
      return { body: { data: data.toString('base64'), mimetype, ...(filename && { filename }) }, sha256: sha256(data), size: bytes };
    };

    test('gateway → phone: every type arrives with its content; receipts go sent → delivered → read, each a signed webhook', async () => {
      const to = phoneB;
      const text = await send(a.id, { to, type: 'text', text: 'hello from the gateway' });
      expect(await received(to, text.waId)).toMatchObject({ type: 'text', text: 'hello from the gateway' });

      for (const [type, m, extra] of [
        ['image', media(3000, 'image/png'), { caption: 'a picture' }],
        ['video', media(5000, 'video/mp4'), { caption: 'a film' }],
        ['audio', media(2000, 'audio/ogg'), {}],
        ['audio', media(1500, 'audio/ogg; codecs=opus'), { ptt: true }],
        ['document', media(4000, 'application/pdf', 'plan.pdf'), { caption: 'the plan' }],
        ['sticker', media(1000, 'image/webp'), {}],
      ] as const) {
        const sent = await send(a.id, { to, type, media: m.body, ...extra });
        const got = await received(to, sent.waId);
        expect(got.media).toMatchObject({ mimetype: m.body.mimetype, size: m.size, sha256: m.sha256 });
        if ('caption' in extra) expect(got.caption).toBe(extra.caption);
        if ('ptt' in extra) expect(got.ptt ?? got.type === 'ptt').toBe(true);
        else expect(got.type).toBe(type);
      }

      const location = { latitude: 52.52, longitude: 13.405, name: 'Berlin', address: 'Pariser Platz' };
      const loc = await send(a.id, { to, type: 'location', location });
      expect(await received(to, loc.waId)).toMatchObject({ type: 'location', location });
      const contact = await send(a.id, { to, type: 'contact', contact: { name: 'Ada', phone: '+4915112345678' } });
      expect((await received(to, contact.waId)).contact).toMatchObject({ name: 'Ada' });

      const reply = await send(a.id, { to, type: 'text', text: 'a reply', replyTo: text.id });
      expect(await received(to, reply.waId)).toMatchObject({ type: 'text', text: 'a reply' });
      const reaction = await send(a.id, { to, type: 'reaction', target: text.id, emoji: '👍' });
      expect((await received(to, reaction.waId)).reaction).toMatchObject({ targetId: text.waId, emoji: '👍' });
      const unreact = await send(a.id, { to, type: 'reaction', target: text.id, emoji: '' });
      expect((await received(to, unreact.waId)).reaction).toMatchObject({ targetId: text.waId, emoji: '' });
      const edit = await send(a.id, { to, type: 'edit', target: text.id, text: 'hello, edited' });
      expect((await received(to, edit.waId)).edit).toMatchObject({ targetId: text.waId, text: 'hello, edited' });
      const revoke = await send(a.id, { to, type: 'revoke', target: reply.id });
      expect((await received(to, revoke.waId)).revoke).toMatchObject({ targetId: reply.waId });

      // Receipts: delivered on arrival, read when the phone reads.
      await until('delivered', () => statusesOf(a.id, text.id).includes('delivered'), 20_000);
      expect((await control('POST', `/phones/${to}/read`, { chat: a.phone, ids: [text.waId] })).status).toBe(200);
      await until('read', () => statusesOf(a.id, text.id).includes('read'), 20_000);
      // Webhooks of one message may overtake each other (README: order is not guaranteed); each status comes once,
      // and the message's own times are in order.
      expect([...statusesOf(a.id, text.id)].sort()).toEqual(['delivered', 'read', 'sent']);
      const view = (await api(g, 'GET', `/api/instances/${a.id}/messages/${text.id}`, key)).body;
      expect(view.status).toBe('read');
      const t = view.timestamps;
      expect(Date.parse(t.sentAt) <= Date.parse(t.deliveredAt) && Date.parse(t.deliveredAt) <= Date.parse(t.readAt)).toBe(true);
      expect(receiver.forged).toBe(0);
    }, 120_000);

    test('phone → gateway: every type arrives as a message.received webhook with its content; media bytes are served back; references point at the right message', async () => {
      const since = receiver.delivered.length;
      const fromPhone = async (body: Record<string, unknown>) => {
        const r = await control('POST', `/phones/${phoneB}/messages`, { to: a.phone, ...body });
        expect(r.status).toBe(200);
        const id = r.body.id as string;
        const event = await until(`the webhook of ${id}`, () => receiver.delivered.slice(since).find((d) => d.instance === a.id && d.type === 'message.received' && d.data.id === id), 20_000, 50);
        expect(event.data.from).toBe(phoneB);
        return event.data;
      };
      expect(await fromPhone({ type: 'text', text: 'hi from the phone' })).toMatchObject({ type: 'text', text: 'hi from the phone' });

      for (const [type, mimetype, extra] of [
        ['image', 'image/jpeg', { caption: 'look' }],
        ['video', 'video/mp4', { caption: 'watch' }],
        ['audio', 'audio/ogg', {}],
        ['document', 'application/pdf', { filename: 'report.pdf' }],
        ['sticker', 'image/webp', {}],
      ] as const) {
        const bytes = randomBytes(2500);
        const { filename, ...rest } = extra as { filename?: string; caption?: string };
        const data = await fromPhone({ type, ...rest, media: { base64: bytes.toString('base64'), mimetype, ...(filename && { filename }) } });
        expect(data.type).toBe(type);
        if (rest.caption) expect(data.caption).toBe(rest.caption);
        expect(data.media).toMatchObject({ mimetype, size: bytes.length });
        const served = await fetch(`${g.url}${new URL(data.media.url, g.url).pathname}`, { headers: { authorization: `Bearer ${key}` } });
        expect(served.status).toBe(200);
        expect(sha256(new Uint8Array(await served.arrayBuffer()))).toBe(sha256(bytes));
      }

      const location = { latitude: 48.8584, longitude: 2.2945, name: 'Tour Eiffel' };
      expect((await fromPhone({ type: 'location', location })).location).toMatchObject(location);
      expect((await fromPhone({ type: 'contact', contact: { name: 'Grace', phone: '+15551234567' } })).contact).toMatchObject({ name: 'Grace' });

      // References from the phone: to a message the instance sent, and to one it received.
      const mine = await send(a.id, { to: phoneB, type: 'text', text: 'react to me' });
      const reaction = await fromPhone({ type: 'reaction', reaction: { targetId: mine.waId, emoji: '❤️' } });
      expect(reaction).toMatchObject({ type: 'reaction', emoji: '❤️', target: { id: mine.waId, fromMe: true } });
      const original = await fromPhone({ type: 'text', text: 'tpyo' });
      const edit = await fromPhone({ type: 'edit', edit: { targetId: original.id, text: 'typo' } });
      expect(edit).toMatchObject({ type: 'edit', text: 'typo', target: { id: original.id, fromMe: false } });
      const revoke = await fromPhone({ type: 'revoke', revoke: { targetId: original.id } });
      expect(revoke).toMatchObject({ type: 'revoke', target: { id: original.id, fromMe: false } });

      // Read receipts the other way: the instance marks the phone's message read.
      expect((await api(g, 'POST', `/api/instances/${a.id}/read`, key, { chat: phoneB, messageIds: [original.id] })).status).toBe(200);
      expect(receiver.forged).toBe(0);
    }, 120_000);

    test(`two ${engine.provider} numbers on one gateway talk to each other through the simulator`, async () => {
      const c = await linkedNumber();
      const sent = await send(a.id, { to: c.phone, type: 'text', text: 'from a to c' });
      const event = await until('c receives it', () => receiver.delivered.find((d) => d.instance === c.id && d.type === 'message.received' && d.data.id === sent.waId), 20_000, 50);
      expect(event.data).toMatchObject({ from: a.phone, type: 'text', text: 'from a to c' });
      const back = await send(c.id, { to: a.phone, type: 'text', text: 'and back', replyTo: event.data.id });
      const echo = await until('a receives the answer', () => receiver.delivered.find((d) => d.instance === a.id && d.type === 'message.received' && d.data.id === back.waId), 20_000, 50);
      expect(echo.data).toMatchObject({ from: c.phone, text: 'and back', replyTo: { id: sent.waId, fromMe: true } });
      await until('delivered to c', () => statusesOf(a.id, sent.id).includes('delivered'), 20_000);
    }, 90_000);

    test('a send while the worker is killed is delivered once', async () => {
      const before = (await phoneInbox(phoneB)).length;
      const [pid] = await workerPids(a.id, engine.program, g.proc.pid);
      process.kill(pid!, 'SIGKILL');
      const res = await api(g, 'POST', `/api/instances/${a.id}/send`, key, { to: phoneB, type: 'text', text: 'sent across a kill' });
      expect([200, 202]).toContain(res.status);
      await until('sent', async () => (await api(g, 'GET', `/api/instances/${a.id}/messages/${res.body.id}`, key)).body.status !== 'queued', 30_000);
      const inbox = await until('it arrived', async () => {
        const all = await phoneInbox(phoneB);
        return all.length > before && all.filter((m) => m.text === 'sent across a kill');
      }, 20_000);
      expect(inbox).toHaveLength(1);
    }, 90_000);

    test('sends during a move to another node are delivered once each', async () => {
      expect((await api(g, 'POST', '/admin/nodes', undefined, { name: 'p2', engine: 'process' })).status).toBe(200);
      const node = (await api(g, 'GET', `/api/instances/${a.id}`, key)).body.node as string;
      const moving = api(g, 'POST', `/api/instances/${a.id}/migrate`, key, { target_node: node === 'p2' ? 'local' : 'p2' });
      const texts = ['during the move 1', 'during the move 2', 'during the move 3'];
      for (const text of texts) expect([200, 202]).toContain((await api(g, 'POST', `/api/instances/${a.id}/send`, key, { to: phoneB, type: 'text', text })).status);
      expect((await moving).status).toBe(200);
      const got = await until('all three arrived', async () => {
        const all = (await phoneInbox(phoneB)).filter((m) => texts.includes(m.text));
        return all.length >= 3 ? all : undefined;
      }, 30_000);
      expect(got.map((m: any) => m.text).sort()).toEqual(texts);
    }, 90_000);

    test('1,000 texts to one phone: every one arrives exactly once', async () => {
      const texts = Array.from({ length: 1000 }, (_, i) => `bulk ${i}`);
      const ids: string[] = [];
      // 8 at a time, as a customer's job runner would; every call answered.
      for (let i = 0; i < texts.length; i += 8) {
        const batch = await Promise.all(texts.slice(i, i + 8).map((text) => api(g, 'POST', `/api/instances/${a.id}/send`, key, { to: phoneB, type: 'text', text })));
        for (const r of batch) {
          expect([200, 202]).toContain(r.status);
          ids.push(r.body.id);
        }
      }
      const got: any[] = await until('all 1,000 decrypted by the phone', async () => {
        const bulk = (await phoneInbox(phoneB)).filter((m) => typeof m.text === 'string' && m.text.startsWith('bulk '));
        return bulk.length >= 1000 ? bulk : undefined;
      }, 120_000, 500);
      expect(got).toHaveLength(1000);
      expect(new Set(got.map((m: any) => m.text)).size).toBe(1000);
      expect(new Set(ids).size).toBe(1000);
    }, 240_000);
  });
}
