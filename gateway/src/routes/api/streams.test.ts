import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createTestApp, type TestApp } from '../../../../tests/support/app';
import { addEvent as addEventRow, fixtureInstance as fixtureRow } from '../../../../tests/support/event-log';
import { until } from '../../../../tests/support/poll';
import { issueStreamToken, verifyStreamToken } from '../../auth/stream-tokens';
import { createLogger } from '../../logging/logger';

/** A Server-Sent Events reader over a real HTTP response. */
interface Sse {
  status: number;
  headers: Headers;
  events: { id: number; event: string; data: { id: number; type: string; instanceId: number; createdAt: string; data: Record<string, unknown> } }[];
  comments: string[];
  retry?: number;
  /** The server ended the stream. */
  ended: boolean;
  close(): void;
}

async function openSse(url: string, headers: Record<string, string> = {}): Promise<Sse> {
  const ac = new AbortController();
  const res = await fetch(url, { headers, signal: ac.signal });
  const sse: Sse = { status: res.status, headers: res.headers, events: [], comments: [], ended: false, close: () => ac.abort() };
  if (res.status !== 200 || !res.body) return sse;
  void (async () => {
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let cut: number;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const fields: Record<string, string> = {};
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) sse.comments.push(line.slice(1).trim());
            else {
              const i = line.indexOf(':');
              fields[line.slice(0, i)] = line.slice(i + 1).replace(/^ /, '');
            }
          }
          if (fields.retry) sse.retry = Number(fields.retry);
          if (fields.data !== undefined) sse.events.push({ id: Number(fields.id), event: fields.event ?? 'message', data: JSON.parse(fields.data) });
        }
      }
      sse.ended = true;
    } catch {
      // aborted
    }
  })();
  return sse;
}

let t: TestApp;
let a: { id: number; apiKey: string };
let b: { id: number; apiKey: string };
let instA1: number;
let instA2: number;
let instB: number;

const fixtureInstance = (userId: number, phone: string) => fixtureRow(t.db.database.sql, userId, phone);
const addEvent = (instanceId: number, type: string, data: Record<string, unknown>) => addEventRow(t.db.database.sql, instanceId, type, data);

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

beforeAll(async () => {
  t = await createTestApp({ listen: true });
  a = await t.createUser();
  b = await t.createUser();
  instA1 = await fixtureInstance(a.id, '15550001001');
  instA2 = await fixtureInstance(a.id, '15550001002');
  instB = await fixtureInstance(b.id, '15550002001');
});
afterAll(() => t.close());

describe('stream tokens', () => {
  test('POST /api/stream-tokens gives a five-minute token; without a key it is 401', async () => {
    const res = await t.call('POST', '/api/stream-tokens', { key: a.apiKey });
    expect(res.status).toBe(201);
    const body = res.body as { token: string; expiresAt: string };
    expect(body.token).toMatch(/^wgst_\d+\.\d+\.\d+\.[A-Za-z0-9_-]{43}$/);
    const ttl = new Date(body.expiresAt).getTime() - Date.now();
    expect(ttl).toBeGreaterThan(290_000);
    expect(ttl).toBeLessThanOrEqual(300_000);
    expect((await t.call('POST', '/api/stream-tokens')).status).toBe(401);
  });

  test('a token is checked for form, signature and expiry', () => {
    const { token } = issueStreamToken(t.secrets, 7, 3, 1_000_000);
    expect(verifyStreamToken(t.secrets, token, 1_000_000)).toEqual({ ok: true, keyId: 7, userId: 3 });
    expect(verifyStreamToken(t.secrets, token, 1_000_000 + 301_000)).toMatchObject({ ok: false, reason: expect.stringContaining('expired') });
    // Another user id under the same signature.
    expect(verifyStreamToken(t.secrets, token.replace('wgst_7.3.', 'wgst_7.4.'), 1_000_000)).toEqual({ ok: false, reason: 'invalid stream token' });
    expect(verifyStreamToken(t.secrets, 'wgst_garbage', 1_000_000).ok).toBe(false);
  });

  test('a token opens the streams only, and only while its key exists', async () => {
    const user = await t.createUser();
    const { token } = (await t.call('POST', '/api/stream-tokens', { key: user.apiKey })).body as { token: string };
    const ok = await openSse(`${t.url}/api/events/stream?token=${token}`);
    expect(ok.status).toBe(200);
    ok.close();
    // Not an API key anywhere else.
    expect((await t.call('GET', `/api/instances?token=${token}`)).status).toBe(401);
    expect((await t.call('GET', '/api/instances', { key: token })).status).toBe(401);
    // Forged.
    const forged = token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA');
    const bad = await fetch(`${t.url}/api/events/stream?token=${forged}`);
    expect(bad.status).toBe(401);
    expect(await bad.json()).toEqual({ error: 'invalid stream token', code: 'unauthorized' });
    // The key deleted: the token is dead.
    const keys = (await t.call('GET', `/admin/users/${user.id}`)).body as { keys: { id: number }[] };
    for (const k of keys.keys) expect((await t.call('DELETE', `/admin/users/${user.id}/keys/${k.id}`)).status).toBe(204);
    const dead = await fetch(`${t.url}/api/events/stream?token=${token}`);
    expect(dead.status).toBe(401);
    expect(((await dead.json()) as { error: string }).error).toContain('API key was deleted');
  });
});

