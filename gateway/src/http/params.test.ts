/**
 * Path and query parameters are read strictly: ids and limits are decimal integers in range (no hex, no
 * fractions, no exponent or sign), times are real calendar dates from 1970 to 9999, and anything else is
 * a 400 `validation_failed` naming the parameter, never SQL's "a value cannot be stored" nor a silent
 * reading of something else. The real app on a real database.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createTestApp, type TestApp } from '../../../tests/support/app';
import { addEvent, fixtureInstance } from '../../../tests/support/event-log';
import { integerPattern, isoInstant } from './params';

let t: TestApp;
let user: { id: number; apiKey: string };
let instanceId: number;
let webhookId: number;
let planId: number;
let nodeId: number;

beforeAll(async () => {
  t = await createTestApp();
  user = await t.createUser();
  instanceId = await fixtureInstance(t.db.database.sql, user.id, '15550003001');
  const sub = await t.call('POST', `/api/instances/${instanceId}/webhooks`, { key: user.apiKey, body: { url: 'http://127.0.0.1:9/hook' } });
  expect(sub.status).toBe(201);
  webhookId = sub.body.id;
  const [plan] = await t.db.database.sql<{ id: number }[]>`select id from plans order by id limit 1`;
  planId = plan!.id;
  const [node] = await t.db.database.sql<{ id: number }[]>`select id from nodes where name = 'local'`;
  nodeId = node!.id;
  const sql = t.db.database.sql;
  await sql`insert into messages (id, instance_id, "to", type, created_at) values ('msg_p_2020', ${instanceId}, '15550009999', 'text', '2020-06-01T00:00:00Z')`;
  await sql`insert into messages (id, instance_id, "to", type, created_at) values ('msg_p_2024', ${instanceId}, '15550009999', 'text', '2024-06-01T00:00:00Z')`;
});
afterAll(() => t.close());

async function bad(method: string, path: string, body?: unknown) {
  const res = await t.call(method, path, path.startsWith('/admin') ? { body } : { key: user.apiKey, body });
  expect(res.status, `${method} ${path}`).toBe(400);
  return res.body as { code: string; error: string };
}

describe('ids in paths', () => {
  const NOT_DECIMAL = ['0x1', '1.5', '1e0', '+1', '-1', '0', ' 1', '1 ', '2147483648', '99999999999', '1,5', '0b1', 'Infinity', 'NaN'];

  test('hex, fractions, signs, exponents, blanks and out-of-range ids are 400 naming the parameter', async () => {
    const routes: [string, (v: string) => string, string][] = [
      ['GET', (v) => `/api/instances/${encodeURIComponent(v)}`, 'id'],
      ['DELETE', (v) => `/api/instances/${encodeURIComponent(v)}`, 'id'],
      ['POST', (v) => `/api/instances/${encodeURIComponent(v)}/restart`, 'id'],
      ['GET', (v) => `/api/instances/${encodeURIComponent(v)}/messages`, 'id'],
      ['GET', (v) => `/api/instances/${encodeURIComponent(v)}/events`, 'id'],
      ['GET', (v) => `/api/instances/${encodeURIComponent(v)}/webhooks`, 'id'],
      ['GET', (v) => `/api/instances/${instanceId}/webhooks/${encodeURIComponent(v)}/deliveries`, 'wid'],
      ['POST', (v) => `/api/instances/${instanceId}/webhooks/${webhookId}/deliveries/${encodeURIComponent(v)}/replay`, 'deliveryId'],
      ['GET', (v) => `/admin/plans/${encodeURIComponent(v)}`, 'id'],
      ['GET', (v) => `/admin/nodes/${encodeURIComponent(v)}`, 'id'],
      ['DELETE', (v) => `/admin/users/${encodeURIComponent(v)}`, 'id'],
      ['POST', (v) => `/admin/users/${encodeURIComponent(v)}/keys`, 'id'],
    ];
    for (const [method, path, name] of routes) {
      for (const v of NOT_DECIMAL) {
        // The delivery id is a bigint: 2147483648 is one.
        if (name === 'deliveryId' && (v === '2147483648' || v === '99999999999')) continue;
        const body = await bad(method, path(v));
        expect(body.code, `${method} ${path(v)}`).toBe('validation_failed');
        expect(body.error, `${method} ${path(v)}`).toStartWith(`invalid path parameter '${name}': must be`);
      }
    }
  });

  test('a delivery id past the largest safe integer is refused naming it', async () => {
    expect(await bad('POST', `/api/instances/${instanceId}/webhooks/${webhookId}/deliveries/9007199254740992/replay`)).toEqual({
      code: 'validation_failed',
      error: "invalid path parameter 'deliveryId': must be an integer from 1 to 9007199254740991",
    });
  });

  test('decimal ids still work, as numbers (leading zeros read as decimal)', async () => {
    const got = await t.call('GET', `/api/instances/${instanceId}`, { key: user.apiKey });
    expect(got.status).toBe(200);
    expect(got.body.id).toBe(instanceId);
    const padded = await t.call('GET', `/api/instances/0${instanceId}`, { key: user.apiKey });
    expect(padded.status).toBe(200);
    expect(padded.body.id).toBe(instanceId);
    expect((await t.call('GET', '/api/instances/2147483647', { key: user.apiKey })).status).toBe(404);
    expect((await t.call('GET', `/admin/plans/${planId}`)).body.id).toBe(planId);
    expect((await t.call('GET', `/admin/nodes/${nodeId}`)).status).toBe(200);
    expect((await t.call('GET', `/api/instances/${instanceId}/webhooks/${webhookId}/deliveries`, { key: user.apiKey })).status).toBe(200);
    expect((await t.call('POST', `/api/instances/${instanceId}/webhooks/${webhookId}/deliveries/9007199254740991/replay`, { key: user.apiKey })).status).toBe(404);
  });
});

describe('limits and ids in queries', () => {
  test('fractions, hex and out-of-range values are 400 naming the parameter', async () => {
    for (const v of ['1.5', '0x1', '1e1', '0', '-1', '', ' 5', '201']) {
      expect(await bad('GET', `/api/instances/${instanceId}/messages?limit=${encodeURIComponent(v)}`)).toEqual({
        code: 'validation_failed',
        error: "invalid query parameter 'limit': must be an integer from 1 to 200",
      });
    }
    for (const v of ['1.5', '0x1', '1e1', '0', '1001']) {
      expect(await bad('GET', `/api/instances/${instanceId}/webhooks/${webhookId}/deliveries?limit=${v}`)).toEqual({
        code: 'validation_failed',
        error: "invalid query parameter 'limit': must be an integer from 1 to 1000",
      });
    }
    for (const v of ['1.5', '0x1', '0', '2147483648']) {
      const body = await bad('GET', `/admin/usage?userId=${v}`);
      expect(body.code).toBe('validation_failed');
      expect(body.error).toStartWith("invalid query parameter 'userId': must be");
    }
  });

  test('integers in range still work', async () => {
    const page = await t.call('GET', `/api/instances/${instanceId}/messages?limit=1`, { key: user.apiKey });
    expect(page.status).toBe(200);
    expect(page.body.messages.map((m: { id: string }) => m.id)).toEqual(['msg_p_2024']);
    expect((await t.call('GET', `/api/instances/${instanceId}/webhooks/${webhookId}/deliveries?limit=1000`, { key: user.apiKey })).status).toBe(200);
    expect((await t.call('GET', `/admin/usage?userId=${user.id}`)).status).toBe(200);
  });
});

describe('before of GET /api/instances/:id/messages', () => {
  const ids = async (before: string) => {
    const res = await t.call('GET', `/api/instances/${instanceId}/messages?before=${encodeURIComponent(before)}`, { key: user.apiKey });
    expect(res.status, before).toBe(200);
    return res.body.messages.map((m: { id: string }) => m.id);
  };

  test('years before 1970 or after 9999, impossible dates and non-dates are 400 naming it', async () => {
    for (const v of ['0000-01-01', '1969-12-31T23:59:59Z', '999999999999999', '253402300800000', '10000-01-01', '2026-02-31', '2026-13-01', '2026-01-01T25:00:00Z', '2026-1-1', 'yesterday', '', '1.5', '-1']) {
      const body = await bad('GET', `/api/instances/${instanceId}/messages?before=${encodeURIComponent(v)}`);
      expect(body.code, v).toBe('validation_failed');
      expect(body.error, v).toStartWith("invalid query parameter 'before': must be an ISO 8601 date or date-time");
    }
  });

  test('an ISO 8601 date or date-time, or milliseconds since 1970, pages as before', async () => {
    expect(await ids('2024-06-01T00:00:00.000Z')).toEqual(['msg_p_2020']);
    expect(await ids('2024-06-01T00:00:00.001Z')).toEqual(['msg_p_2024', 'msg_p_2020']);
    expect(await ids('2024-02-29')).toEqual(['msg_p_2020']);
    expect(await ids('2024-06-01T02:00:00+02:00')).toEqual(['msg_p_2020']);
    expect(await ids(String(Date.parse('2024-06-01T00:00:00Z')))).toEqual(['msg_p_2020']);
    expect(await ids('1970-01-01')).toEqual([]);
    expect(await ids('9999-12-31T23:59:59.999Z')).toEqual(['msg_p_2024', 'msg_p_2020']);
  });
});

describe('POST /api/instances/:id/sandbox/faults', () => {
  test('its counts are integers or digit strings: blanks, fractions, hex and exponents are 400 naming the field', async () => {
    const path = `/api/instances/${instanceId}/sandbox/faults`;
    const cases: [Record<string, unknown>, string][] = [
      [{ rateLimitNext: ' ', retryAfter: ' ' }, 'rateLimitNext'],
      [{ rateLimitNext: '' }, 'rateLimitNext'],
      [{ rateLimitNext: '0x10' }, 'rateLimitNext'],
      [{ rateLimitNext: '1e2' }, 'rateLimitNext'],
      [{ rateLimitNext: '1.5' }, 'rateLimitNext'],
      [{ rateLimitNext: 1.5 }, 'rateLimitNext'],
      [{ rateLimitNext: -1 }, 'rateLimitNext'],
      [{ rateLimitNext: 1001 }, 'rateLimitNext'],
      [{ rateLimitNext: '1001' }, 'rateLimitNext'],
      [{ rateLimitNext: true }, 'rateLimitNext'],
      [{ rateLimitNext: 1, retryAfter: ' ' }, 'retryAfter'],
      [{ rateLimitNext: 1, retryAfter: '86401' }, 'retryAfter'],
      [{ rateLimitNext: 1, retryAfter: 0.5 }, 'retryAfter'],
    ];
    for (const [body, field] of cases) {
      const max = field === 'rateLimitNext' ? 1000 : 86400;
      expect(await bad('POST', path, body), JSON.stringify(body)).toEqual({ code: 'validation_failed', error: `invalid field '${field}': must be an integer from 0 to ${max}` });
    }
    expect((await bad('POST', path, {})).error).toBe("invalid field 'rateLimitNext': is required");
  });

  test('numbers and digit strings pass validation (this instance has no worker: 503)', async () => {
    for (const body of [{ rateLimitNext: 2 }, { rateLimitNext: '2', retryAfter: '30' }, { rateLimitNext: 0, retryAfter: 86400 }]) {
      const res = await t.call('POST', `/api/instances/${instanceId}/sandbox/faults`, { key: user.apiKey, body });
      expect(res.status, JSON.stringify(body)).toBe(503);
    }
  });
});

describe('GET /api/events?types=', () => {
  test('a list naming no type (",,,", "", " , ") is every type, as without the parameter', async () => {
    const id = await addEvent(t.db.database.sql, instanceId, 'message.received', { id: 'in-types', text: 'hi' });
    for (const types of [',,,', '', ' , ', ',']) {
      for (const path of ['/api/events', `/api/instances/${instanceId}/events`]) {
        const res = await t.call('GET', `${path}?types=${encodeURIComponent(types)}`, { key: user.apiKey });
        expect(res.status, `${path} ${types}`).toBe(200);
        expect(res.body.events.map((e: { id: number }) => e.id), `${path} ${types}`).toContain(id);
      }
    }
  });
});

describe('the patterns and parsers', () => {
  test('integerPattern: exactly the decimal integers min..max', () => {
    for (const max of [1, 9, 10, 99, 100, 200, 1000, 86_400, 2_147_483_647, Number.MAX_SAFE_INTEGER]) {
      for (const min of [0, 1] as const) {
        const re = new RegExp(integerPattern(min, max));
        for (let n = 0; n <= Math.min(max + 20, 20_000); n++) expect(re.test(String(n)), `${min}..${max}: ${n}`).toBe(n >= min && n <= max);
        for (const n of [max - 1, max, max + 1, max * 10]) expect(re.test(String(n)), `${min}..${max}: ${n}`).toBe(n >= min && n <= max);
        for (const s of ['', ' 1', '1 ', '+1', '-1', '1.5', '1.0', '1e1', '0x1', '１']) expect(re.test(s), s).toBe(false);
        expect(re.test('1'.padStart(String(max).length, '0'))).toBe(true);
        expect(re.test('1'.padStart(String(max).length + 1, '0'))).toBe(false);
      }
    }
  });

  test('isoInstant: real calendar dates and times from 1970 to 9999 only', () => {
    const ok: [string, string][] = [
      ['2024-02-29', '2024-02-29T00:00:00.000Z'],
      ['2000-02-29', '2000-02-29T00:00:00.000Z'],
      ['2026-01-31T10:00', '2026-01-31T10:00:00.000Z'],
      ['2026-01-31 10:00:05.123456+05:30', '2026-01-31T04:30:05.123Z'],
      ['2026-01-31T10:00:00-0100', '2026-01-31T11:00:00.000Z'],
      ['1970-01-01', '1970-01-01T00:00:00.000Z'],
      ['9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999Z'],
    ];
    for (const [v, iso] of ok) expect(isoInstant(v)?.toISOString(), v).toBe(iso);
    for (const v of ['2026-02-31', '2023-02-29', '1900-02-29', '2026-04-31', '2026-00-10', '2026-01-00', '2026-01-01T24:00', '2026-01-01T10:60', '2026-01-01T10:00:60Z', '2026-01-01T10:00+24:00', '0000-01-01', '1969-12-31T23:59:59.999Z', '1970-01-01T00:30:00+01:00', '9999-12-31T23:00:00-01:00', '2026-1-1', '20260101', '']) {
      expect(isoInstant(v), v).toBeUndefined();
    }
  });
});
