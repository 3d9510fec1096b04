/**
 * GET /api/usage and GET /admin/usage over a ledger with known entries:
 * periods by UTC hour, day and month, totals, CSV, tenant isolation, the
 * admin view across tenants, and the parameters refused.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createTestApp, type TestApp } from '../../../../tests/support/app';
import { recordUsage } from '../../usage/ledger';

let t: TestApp;
let alice: { id: number; email: string; apiKey: string };
let bob: { id: number; email: string; apiKey: string };
let carol: { id: number; email: string; apiKey: string };

const JAN = { from: '2026-01-01T00:00:00Z', to: '2026-02-01T00:00:00Z' };
const q = (params: Record<string, string>) => `?${new URLSearchParams(params)}`;

beforeAll(async () => {
  t = await createTestApp();
  alice = await t.createUser('alice-usage@example.com');
  bob = await t.createUser('bob-usage@example.com');
  carol = await t.createUser('carol-usage@example.com');
  const at = (iso: string) => new Date(iso);
  await recordUsage(t.db.database.db, [
    { userId: alice.id, instanceId: 1, metric: 'messages_sent', provider: 'sandbox', quantity: 1, source: 'a1', occurredAt: at('2026-01-05T10:15:00Z') },
    { userId: alice.id, instanceId: 1, metric: 'messages_sent', provider: 'sandbox', quantity: 1, source: 'a2', occurredAt: at('2026-01-05T10:45:00Z') },
    { userId: alice.id, instanceId: 1, metric: 'messages_sent', provider: 'sandbox', quantity: 1, source: 'a3', occurredAt: at('2026-01-05T11:05:00Z') },
    { userId: alice.id, instanceId: 2, metric: 'messages_sent', provider: 'baileys', quantity: 1, source: 'a4', occurredAt: at('2026-01-06T23:59:59Z') },
    { userId: alice.id, instanceId: 1, metric: 'media_bytes', provider: 'sandbox', quantity: 2048, source: 'a5', occurredAt: at('2026-01-05T10:20:00Z') },
    // Quoting: a provider with a comma and a quote.
    { userId: alice.id, instanceId: 3, metric: 'messages_received', provider: 'odd, "one"', quantity: 2, source: 'a6', occurredAt: at('2026-01-07T00:00:00Z') },
    { userId: alice.id, instanceId: 1, metric: 'messages_sent', provider: 'sandbox', quantity: 1, source: 'a7', occurredAt: at('2026-02-01T00:00:00Z') },
    { userId: bob.id, instanceId: 9, metric: 'messages_sent', provider: 'whatsmeow', quantity: 5, source: 'b1', occurredAt: at('2026-01-05T10:30:00Z') },
    { userId: bob.id, instanceId: 9, metric: 'instance_seconds', provider: 'whatsmeow', quantity: 3600, source: 'b2', occurredAt: at('2026-01-05T10:00:00Z') },
    // This month: the default range.
    { userId: carol.id, instanceId: 7, metric: 'webhook_deliveries', provider: 'sandbox', quantity: 1, source: 'c1' },
  ]);
});
afterAll(() => t.close());

describe('GET /api/usage', () => {
  test('by day: rows per UTC day, metric and provider, with totals', async () => {
    const res = await t.call('GET', `/api/usage${q({ ...JAN, granularity: 'day' })}`, { key: alice.apiKey });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      from: '2026-01-01T00:00:00.000Z',
      to: '2026-02-01T00:00:00.000Z',
      granularity: 'day',
      rows: [
        { period: '2026-01-05T00:00:00.000Z', metric: 'media_bytes', provider: 'sandbox', quantity: 2048 },
        { period: '2026-01-05T00:00:00.000Z', metric: 'messages_sent', provider: 'sandbox', quantity: 3 },
        { period: '2026-01-06T00:00:00.000Z', metric: 'messages_sent', provider: 'baileys', quantity: 1 },
        { period: '2026-01-07T00:00:00.000Z', metric: 'messages_received', provider: 'odd, "one"', quantity: 2 },
      ],
      totals: { media_bytes: 2048, messages_sent: 4, messages_received: 2 },
    });
  });

  test('by hour and by month', async () => {
    const hours = await t.call('GET', `/api/usage${q({ from: '2026-01-05T00:00:00Z', to: '2026-01-06T00:00:00Z', granularity: 'hour' })}`, { key: alice.apiKey });
    expect(hours.status).toBe(200);
    expect(hours.body.rows).toEqual([
      { period: '2026-01-05T10:00:00.000Z', metric: 'media_bytes', provider: 'sandbox', quantity: 2048 },
      { period: '2026-01-05T10:00:00.000Z', metric: 'messages_sent', provider: 'sandbox', quantity: 2 },
      { period: '2026-01-05T11:00:00.000Z', metric: 'messages_sent', provider: 'sandbox', quantity: 1 },
    ]);
    const months = await t.call('GET', `/api/usage${q({ from: '2025-12-01', to: '2026-03-01', granularity: 'month' })}`, { key: alice.apiKey });
    expect(months.status).toBe(200);
    expect(months.body.rows).toEqual([
      { period: '2026-01-01T00:00:00.000Z', metric: 'media_bytes', provider: 'sandbox', quantity: 2048 },
      { period: '2026-01-01T00:00:00.000Z', metric: 'messages_received', provider: 'odd, "one"', quantity: 2 },
      { period: '2026-01-01T00:00:00.000Z', metric: 'messages_sent', provider: 'baileys', quantity: 1 },
      { period: '2026-01-01T00:00:00.000Z', metric: 'messages_sent', provider: 'sandbox', quantity: 3 },
      { period: '2026-02-01T00:00:00.000Z', metric: 'messages_sent', provider: 'sandbox', quantity: 1 },
    ]);
    expect(months.body.totals).toEqual({ media_bytes: 2048, messages_received: 2, messages_sent: 5 });
  });

  test('default: this UTC month by day', async () => {
    const res = await t.call('GET', '/api/usage', { key: carol.apiKey });
    expect(res.status).toBe(200);
    const now = new Date();
    expect(res.body.from).toBe(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)).toISOString());
    expect(res.body.to).toBe(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1)).toISOString());
    expect(res.body.granularity).toBe('day');
    expect(res.body.rows).toEqual([
      { period: new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate())).toISOString(), metric: 'webhook_deliveries', provider: 'sandbox', quantity: 1 },
    ]);
  });

  test('a tenant sees only its own usage', async () => {
    const res = await t.call('GET', `/api/usage${q({ ...JAN, granularity: 'hour', to: '2026-01-31T00:00:00Z' })}`, { key: bob.apiKey });
    expect(res.status).toBe(200);
    expect(res.body.rows).toEqual([
      { period: '2026-01-05T10:00:00.000Z', metric: 'instance_seconds', provider: 'whatsmeow', quantity: 3600 },
      { period: '2026-01-05T10:00:00.000Z', metric: 'messages_sent', provider: 'whatsmeow', quantity: 5 },
    ]);
    expect(res.body.totals).toEqual({ instance_seconds: 3600, messages_sent: 5 });
    const none = await t.call('GET', `/api/usage${q(JAN)}`, { key: carol.apiKey });
    expect(none.body).toMatchObject({ rows: [], totals: {} });
    expect((await t.call('GET', `/api/usage${q(JAN)}`)).status).toBe(401);
  });

  test('CSV by ?format=csv or Accept: text/csv, quoted per RFC 4180', async () => {
    const expected =
      'period,metric,provider,quantity\r\n' +
      '2026-01-05T00:00:00.000Z,media_bytes,sandbox,2048\r\n' +
      '2026-01-05T00:00:00.000Z,messages_sent,sandbox,3\r\n' +
      '2026-01-06T00:00:00.000Z,messages_sent,baileys,1\r\n' +
      '2026-01-07T00:00:00.000Z,messages_received,"odd, ""one""",2\r\n';
    const byFormat = await t.call('GET', `/api/usage${q({ ...JAN, format: 'csv' })}`, { key: alice.apiKey });
    expect(byFormat.status).toBe(200);
    expect(byFormat.headers.get('content-type')).toStartWith('text/csv');
    expect(byFormat.headers.get('content-disposition')).toBe('attachment; filename="usage-2026-01-01-day.csv"');
    expect(byFormat.body).toBe(expected);
    const byAccept = await t.call('GET', `/api/usage${q(JAN)}`, { key: alice.apiKey, headers: { accept: 'text/csv' } });
    expect(byAccept.headers.get('content-type')).toStartWith('text/csv');
    expect(byAccept.body).toBe(expected);
    // An explicit format wins over Accept.
    const json = await t.call('GET', `/api/usage${q({ ...JAN, format: 'json' })}`, { key: alice.apiKey, headers: { accept: 'text/csv' } });
    expect(json.body.totals.messages_sent).toBe(4);
  });

  test('bad parameters: 400 naming the parameter', async () => {
    const cases: [Record<string, string>, string][] = [
      [{ from: 'yesterday' }, "'from'"],
      [{ ...JAN, to: '2026-13-45' }, "'to'"],
      [{ from: '2026-01-05', to: '2026-01-05' }, "'to': must be after 'from'"],
      [{ from: '2026-01-05', to: '2026-01-01' }, "'to': must be after 'from'"],
      [{ from: '2026-01-01', to: '2026-02-02', granularity: 'hour' }, "'to': at most 31 days"],
      [{ from: '2020-01-01', to: '2023-01-01', granularity: 'day' }, "'to': at most 731 days"],
      [{ ...JAN, granularity: 'week' }, "'granularity'"],
      [{ ...JAN, format: 'xml' }, 'format'],
      // Not rolled over to another day (2026-02-31 is not 2026-03-03), and within what JS and Postgres both hold.
      [{ from: '2026-02-31' }, "'from': must be an ISO 8601 date or date-time from 1970 to 9999"],
      [{ from: '2026-02-29', to: '2026-03-31' }, "'from'"],
      [{ from: '2026-04-31T00:00:00Z' }, "'from'"],
      [{ ...JAN, to: '2026-01-31T24:00:00Z' }, "'to'"],
      [{ ...JAN, to: '2026-01-31T10:61' }, "'to'"],
      [{ from: '0000-01-01', to: '0000-02-01' }, "'from'"],
      [{ from: '1969-12-01', to: '1970-01-01' }, "'from'"],
      [{ from: '9999-12-01', to: '10000-01-01' }, "'to'"],
      [{ from: '2026-01-01T00:00:00+25:00' }, "'from'"],
    ];
    for (const [params, message] of cases) {
      const res = await t.call('GET', `/api/usage${q(params)}`, { key: alice.apiKey });
      expect(res.status, JSON.stringify(params)).toBe(400);
      expect(res.body.error, JSON.stringify(params)).toContain(message);
    }
  });

  test('real calendar dates at the edges are taken: a leap day, the first and last years', async () => {
    const leap = await t.call('GET', `/api/usage${q({ from: '2024-02-29', to: '2024-03-01' })}`, { key: alice.apiKey });
    expect(leap.status).toBe(200);
    expect([leap.body.from, leap.body.to]).toEqual(['2024-02-29T00:00:00.000Z', '2024-03-01T00:00:00.000Z']);
    const first = await t.call('GET', `/api/usage${q({ from: '1970-01-01', to: '1970-02-01' })}`, { key: alice.apiKey });
    expect(first.body.from).toBe('1970-01-01T00:00:00.000Z');
    const last = await t.call('GET', `/api/usage${q({ from: '9999-12-01', to: '9999-12-31T23:59:59.999Z', granularity: 'month' })}`, { key: alice.apiKey });
    expect(last.status).toBe(200);
    expect(last.body.to).toBe('9999-12-31T23:59:59.999Z');
    const offset = await t.call('GET', `/api/usage${q({ from: '2026-01-05T12:00:00+02:00', to: '2026-01-06T00:00', granularity: 'hour' })}`, { key: alice.apiKey });
    expect(offset.body.from).toBe('2026-01-05T10:00:00.000Z');
    expect(offset.body.rows.map((r: { period: string }) => r.period)).toEqual(['2026-01-05T10:00:00.000Z', '2026-01-05T10:00:00.000Z', '2026-01-05T11:00:00.000Z']);
  });
});

describe('GET /admin/usage', () => {
  test('every tenant, with user id and email; or one tenant', async () => {
    const res = await t.call('GET', `/admin/usage${q({ from: '2026-01-05T00:00:00Z', to: '2026-01-06T00:00:00Z', granularity: 'hour' })}`);
    expect(res.status).toBe(200);
    expect(res.body.rows).toEqual([
      { period: '2026-01-05T10:00:00.000Z', userId: alice.id, email: alice.email, metric: 'media_bytes', provider: 'sandbox', quantity: 2048 },
      { period: '2026-01-05T10:00:00.000Z', userId: alice.id, email: alice.email, metric: 'messages_sent', provider: 'sandbox', quantity: 2 },
      { period: '2026-01-05T10:00:00.000Z', userId: bob.id, email: bob.email, metric: 'instance_seconds', provider: 'whatsmeow', quantity: 3600 },
      { period: '2026-01-05T10:00:00.000Z', userId: bob.id, email: bob.email, metric: 'messages_sent', provider: 'whatsmeow', quantity: 5 },
      { period: '2026-01-05T11:00:00.000Z', userId: alice.id, email: alice.email, metric: 'messages_sent', provider: 'sandbox', quantity: 1 },
    ]);
    expect(res.body.totals).toEqual({ media_bytes: 2048, messages_sent: 8, instance_seconds: 3600 });

    const one = await t.call('GET', `/admin/usage${q({ ...JAN, granularity: 'month', userId: String(bob.id) })}`);
    expect(one.body.rows).toEqual([
      { period: '2026-01-01T00:00:00.000Z', userId: bob.id, email: bob.email, metric: 'instance_seconds', provider: 'whatsmeow', quantity: 3600 },
      { period: '2026-01-01T00:00:00.000Z', userId: bob.id, email: bob.email, metric: 'messages_sent', provider: 'whatsmeow', quantity: 5 },
    ]);

    const csv = await t.call('GET', `/admin/usage${q({ ...JAN, granularity: 'month', userId: String(bob.id), format: 'csv' })}`);
    expect(csv.headers.get('content-disposition')).toStartWith('attachment;');
    expect(csv.body).toBe(
      'period,user_id,email,metric,provider,quantity\r\n' +
        `2026-01-01T00:00:00.000Z,${bob.id},${bob.email},instance_seconds,whatsmeow,3600\r\n` +
        `2026-01-01T00:00:00.000Z,${bob.id},${bob.email},messages_sent,whatsmeow,5\r\n`,
    );
  });

  test('admin only; bad parameters 400', async () => {
    expect((await t.call('GET', `/admin/usage${q(JAN)}`, { admin: false, key: alice.apiKey })).status).toBe(401);
    const bad = await t.call('GET', `/admin/usage${q({ from: 'x' })}`);
    expect(bad.status).toBe(400);
    expect(bad.body.error).toContain("'from'");
    const rolled = await t.call('GET', `/admin/usage${q({ from: '2026-02-31' })}`);
    expect(rolled.status).toBe(400);
    expect(rolled.body.error).toContain("'from'");
    for (const userId of ['1.5', '0x1', '1e0', '0', '-1', '', '2147483648']) {
      const res = await t.call('GET', `/admin/usage${q({ ...JAN, userId })}`);
      expect(res.status, userId).toBe(400);
      expect(res.body, userId).toEqual({ code: 'validation_failed', error: "invalid query parameter 'userId': must be a positive integer" });
    }
  });
});