describe('event streams', () => {
  test('a tenant stream carries its own instances’ events live, and nothing of another tenant', async () => {
    const sa = await openSse(`${t.url}/api/events/stream`, bearer(a.apiKey));
    const sb = await openSse(`${t.url}/api/events/stream`, bearer(b.apiKey));
    expect(sa.status).toBe(200);
    expect(sa.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    await until('stream open', () => sa.retry === 2000 && sb.retry === 2000);
    const e1 = await addEvent(instA1, 'instance.qr', { qr: '2@abc', expiresAt: '2026-12-02T00:00:20.000Z' });
    const e2 = await addEvent(instB, 'message.received', { id: 'B-secret', text: 'for B only' });
    const e3 = await addEvent(instA2, 'message.status', { messageId: 'm1', status: 'read' });
    await until('A sees its two events', () => sa.events.length >= 2);
    await until('B sees its event', () => sb.events.length >= 1);
    expect(sa.events.map((e) => [e.id, e.event, e.data.instanceId])).toEqual([
      [e1, 'instance.qr', instA1],
      [e3, 'message.status', instA2],
    ]);
    expect(sa.events[0]!.data).toMatchObject({ id: e1, type: 'instance.qr', data: { qr: '2@abc', expiresAt: '2026-12-02T00:00:20.000Z' } });
    expect(Date.parse(sa.events[0]!.data.createdAt)).toBeGreaterThan(0);
    expect(sb.events.map((e) => e.id)).toEqual([e2]);
    // Nothing else trickles in.
    await addEvent(instB, 'instance.status', { status: 'running' });
    await until('B sees its second event', () => sb.events.length === 2);
    expect(sa.events).toHaveLength(2);
    const open = async () => (await t.metrics.registry.getSingleMetric('wgs_event_streams_open')!.get()).values[0]?.value;
    expect(await open()).toBe(2);
    sa.close();
    sb.close();
    // A client that goes away is forgotten: nothing is kept for it.
    await until('both streams closed', async () => (await open()) === 0);
  });

  test('an instance stream: its events only, a types filter, 404 for another tenant’s instance', async () => {
    const s = await openSse(`${t.url}/api/instances/${instA1}/events/stream?types=instance.status,message.status`, bearer(a.apiKey));
    expect(s.status).toBe(200);
    await until('open', () => s.retry);
    await addEvent(instA1, 'instance.qr', { qr: 'skip me' });
    await addEvent(instA2, 'instance.status', { status: 'other instance' });
    const want = await addEvent(instA1, 'instance.status', { status: 'running', state: 'connected' });
    await until('the status event', () => s.events.length >= 1);
    expect(s.events.map((e) => e.id)).toEqual([want]);
    s.close();

    const other = await fetch(`${t.url}/api/instances/${instB}/events/stream`, { headers: bearer(a.apiKey) });
    expect(other.status).toBe(404);
    expect(await other.json()).toEqual({ error: `instance ${instB} not found`, code: 'not_found' });
  });

  test('a deleted instance: its tenant’s streams say instance.deleted (no id), its own stream says it and ends', async () => {
    const doomed = await fixtureInstance(a.id, '15550001009');
    const tenantWide = await openSse(`${t.url}/api/events/stream`, bearer(a.apiKey));
    const own = await openSse(`${t.url}/api/instances/${doomed}/events/stream`, bearer(a.apiKey));
    const ownFiltered = await openSse(`${t.url}/api/instances/${doomed}/events/stream?types=message.received`, bearer(a.apiKey));
    const onlyDeletions = await openSse(`${t.url}/api/events/stream?types=instance.deleted`, bearer(a.apiKey));
    const filtered = await openSse(`${t.url}/api/events/stream?types=message.received`, bearer(a.apiKey));
    const sibling = await openSse(`${t.url}/api/instances/${instA1}/events/stream`, bearer(a.apiKey));
    const otherTenant = await openSse(`${t.url}/api/events/stream`, bearer(b.apiKey));
    const all = [tenantWide, own, ownFiltered, onlyDeletions, filtered, sibling, otherTenant];
    for (const s of all) expect(s.status).toBe(200);
    await until('streams open', () => all.every((s) => s.retry === 2000));
    const before = await addEvent(doomed, 'instance.status', { status: 'running' });
    await until('the last event of the instance', () => own.events.length === 1 && tenantWide.events.length === 1);
    expect((await t.call('DELETE', `/api/instances/${doomed}`, { key: a.apiKey })).status).toBe(204);

    await until('the deletion told', () => tenantWide.events.length === 2 && onlyDeletions.events.length === 1 && own.ended && ownFiltered.ended);
    // An instance's own stream ends whatever its types; it says instance.deleted only when it takes that type.
    expect(ownFiltered.events).toEqual([]);
    for (const s of [tenantWide, own]) {
      expect(s.events.map((e) => e.event)).toEqual(['instance.status', 'instance.deleted']);
      expect(s.events[0]!.id).toBe(before);
      // Not in the log: no id line, so EventSource keeps the last id it had.
      expect(s.events[1]!.id).toBeNaN();
      expect(s.events[1]!.data as unknown).toEqual({ type: 'instance.deleted', instanceId: doomed, createdAt: expect.any(String), data: {} });
    }
    expect(onlyDeletions.events.map((e) => [e.event, e.data.instanceId])).toEqual([['instance.deleted', doomed]]);
    // Another instance's events still reach the tenant's stream; the others heard nothing of the deletion.
    const after = await addEvent(instA1, 'instance.status', { status: 'running' });
    await until('the tenant stream goes on', () => tenantWide.events.some((e) => e.id === after) && sibling.events.some((e) => e.id === after));
    expect(filtered.events).toEqual([]);
    expect(sibling.events.map((e) => e.event)).toEqual(['instance.status']);
    expect(otherTenant.events).toEqual([]);
    expect(tenantWide.ended).toBe(false);
    // Reopened, the deleted instance's stream is a 404; a REST page does not take the stream-only type.
    expect((await fetch(`${t.url}/api/instances/${doomed}/events/stream`, { headers: bearer(a.apiKey) })).status).toBe(404);
    const page = await t.call('GET', '/api/events?types=instance.deleted', { key: a.apiKey });
    expect(page.status).toBe(400);
    expect(page.body).toMatchObject({ code: 'unknown_event_type' });
    for (const s of all) s.close();
  });

  test('a deletion whose notification was missed (the listening connection lost): its stream still ends when the hub listens again', async () => {
    const doomed = await fixtureInstance(a.id, '15550001010');
    const own = await openSse(`${t.url}/api/instances/${doomed}/events/stream`, bearer(a.apiKey));
    expect(own.status).toBe(200);
    // The tenant's streams, opened before a newer instance exists: they learn of it from its event, whatever types they take.
    const tenantWide = await openSse(`${t.url}/api/events/stream`, bearer(a.apiKey));
    const onlyDeletions = await openSse(`${t.url}/api/events/stream?types=instance.deleted`, bearer(a.apiKey));
    const otherTenant = await openSse(`${t.url}/api/events/stream`, bearer(b.apiKey));
    for (const s of [own, tenantWide, onlyDeletions, otherTenant]) await until('open', () => s.retry === 2000);
    const newer = await fixtureInstance(a.id, '15550001012');
    const seen = await addEvent(newer, 'instance.status', { status: 'running' });
    await until('the newer instance seen', () => tenantWide.events.some((e) => e.id === seen));
    // Gone without the NOTIFY (as if it came while the hub's connection was down), then that connection dies.
    await t.db.database.sql`delete from instances where id in ${t.db.database.sql([doomed, newer])}`;
    const killed = await t.db.database.sql`
      select pg_terminate_backend(pid) from pg_stat_activity
      where datname = current_database() and query ilike 'listen %wgs_instance_deleted%'`;
    expect(killed.length).toBeGreaterThan(0);
    await until('the stream told and ended', () => own.ended, 10_000);
    expect(own.events.map((e) => [e.event, e.data.instanceId])).toEqual([['instance.deleted', doomed]]);
    // The tenant's streams are told of both, once each, and go on.
    const deletions = (s: Sse) => s.events.filter((e) => e.event === 'instance.deleted').map((e) => e.data.instanceId);
    await until('the tenant streams told', () => deletions(tenantWide).length === 2 && deletions(onlyDeletions).length === 2, 10_000);
    expect(deletions(tenantWide).sort()).toEqual([doomed, newer].sort());
    expect(onlyDeletions.events.map((e) => e.event)).toEqual(['instance.deleted', 'instance.deleted']);
    expect(deletions(onlyDeletions).sort()).toEqual([doomed, newer].sort());
    expect([tenantWide.ended, onlyDeletions.ended]).toEqual([false, false]);
    expect(otherTenant.events).toEqual([]);
    // The deletion's notification arriving late after all (it raced the recheck) is not a second notice.
    await t.db.database.sql`select pg_notify('wgs_instance_deleted', ${JSON.stringify({ instanceId: doomed, userId: a.id })})`;
    const barrier = await addEvent(instA1, 'instance.status', { status: 'running' });
    await until('an event after the late notification', () => tenantWide.events.some((e) => e.id === barrier));
    expect([deletions(tenantWide).length, deletions(onlyDeletions).length]).toEqual([2, 2]);
    for (const s of [tenantWide, onlyDeletions, otherTenant]) s.close();
    // The hub listens again: a deletion after that is heard as usual.
    const next = await fixtureInstance(a.id, '15550001011');
    const again = await openSse(`${t.url}/api/instances/${next}/events/stream`, bearer(a.apiKey));
    await until('open', () => again.retry === 2000);
    expect((await t.call('DELETE', `/api/instances/${next}`, { key: a.apiKey })).status).toBe(204);
    await until('the second stream ended', () => again.ended, 10_000);
    expect(again.events.map((e) => e.event)).toEqual(['instance.deleted']);
  });

  test('bad input: unknown types and resume ids are 400 naming the problem', async () => {
    const res = await t.call('GET', '/api/events/stream?types=instance.qr,message.nope', { key: a.apiKey });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'unknown_event_type', error: expect.stringContaining('"message.nope"') });
    const resume = await t.call('GET', '/api/events/stream', { key: a.apiKey, headers: { 'last-event-id': 'yesterday' } });
    expect(resume.status).toBe(400);
    expect(resume.body).toMatchObject({ code: 'invalid_last_event_id' });
    expect((await t.call('GET', '/api/events/stream?lastEventId=-1', { key: a.apiKey })).status).toBe(400);
    expect((await t.call('GET', '/api/instances/0/events/stream', { key: a.apiKey })).status).toBe(400);
    expect((await t.call('GET', '/api/events/stream')).status).toBe(401);
  });

  test('Last-Event-ID replays the log after that id, then goes live, each event once', async () => {
    const first = await addEvent(instA1, 'message.status', { messageId: 'r1', status: 'sent' });
    const delivered = await addEvent(instA1, 'message.status', { messageId: 'r1', status: 'delivered' });
    await addEvent(instB, 'message.status', { messageId: 'not A', status: 'read' });
    const received = await addEvent(instA2, 'message.received', { id: 'in-1' });
    const s = await openSse(`${t.url}/api/events/stream`, { ...bearer(a.apiKey), 'last-event-id': String(first) });
    await until('the replay', () => s.events.length >= 2);
    const live = await addEvent(instA1, 'message.status', { messageId: 'r1', status: 'read' });
    await until('the live event', () => s.events.some((e) => e.id === live));
    expect(s.events.map((e) => e.id)).toEqual([delivered, received, live]);
    s.close();

    // ?lastEventId= does the same (EventSource reopened with a new token), with the types filter applied to the replay.
    const { token } = (await t.call('POST', '/api/stream-tokens', { key: a.apiKey })).body as { token: string };
    const q = await openSse(`${t.url}/api/instances/${instA1}/events/stream?token=${token}&lastEventId=${first}&types=message.status`);
    await until('the replay by query', () => q.events.length >= 2);
    expect(q.events.map((e) => e.id)).toEqual([delivered, live]);
    q.close();
  });

  test('an event whose transaction commits late is still streamed', async () => {
    const s = await openSse(`${t.url}/api/events/stream`, bearer(a.apiKey));
    await until('open', () => s.retry);
    // A transaction takes an id and holds it while a later event commits.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let slowId = 0;
    const slow = t.db.database.sql.begin(async (tx) => {
      const [row] = await tx<{ id: string }[]>`insert into events (instance_id, type, data) values (${instA1}, 'message.status', ${JSON.stringify({ messageId: 'slow', status: 'sent' })}::jsonb) returning id`;
      slowId = Number(row!.id);
      await held;
    });
    await until('the slow transaction took its id', () => slowId > 0);
    const fast = await addEvent(instA1, 'message.status', { messageId: 'fast', status: 'sent' });
    await until('the fast event', () => s.events.some((e) => e.id === fast));
    expect(s.events.some((e) => e.id === slowId)).toBe(false);
    release();
    await slow;
    await until('the slow event, after the fast one', () => s.events.some((e) => e.id === slowId));
    expect(s.events.map((e) => e.id)).toEqual([fast, slowId]);
    s.close();
  });

  test('real events: a sandbox instance’s QR and status arrive on its stream', async () => {
    const user = await t.createUser();
    const tokenRes = await t.call('POST', '/api/stream-tokens', { key: user.apiKey });
    const all = await openSse(`${t.url}/api/events/stream?token=${(tokenRes.body as { token: string }).token}`);
    await until('open', () => all.retry);
    const created = await t.call('POST', '/api/instances', { key: user.apiKey, body: { phone: '+15550003001', provider: 'sandbox' } });
    expect(created.status).toBe(200);
    const id = (created.body as { id: number }).id;
    const qr = await until('an instance.qr event', () => all.events.find((e) => e.event === 'instance.qr' && e.data.instanceId === id));
    const rest = (await t.call('GET', `/api/instances/${id}/qr?format=json`, { key: user.apiKey })).body as { qr: string; expiresAt: string };
    expect(qr.data.data).toEqual({ qr: rest.qr, expiresAt: rest.expiresAt });
    expect((await t.call('POST', `/api/instances/${id}/sandbox/scan`, { key: user.apiKey })).status).toBeLessThan(300);
    await until('connected on the stream', () => all.events.some((e) => e.event === 'instance.status' && e.data.data.state === 'connected'));
    all.close();
  });
});

