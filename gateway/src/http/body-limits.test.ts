import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { sql as drizzleSql } from 'drizzle-orm';
import { createTestApp, type TestApp } from '../../../tests/support/app';
import { until } from '../../../tests/support/poll';
import { createLogger } from '../logging/logger';
import { jsonNestingExceeds, MAX_BODY_DEPTH } from './app';
import { clientDatabaseError, errorForLog, sqlState } from './errors';

/** What the app logged (JSON lines, info and above). */
const lines: string[] = [];
const records = () => lines.map((line) => JSON.parse(line) as { level: number; msg: string } & Record<string, unknown>);

let t: TestApp;
let user: { id: number; apiKey: string };
let instance: number;

const nest = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
/** A template send whose one component holds `inner` as `x`: the body nests 4 levels plus what `inner` does. */
const templateBody = (inner: string) =>
  `{"to":"4915100000999","type":"template","template":{"name":"n","language":"en","components":[{"x":${inner}}]}}`;
const interactiveBody = (inner: string) => `{"to":"4915100000999","type":"interactive","interactive":{"kind":"buttons","x":${inner}}}`;
const campaignBody = (message: string) => `{"messages":[${message}]}`;

const tooDeep = { error: `the JSON body is nested deeper than ${MAX_BODY_DEPTH} levels`, code: 'body_too_deep' };

async function timed(method: string, path: string, raw: string, key: string | null = user.apiKey) {
  const start = performance.now();
  const res = await t.call(method, path, { raw, ...(key !== null && { key }) });
  return { ...res, ms: performance.now() - start };
}

beforeAll(async () => {
  t = await createTestApp({ listen: true, logger: createLogger('info', { write: (line: string) => void lines.push(line) }) });
  user = await t.createUser();
  const created = await t.call('POST', '/api/instances', { key: user.apiKey, body: { provider: 'sandbox', phone: '4915100000001' } });
  expect(created.status).toBe(200);
  instance = (created.body as { id: number }).id;
  await until('a QR', async () => (await t.call('GET', `/api/instances/${instance}/qr?format=json`, { key: user.apiKey })).status === 200);
  expect((await t.call('POST', `/api/instances/${instance}/sandbox/scan`, { key: user.apiKey })).status).toBe(200);
});
afterAll(() => t.close());

