/**
 * The usage ledger against what really happened between sandbox workers:
 * sends, receipts, inbound messages, media and webhook deliveries each count
 * once, for the instance's tenant, and redelivered worker frames count nothing
 * more.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createTestApp, type TestApp } from '../../../tests/support/app';
import { until } from '../../../tests/support/poll';
import { advanceMessages } from '../messages/messages';
import type { WorkerFrames } from '../instances/worker-frames';
import { usageTotal } from './ledger';

let t: TestApp;
let alice: { id: number; apiKey: string };
let bob: { id: number; apiKey: string };
let a: { id: number; phone: string };
let b: { id: number; phone: string };
let hooks: ReturnType<typeof Bun.serve>;
let hits = 0;

const EPOCH = new Date(0);
const FAR = new Date('2100-01-01T00:00:00Z');
const total = (userId: number, metric: Parameters<typeof usageTotal>[2]) => usageTotal(t.db.database.db, userId, metric, EPOCH, FAR);
const frames = () => (t.runtime as unknown as { frames: WorkerFrames }).frames;

let seq = 0;
const phone = () => `4917${String(Date.now() % 1e6).padStart(6, '0')}${String(seq++ % 100).padStart(2, '0')}`;

async function paired(key: string, webhook?: string) {
  const res = await t.call('POST', '/api/instances', { key, body: { provider: 'sandbox', phone: phone(), ...(webhook && { webhook }) } });
  if (res.status !== 200) throw new Error(`create failed: ${res.status} ${JSON.stringify(res.body)}`);
  expect((await t.call('POST', `/api/instances/${res.body.id}/sandbox/scan`, { key })).status).toBe(200);
  return res.body as { id: number; phone: string };
}

beforeAll(async () => {
  hooks = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => (hits++, new Response('ok')) });
  t = await createTestApp({ listen: true, webhooks: true });
  alice = await t.createUser();
  bob = await t.createUser();
  a = await paired(alice.apiKey, `http://127.0.0.1:${hooks.port}/a`);
  b = await paired(bob.apiKey);
});
afterAll(async () => {
  await t.close();
  hooks.stop(true);
});

describe('metering between sandbox workers', () => {
  const image = Buffer.from('\x89PNG twenty-odd bytes of image\x00\x01');
  const sentIds: string[] = [];

  test('N sends count N for the sender, N received for the recipient, inline media both ways', async () => {
    for (const text of ['one', 'two', 'three']) {
      const res = await t.call('POST', `/api/instances/${a.id}/send`, { key: alice.apiKey, body: { to: b.phone, text } });
      expect(res.status).toBe(200);
      sentIds.push(res.body.id);
    }
    const img = await t.call('POST', `/api/instances/${a.id}/send`, {
      key: alice.apiKey,
      body: { to: b.phone, type: 'image', media: { data: image.toString('base64'), mimetype: 'image/png' } },
    });
    expect(img.status).toBe(200);
    sentIds.push(img.body.id);
    // By URL: the size is not the gateway's to know; counted as a message only.
    const byUrl = await t.call('POST', `/api/instances/${a.id}/send`, {
      key: alice.apiKey,
      body: { to: b.phone, type: 'video', media: { url: 'https://cdn.example.com/v.mp4', mimetype: 'video/mp4' } },
    });
    expect(byUrl.status).toBe(200);
    sentIds.push(byUrl.body.id);

    await until('b received all 5', async () => (await total(bob.id, 'messages_received')) === 5);
    // Receipts (delivered, read) keep arriving: they never count a send again.
    await until('every message read', async () => {
      const rows = await t.db.database.sql`select count(*)::int as n from messages where id in ${t.db.database.sql(sentIds)} and status = 'read'`;
      return rows[0]!.n === 5;
    });
    expect(await total(alice.id, 'messages_sent')).toBe(5);
    expect(await total(alice.id, 'media_bytes')).toBe(image.length);
    expect(await total(bob.id, 'media_bytes')).toBe(image.length); // stored in the media table on receipt
    expect(await total(bob.id, 'messages_sent')).toBe(0);
    expect(await total(alice.id, 'messages_received')).toBe(0);

    const rows = await t.db.database.sql`
      select metric, source, provider, instance_id from usage_ledger where user_id = ${alice.id} and metric in ('messages_sent', 'media_bytes') order by id`;
    expect(rows.map((r) => r.source).sort()).toEqual([...sentIds.map((id) => `sent:${id}`), `media-sent:${img.body.id}`].sort());
    expect(rows.every((r) => r.provider === 'sandbox' && r.instance_id === a.id)).toBe(true);
  });

  test('M inbound messages count M received; webhook deliveries count each success once', async () => {
    for (const text of ['in 1', 'in 2']) {
      const res = await t.call('POST', `/api/instances/${a.id}/sandbox/inbound`, { key: alice.apiKey, body: { from: '+4477001122', text } });
      expect(res.status).toBe(200);
    }
    await until('a received 2', async () => (await total(alice.id, 'messages_received')) === 2);
    // Each success is counted in the statement that records it: one snapshot sees both agree.
    const counts = async () => {
      const [row] = await t.db.database.sql`
        select (select count(*)::int from webhook_deliveries d join webhooks w on w.id = d.webhook_id
                 where w.instance_id = ${a.id} and d.status = 'succeeded') as delivered,
               (select coalesce(sum(quantity), 0)::int from usage_ledger where user_id = ${alice.id} and metric = 'webhook_deliveries') as counted,
               (select count(*)::int from webhook_deliveries d join webhooks w on w.id = d.webhook_id
                 where w.instance_id = ${a.id} and d.status = 'pending') as pending`;
      return row as { delivered: number; counted: number; pending: number };
    };
    const settled = await until('the inbound messages delivered to the webhook', async () => {
      const c = await counts();
      const received = await t.db.database.sql`
        select count(*)::int as n from webhook_deliveries d join events e on e.id = d.event_id
        where e.instance_id = ${a.id} and e.type = 'message.received' and d.status = 'succeeded'`;
      return received[0]!.n === 2 ? c : undefined;
    });
    expect(settled.delivered).toBeGreaterThanOrEqual(2);
    expect(settled.counted).toBe(settled.delivered);
    expect(hits).toBeGreaterThanOrEqual(settled.delivered);
    expect(await total(bob.id, 'webhook_deliveries')).toBe(0); // b has no webhook
  });

  test('redelivered worker events and repeated results count nothing more', async () => {
    const before = { received: await total(alice.id, 'messages_received'), media: await total(alice.id, 'media_bytes'), sent: await total(alice.id, 'messages_sent') };
    const bytes = Buffer.from('GIF89a redelivered');
    const batch = [
      {
        eventId: 'usage-test-ev-1',
        event: { type: 'message.received', data: { id: 'SBXUSAGE1', from: '4477001122', chat: '4477001122', type: 'image', timestamp: new Date().toISOString(), media: { data: bytes.toString('base64'), mimetype: 'image/gif' } } },
      },
      { eventId: 'usage-test-ev-2', event: { type: 'message.received', data: { id: 'SBXUSAGE2', from: '4477001122', chat: '4477001122', type: 'text', text: 'x', timestamp: new Date().toISOString() } } },
    ] as never;
    await frames().events(a.id, batch);
    await frames().events(a.id, batch); // the worker saw no ack and sends the run again
    expect(await total(alice.id, 'messages_received')).toBe(before.received + 2);
    expect(await total(alice.id, 'media_bytes')).toBe(before.media + bytes.length);

    // A send result delivered twice (a command of a stopped instance: no worker takes it).
    const sql = t.db.database.sql;
    const [c] = await sql`insert into instances (user_id, phone_number, provider, desired_state, status) values (${alice.id}, ${phone()}, 'sandbox', 'stopped', 'stopped') returning id`;
    const inline = Buffer.from('%PDF-1.4 twice');
    const args = { messageId: 'msg_usage_twice', to: '4400000001', type: 'document', media: { data: inline.toString('base64'), mimetype: 'application/pdf' } };
    const [cmd] = await sql`insert into commands (instance_id, name, args) values (${c!.id}, 'send', ${JSON.stringify(args)}::jsonb) returning id`;
    await sql`insert into messages (id, instance_id, command_id, "to", type) values ('msg_usage_twice', ${c!.id}, ${cmd!.id}, '4400000001', 'document')`;
    const result = [{ type: 'result', commandId: cmd!.id, ok: true, data: { providerMessageId: 'SBXTWICE' } }] as never;
    await frames().results(c!.id, result);
    await frames().results(c!.id, result);
    // And the receipts after it, twice, and the sent result again straight into advanceMessages.
    const now = new Date();
    const receipts = [
      { messageId: 'msg_usage_twice', status: 'delivered' as const, at: now },
      { messageId: 'msg_usage_twice', status: 'sent' as const, at: now, mediaBytes: inline.length },
    ];
    await advanceMessages(t.db.database.db, c!.id, receipts);
    await advanceMessages(t.db.database.db, c!.id, receipts);
    const [msg] = await sql`select status from messages where id = 'msg_usage_twice'`;
    expect(msg!.status).toBe('delivered');
    expect(await total(alice.id, 'messages_sent')).toBe(before.sent + 1);
    expect(await total(alice.id, 'media_bytes')).toBe(before.media + bytes.length + inline.length);
    const [row] = await sql`select instance_id, provider from usage_ledger where source = 'sent:msg_usage_twice'`;
    expect(row).toEqual({ instance_id: c!.id, provider: 'sandbox' });
  });

  test('a run of results is applied whole or not at all: a failing message update leaves its command pending', async () => {
    const sql = t.db.database.sql;
    const before = await total(alice.id, 'messages_sent');
    const [c] = await sql`insert into instances (user_id, phone_number, provider, desired_state, status) values (${alice.id}, ${phone()}, 'sandbox', 'stopped', 'stopped') returning id`;
    const ids = ['msg_atomic_1', 'msg_atomic_2'];
    const cmds: number[] = [];
    for (const id of ids) {
      const [cmd] = await sql`insert into commands (instance_id, name, args, sent_at) values (${c!.id}, 'send', ${JSON.stringify({ messageId: id, to: '4400000002', type: 'text', text: id })}::jsonb, now()) returning id`;
      await sql`insert into messages (id, instance_id, command_id, "to", type) values (${id}, ${c!.id}, ${cmd!.id}, '4400000002', 'text')`;
      cmds.push(cmd!.id);
    }
    // The database refuses the second message's update, as a gateway killed mid-way would never commit it.
    await sql.unsafe(`create function refuse_atomic() returns trigger language plpgsql as $$ begin raise exception 'refused for the test'; end $$`);
    await sql.unsafe(`create trigger refuse_atomic before update on messages for each row when (new.id = 'msg_atomic_2') execute function refuse_atomic()`);
    const results = cmds.map((id, n) => ({ type: 'result', commandId: id, ok: true, data: { providerMessageId: `SBXATOMIC${n}` } })) as never;
    try {
      await expect(frames().results(c!.id, results)).rejects.toThrow();
    } finally {
      await sql.unsafe(`drop trigger refuse_atomic on messages; drop function refuse_atomic()`);
    }
    const pending = await sql`select status::text as status from commands where id in ${sql(cmds)} order by id`;
    expect(pending.map((r) => r.status)).toEqual(['pending', 'pending']);
    const queued = await sql`select status::text as status from messages where id in ${sql(ids)} order by id`;
    expect(queued.map((r) => r.status)).toEqual(['queued', 'queued']);
    expect(await total(alice.id, 'messages_sent')).toBe(before);
    // The worker answers the redelivered commands again: now everything lands, once.
    await frames().results(c!.id, results);
    const sent = await sql`select m.status::text as status, m.provider_message_id, c.status::text as command from messages m join commands c on c.id = m.command_id where m.id in ${sql(ids)} order by m.id`;
    expect([...sent]).toEqual([
      { status: 'sent', provider_message_id: 'SBXATOMIC0', command: 'done' },
      { status: 'sent', provider_message_id: 'SBXATOMIC1', command: 'done' },
    ]);
    expect(await total(alice.id, 'messages_sent')).toBe(before + 2);
  });
});