describe('recent messages', () => {
  test('GET /api/instances/:id/messages lists newest first, pages with before, 404 for another tenant', async () => {
    const sql = t.db.database.sql;
    for (let i = 1; i <= 3; i++) {
      await sql`insert into messages (id, instance_id, "to", type, text, status, created_at)
        values (${`msg_list_${i}`}, ${instA2}, '15550009999', 'text', ${`hello ${i}`}, 'sent', now() - ${`${10 - i} seconds`}::interval)`;
    }
    const res = await t.call('GET', `/api/instances/${instA2}/messages?limit=2`, { key: a.apiKey });
    expect(res.status).toBe(200);
    const page = (res.body as { messages: { id: string; status: string; timestamps: { createdAt: string } }[] }).messages;
    expect(page.map((m) => m.id)).toEqual(['msg_list_3', 'msg_list_2']);
    const next = await t.call('GET', `/api/instances/${instA2}/messages?limit=2&before=${encodeURIComponent(page[1]!.timestamps.createdAt)}`, { key: a.apiKey });
    expect((next.body as { messages: { id: string }[] }).messages.map((m) => m.id)).toEqual(['msg_list_1']);
    expect((await t.call('GET', `/api/instances/${instA2}/messages`, { key: b.apiKey })).status).toBe(404);
    const bad = await t.call('GET', `/api/instances/${instA2}/messages?limit=500`, { key: a.apiKey });
    expect(bad.status).toBe(400);
  });
});