describe('JSON bodies nested too deeply', () => {
  test('a deep value inside a send, a campaign or any route is 400 body_too_deep at once, never a 500', async () => {
    const send = `/api/instances/${instance}/send`;
    const campaigns = `/api/instances/${instance}/campaigns`;
    const cases: [string, string][] = [
      [send, templateBody(nest(20_000))],
      [send, interactiveBody(nest(20_000))],
      [campaigns, campaignBody(templateBody(nest(20_000)))],
      [campaigns, nest(20_000)],
      [campaigns, nest(100_000)],
      [campaigns, '{"a":'.repeat(20_000) + '1' + '}'.repeat(20_000)],
      // Not even valid JSON: the depth is what the body is refused for, before any parser sees it.
      [campaigns, '['.repeat(100_000)],
      ['/api/instances', nest(100_000)],
      ['/admin/users', `{"email":${nest(5_000)}}`],
    ];
    for (const [path, raw] of cases) {
      const res = await timed('POST', path, raw, path.startsWith('/admin') ? null : user.apiKey);
      expect({ path, start: raw.slice(0, 40), status: res.status, body: res.body }).toEqual({ path, start: raw.slice(0, 40), status: 400, body: tooDeep });
      // Was 3 to 7 s of CPU (and a 500) for the campaign route.
      expect(res.ms).toBeLessThan(1_500);
    }
    // Nothing was stored and nothing logged as an error.
    expect((await t.call('GET', `/api/instances/${instance}/messages`, { key: user.apiKey })).body.messages).toEqual([]);
    expect(records().filter((r) => r.level >= 50)).toEqual([]);
  });

  test('the limit is exactly MAX_BODY_DEPTH levels: a body that deep is taken and stored', async () => {
    expect(MAX_BODY_DEPTH).toBe(64);
    const within = await t.call('POST', `/api/instances/${instance}/send`, { key: user.apiKey, raw: templateBody(nest(MAX_BODY_DEPTH - 4)) });
    expect(within.status).toBe(200);
    const id = (within.body as { id: string }).id;
    expect((await t.call('GET', `/api/instances/${instance}/messages/${id}`, { key: user.apiKey })).status).toBe(200);
    const past = await t.call('POST', `/api/instances/${instance}/send`, { key: user.apiKey, raw: templateBody(nest(MAX_BODY_DEPTH - 3)) });
    expect(past.status).toBe(400);
    expect(past.body).toEqual(tooDeep);
  });

  test('brackets inside strings are text, not nesting (escaped quotes and backslashes included)', async () => {
    // 1,000 brackets inside a string, among quotes and backslashes that the JSON text escapes.
    const text = `${'['.repeat(500)} " {{{ \\ \\" \\\\" ${'{'.repeat(500)} "`;
    const raw = JSON.stringify({ to: '4915100000999', text });
    expect(raw).toContain('\\\\\\"');
    const res = await t.call('POST', `/api/instances/${instance}/send`, { key: user.apiKey, raw });
    expect(res.status).toBe(200);
    expect(jsonNestingExceeds(JSON.stringify({ a: '['.repeat(100), b: '\\"[[[', c: '\\' }), 1)).toBe(false);
    expect(jsonNestingExceeds('[{"a":"\\\\"}]', 1)).toBe(true);
    expect(jsonNestingExceeds('[{"a":"\\\\"}]', 2)).toBe(false);
    expect(jsonNestingExceeds(nest(3), 3)).toBe(false);
    expect(jsonNestingExceeds(nest(4), 3)).toBe(true);
    // Siblings do not add up.
    expect(jsonNestingExceeds(`[${Array(1000).fill(nest(3)).join(',')}]`, 4)).toBe(false);
  });

  test('an unauthenticated caller gets its 401 whatever it sends; a body that is not JSON is not looked at', async () => {
    const res = await timed('POST', `/api/instances/${instance}/send`, templateBody(nest(20_000)), null);
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('unauthorized');
    const text = await t.app.handle(
      new Request('http://wgs.test/api/stream-tokens', { method: 'POST', headers: { authorization: `Bearer ${user.apiKey}`, 'content-type': 'text/plain' }, body: nest(1_000) }),
    );
    expect(text.status).toBe(201);
  });
});

describe('values Postgres refuses', () => {
  test('an unpaired surrogate in a text is 400 invalid_value naming the causes, logged at info without the request content', async () => {
    const filler = 'y'.repeat(20_000);
    const res = await t.call('POST', `/api/instances/${instance}/send`, { key: user.apiKey, raw: `{"to":"4915100000999","text":"${filler}\\ud800"}` });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'a value in the request cannot be stored: a text with a NUL character or an unpaired UTF-16 surrogate, or a number or date out of range', code: 'invalid_value' });
    const refused = records().filter((r) => r.msg === 'request refused by the database');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((r) => r.level === 30 && typeof r.sqlState === 'string' && r.sqlState.startsWith('22'))).toBe(true);
    expect(lines.some((line) => line.includes('y'.repeat(100)))).toBe(false);
  });

  test('class 54 (a jsonb value past the stack limit) is a client error, and its log record carries no parameters', async () => {
    // No request can reach this any more (bodies are at most 64 levels): the real Postgres error, through drizzle, as a route would see it.
    const deep = nest(20_000);
    const err = await t.db.database.db.execute(drizzleSql`select ${deep}::jsonb as v`).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(sqlState(err)).toBe('54001');
    const refused = clientDatabaseError(err);
    expect(refused).toMatchObject({ status: 400, code: 'value_too_complex', message: 'a value in the request is nested too deeply to be stored' });
    expect(clientDatabaseError(Object.assign(new Error('index row size 3000 exceeds btree version 4 maximum 2704'), { code: '54000' }))).toMatchObject({ status: 400, code: 'value_too_complex' });
    expect(clientDatabaseError(new Error('boom'))).toBeUndefined();
    expect(clientDatabaseError(Object.assign(new Error('x'), { code: '23505' }))).toBeUndefined();
    // What an unhandled error's log record would hold: drizzle's message and stack carry every parameter; this does not.
    expect(String((err as Error).message).length).toBeGreaterThan(deep.length);
    const logged = JSON.stringify(errorForLog(err));
    expect(logged.length).toBeLessThan(10_000);
    expect(logged).not.toContain('[[[[[[[[');
    expect(logged).toContain('stack depth limit exceeded');
    expect(logged).toContain('54001');
  });
});
