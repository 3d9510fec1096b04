/**
 * Campaigns through the API with real sandbox workers: a paced bulk send to
 * two sandbox numbers completes with each message received once; invalid
 * messages, oversize batches and quotas refuse the whole campaign; cancel
 * stops what has not left; 10 000 messages are accepted in one call.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createTestApp, type TestApp } from '../../../tests/support/app';
import { until } from '../../../tests/support/poll';

let t: TestApp;
let user: { id: number; apiKey: string };
let seq = 0;
const phone = () => `4916${String(Date.now() % 1e6).padStart(6, '0')}${String(seq++ % 100).padStart(2, '0')}`;

async function pairedInstance(key: string, pacing?: Record<string, unknown>) {
  const number = phone();
  const res = await t.call('POST', '/api/instances', { key, body: { provider: 'sandbox', phone: number } });
  if (res.status !== 200) throw new Error(`create failed: ${res.status} ${JSON.stringify(res.body)}`);
  const id = res.body.id as number;
  expect((await t.call('POST', `/api/instances/${id}/sandbox/scan`, { key })).status).toBe(200);
  if (pacing) expect((await t.call('PATCH', `/api/instances/${id}`, { key, body: { pacing } })).status).toBe(200);
  return { id, phone: number };
}

const sql = () => t.db.database.sql;
const progress = (id: string, key = user.apiKey) => t.call('GET', `/api/campaigns/${id}`, { key });
async function received(instanceId: number): Promise<string[]> {
  const rows = await sql()<{ text: string }[]>`select data->>'text' as text from events where instance_id = ${instanceId} and type = 'message.received' order by id`;
  return rows.map((r) => r.text);
}

beforeAll(async () => {
  t = await createTestApp({ listen: true });
  user = await t.createUser();
});
afterAll(() => t.close());

describe('campaigns', () => {
  test('20 messages to two sandbox numbers: paced, completed, each received once', async () => {
    const sender = await pairedInstance(user.apiKey, { minIntervalMs: 50 });
    const a = await pairedInstance(user.apiKey);
    const b = await pairedInstance(user.apiKey);
    const messages = Array.from({ length: 20 }, (_, i) => ({ to: i % 2 ? b.phone : a.phone, text: `campaign ${i}` }));
    const res = await t.call('POST', `/api/instances/${sender.id}/campaigns`, { key: user.apiKey, body: { name: 'spring sale', messages } });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ status: 'running', total: 20 });
    expect(res.body.id).toMatch(/^cmp_/);
    expect(Date.parse(res.body.lastAt) - Date.parse(res.body.firstAt)).toBeGreaterThanOrEqual(19 * 50);

    const done = await until('campaign completed', async () => {
      const p = await progress(res.body.id);
      return p.body.status === 'completed' && p.body.counts.read === 20 ? p.body : undefined;
    });
    expect(done).toMatchObject({ name: 'spring sale', instanceId: sender.id, total: 20, counts: { queued: 0, sent: 0, delivered: 0, read: 20, failed: 0 }, failures: [] });
    expect(Date.parse(done.completedAt)).toBeGreaterThanOrEqual(Date.parse(done.createdAt));

    // Each recipient got its ten, once each.
    for (const [r, parity] of [[a, 0], [b, 1]] as const) {
      const texts = await until(`recipient ${r.id} received ten`, async () => {
        const got = await received(r.id);
        return got.length >= 10 ? got : undefined;
      });
      expect(texts.sort()).toEqual(messages.filter((_, i) => i % 2 === parity).map((m) => m.text).sort());
    }
    // Spacing: due at least 50 ms apart, in order, and none left before it was due.
    const rows = await sql()<{ not_before: Date; sent_at: Date; attempts: number }[]>`
      select not_before, sent_at, attempts from commands where instance_id = ${sender.id} and name = 'send' order by id`;
    expect(rows.length).toBe(20);
    for (let i = 1; i < rows.length; i++) expect(+new Date(rows[i]!.not_before) - +new Date(rows[i - 1]!.not_before)).toBeGreaterThanOrEqual(50);
    for (const r of rows) expect(+new Date(r.sent_at)).toBeGreaterThanOrEqual(+new Date(r.not_before));
    expect(rows.map((r) => r.attempts)).toEqual(Array(20).fill(1));

    const list = await t.call('GET', `/api/instances/${sender.id}/campaigns`, { key: user.apiKey });
    expect(list.status).toBe(200);
    expect(list.body.map((c: { id: string }) => c.id)).toEqual([res.body.id]);
    // Finished: cancel is a conflict.
    expect((await t.call('POST', `/api/campaigns/${res.body.id}/cancel`, { key: user.apiKey })).status).toBe(409);
    // Another tenant sees none of it.
    const other = await t.createUser();
    expect((await progress(res.body.id, other.apiKey)).status).toBe(404);
    expect((await t.call('POST', `/api/campaigns/${res.body.id}/cancel`, { key: other.apiKey })).status).toBe(404);
    expect((await t.call('POST', `/api/instances/${sender.id}/campaigns`, { key: other.apiKey, body: { messages: [{ to: a.phone, text: 'x' }] } })).status).toBe(404);
  });

  test('a rate limit mid-way loses nothing: the refused message goes first after the pause, in order, each received once', async () => {
    // 1 s apart: sends 3 to 6 are due 2 to 5 s in, well after two were received and the fault set, so it hits one mid-way.
    const sender = await pairedInstance(user.apiKey, { minIntervalMs: 1_000 });
    const r = await pairedInstance(user.apiKey);
    const messages = Array.from({ length: 6 }, (_, i) => ({ to: r.phone, text: `limited ${i}` }));
    const res = await t.call('POST', `/api/instances/${sender.id}/campaigns`, { key: user.apiKey, body: { messages } });
    expect(res.status).toBe(202);
    await until('two received', async () => (await received(r.id)).length >= 2);
    // The provider refuses the next send: the number pauses, the refused message waits at the head of the rest.
    expect((await t.call('POST', `/api/instances/${sender.id}/sandbox/faults`, { key: user.apiKey, body: { rateLimitNext: 1 } })).status).toBe(200);
    const paused = await until('paused', async () => {
      const v = (await t.call('GET', `/api/instances/${sender.id}`, { key: user.apiKey })).body;
      return v.pausedUntil ? v : undefined;
    });
    expect(paused.pausedReason).toContain('rate_limited');
    const [refused] = await sql()<{ text: string; requeues: number; status: string }[]>`
      select text, requeues, status::text from messages where campaign_id = ${res.body.id} and requeues > 0`;
    expect(refused).toMatchObject({ requeues: 1, status: 'queued' });
    expect((await progress(res.body.id)).body.counts.failed).toBe(0);
    expect((await t.call('POST', `/api/instances/${sender.id}/resume`, { key: user.apiKey })).status).toBe(200);
    const done = await until('completed', async () => {
      const p = (await progress(res.body.id)).body;
      return p.status === 'completed' ? p : undefined;
    });
    expect(done.counts.failed).toBe(0);
    const got = await until('six received', async () => {
      const texts = await received(r.id);
      return texts.length >= 6 ? texts : undefined;
    });
    // Once each, and in the campaign's order: the refused one did not fall behind the others.
    expect(got).toEqual(messages.map((m) => m.text));
    expect(got.indexOf(refused!.text)).toBeGreaterThanOrEqual(2);
  });

  test('an invalid message, too many messages or a bad name refuse the campaign; nothing is written', async () => {
    const sender = await pairedInstance(user.apiKey);
    const post = (body: unknown) => t.call('POST', `/api/instances/${sender.id}/campaigns`, { key: user.apiKey, body });
    const ok = { to: '4915550001234', text: 'hi' };

    const badPhone = await post({ messages: [ok, ok, { to: 'not a phone', text: 'x' }] });
    expect(badPhone.status).toBe(400);
    expect(badPhone.body.error).toContain("'messages[2].to'");
    const empty = await post({ messages: [ok, { to: '4915550001234', text: ' ' }] });
    expect(empty.status).toBe(400);
    expect(empty.body.error).toContain("'messages[1].text'");
    const wrongType = await post({ messages: [ok, { to: 4915550001234, text: 'x' }] });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.error).toContain("'messages[1].to'");
    const target = await post({ messages: [ok, { type: 'reaction', emoji: '👍', target: 'msg_nothere' }] });
    expect(target.status).toBe(404);
    expect(target.body.error).toContain('messages[1]');

    const tooMany = await post({ messages: Array(10_001).fill(ok) });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error).toContain("'messages'");
    expect((await post({ messages: [] })).status).toBe(400);
    expect((await post({ name: 'x'.repeat(101), messages: [ok] })).status).toBe(400);

    const [n] = await sql()`select (select count(*)::int from campaigns where instance_id = ${sender.id}) as c, (select count(*)::int from messages where instance_id = ${sender.id}) as m, (select count(*)::int from commands where instance_id = ${sender.id} and name = 'send') as s`;
    expect(n).toEqual({ c: 0, m: 0, s: 0 });
  });

  test('quota: a batch that does not fit this month is refused whole (402)', async () => {
    const plan = await t.call('POST', '/admin/plans', { body: { name: `campaign-quota-${Date.now()}`, messagesPerMonth: 5 } });
    expect(plan.status).toBe(201);
    const small = await t.createUser();
    expect((await t.call('PATCH', `/admin/users/${small.id}`, { body: { planId: plan.body.id } })).status).toBe(200);
    const sender = await pairedInstance(small.apiKey);
    const refused = await t.call('POST', `/api/instances/${sender.id}/campaigns`, { key: small.apiKey, body: { messages: Array(6).fill({ to: '4915550001234', text: 'hi' }) } });
    expect(refused.status).toBe(402);
    expect(refused.body.code).toBe('quota_exceeded');
    expect(refused.body.error).toContain('these 6 messages do not fit');
    const [n] = await sql()`select count(*)::int as m from messages where instance_id = ${sender.id}`;
    expect(n!.m).toBe(0);
    const fits = await t.call('POST', `/api/instances/${sender.id}/campaigns`, { key: small.apiKey, body: { messages: Array(5).fill({ to: '4915550001234', text: 'hi' }) } });
    expect(fits.status).toBe(202);
    await t.call('POST', `/api/campaigns/${fits.body.id}/cancel`, { key: small.apiKey });
  });

  test('cancel mid-way: what left stays sent, the rest fails cancelled, nothing leaves after', async () => {
    // 400 ms apart, cancelled once three are handed out (not once their results are in, which a slow machine delays):
    // the 11th is due 3.2 s after the 3rd, so at least 10 are still waiting at the cancel.
    const sender = await pairedInstance(user.apiKey, { minIntervalMs: 400 });
    const r = await pairedInstance(user.apiKey);
    const messages = Array.from({ length: 20 }, (_, i) => ({ to: r.phone, text: `cancel ${i}` }));
    const res = await t.call('POST', `/api/instances/${sender.id}/campaigns`, { key: user.apiKey, body: { messages } });
    expect(res.status).toBe(202);
    await until('three handed out', async () => {
      const [n] = await sql()<{ n: number }[]>`select count(*)::int as n from commands where instance_id = ${sender.id} and name = 'send' and sent_at is not null`;
      return n!.n >= 3;
    });
    const cancelled = await t.call('POST', `/api/campaigns/${res.body.id}/cancel`, { key: user.apiKey });
    const cancelAt = Date.now();
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe('cancelled');
    expect(cancelled.body.cancelledAt).toBeDefined();
    const failedNow = cancelled.body.failures.find((f: { reason: string }) => f.reason === 'cancelled')?.count ?? 0;
    expect(failedNow).toBeGreaterThanOrEqual(10);
    expect((await t.call('POST', `/api/campaigns/${res.body.id}/cancel`, { key: user.apiKey })).status).toBe(409);

    // The ones in flight at the cancel finish; nothing else is handed out afterwards.
    const final = await until('nothing queued', async () => {
      const p = await progress(res.body.id);
      return p.body.counts.queued === 0 ? p.body : undefined;
    });
    const reached = final.counts.sent + final.counts.delivered + final.counts.read;
    expect(reached + final.counts.failed).toBe(20);
    expect(final.failures).toEqual([{ reason: 'cancelled', count: failedNow }]);
    expect(reached).toBe(20 - failedNow);
    const handed = await sql()<{ sent_at: Date }[]>`select sent_at from commands where instance_id = ${sender.id} and name = 'send' and sent_at is not null`;
    expect(handed.length).toBe(reached);
    for (const h of handed) expect(+new Date(h.sent_at)).toBeLessThanOrEqual(cancelAt);
    const texts = await until('recipient got what was sent', async () => {
      const got = await received(r.id);
      return got.length >= reached ? got : undefined;
    });
    expect(new Set(texts).size).toBe(texts.length);
    expect(texts.length).toBe(reached);
    const cancelledCommands = await sql()`select count(*)::int as n from commands where instance_id = ${sender.id} and name = 'send' and error_code = 'cancelled'`;
    expect(cancelledCommands[0]!.n).toBe(failedNow);
  });

  test('10 000 messages are accepted in one call', async () => {
    const sender = await pairedInstance(user.apiKey);
    const messages = Array.from({ length: 10_000 }, (_, i) => ({ to: '4915550001234', text: `bulk ${i}` }));
    const started = performance.now();
    const res = await t.call('POST', `/api/instances/${sender.id}/campaigns`, { key: user.apiKey, body: { messages } });
    const tookMs = Math.round(performance.now() - started);
    expect(res.status).toBe(202);
    console.info(`campaign of 10000 messages accepted in ${tookMs} ms`);
    expect(res.body.total).toBe(10_000);
    // No pacing on this number: the campaign's floor of 50 ms between sends.
    expect(Date.parse(res.body.lastAt) - Date.parse(res.body.firstAt)).toBeGreaterThanOrEqual(9_999 * 50);
    const [n] = await sql()`select (select count(*)::int from messages where campaign_id = ${res.body.id}) as m,
      (select count(*)::int from commands where instance_id = ${sender.id} and name = 'send') as s,
      (select count(distinct command_id)::int from messages where campaign_id = ${res.body.id}) as linked`;
    expect(n).toEqual({ m: 10_000, s: 10_000, linked: 10_000 });
    const started2 = performance.now();
    const cancelled = await t.call('POST', `/api/campaigns/${res.body.id}/cancel`, { key: user.apiKey });
    console.info(`campaign of 10000 messages cancelled in ${Math.round(performance.now() - started2)} ms`);
    expect(cancelled.status).toBe(200);
    // Whatever had not been handed to the worker by then failed as cancelled; the counts add up.
    const c = cancelled.body.counts;
    expect(c.queued + c.sent + c.delivered + c.read + c.failed).toBe(10_000);
    expect(c.failed).toBeGreaterThan(9_000);
    expect(cancelled.body.failures).toEqual([{ reason: 'cancelled', count: c.failed }]);
  }, 60_000);
});