describe('disconnects', () => {
  test('a client that goes away is no failure: nothing is logged at warn or above', async () => {
    const lines: string[] = [];
    const logged = await createTestApp({ listen: true, logger: createLogger('warn', { write: (line: string) => void lines.push(line) }) });
    try {
      const user = await logged.createUser();
      const instance = await fixtureRow(logged.db.database.sql, user.id, '15550004001');
      await addEventRow(logged.db.database.sql, instance, 'instance.status', { status: 'running' });
      const open = async () => (await logged.metrics.registry.getSingleMetric('wgs_event_streams_open')!.get()).values[0]?.value;
      lines.length = 0;
      // Live (waiting for events), one instance's, and a resume (replaying the log first).
      for (const path of ['/api/events/stream', `/api/instances/${instance}/events/stream`, '/api/events/stream?lastEventId=0']) {
        const s = await openSse(`${logged.url}${path}`, bearer(user.apiKey));
        expect(s.status).toBe(200);
        await until(`${path} open`, () => s.retry === 2000);
        s.close();
        await until(`${path} closed`, async () => (await open()) === 0);
      }
      // Whatever the stream did after the disconnect has happened by now.
      await Bun.sleep(300);
      expect(lines.map((line) => JSON.parse(line) as { level: number; msg: string }).filter((r) => r.level >= 40)).toEqual([]);
    } finally {
      await logged.close();
    }
  });
});
