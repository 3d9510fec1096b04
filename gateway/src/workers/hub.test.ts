import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createTestApp, type TestApp } from '../../../tests/support/app';
import { CloseCodes, PROTOCOL_VERSION, WORKER_WS_PATH } from '../../../workers/protocol/frames';
import { hashWorkerToken, newWorkerToken } from './tokens';

let t: TestApp;
let a: number;
let b: number;

beforeAll(async () => {
  t = await createTestApp({ listen: true });
  const user = await t.createUser();
  // Instances without workers: this test plays the worker itself.
  const rows = await t.db.database.sql`
    insert into instances (user_id, phone_number, provider, desired_state)
    values (${user.id}, '4915100000100', 'sandbox', 'stopped'), (${user.id}, '4915100000200', 'sandbox', 'stopped')
    returning id`;
  a = rows[0]!.id;
  b = rows[1]!.id;
});
afterAll(() => t.close());

/** Opens a worker socket, sends `first`, and returns the first frame received or the close code. */
function connect(first: unknown): Promise<{ frame?: any; closeCode?: number; ws: WebSocket }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${t.url!.replace('http', 'ws')}${WORKER_WS_PATH}`);
    const timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5000);
    ws.onopen = () => ws.send(typeof first === 'string' ? first : JSON.stringify(first));
    ws.onmessage = (m) => {
      clearTimeout(timer);
      resolve({ frame: JSON.parse(String(m.data)), ws });
    };
    ws.onclose = (e) => {
      clearTimeout(timer);
      resolve({ closeCode: e.code, ws });
    };
  });
}

const hello = (instanceId: number, token: string, protocol = PROTOCOL_VERSION) => ({
  type: 'hello',
  protocol,
  instanceId,
  token,
  provider: 'sandbox',
  workerVersion: 'test',
});

describe('worker authentication', () => {
  test("a token opens only its own instance's socket", async () => {
    const { token, hash } = newWorkerToken();
    await t.db.database.sql`update instances set worker_token_hash = ${hash} where id = ${a}`;
    await t.db.database.sql`update instances set worker_token_hash = ${hashWorkerToken('other')} where id = ${b}`;

    const foreign = await connect(hello(b, token));
    expect(foreign.closeCode).toBe(CloseCodes.unauthorized);

    const own = await connect(hello(a, token));
    expect(own.frame).toEqual({ type: 'welcome', protocol: PROTOCOL_VERSION, instanceId: a, phone: '4915100000100' });
    expect(t.runtime.isWorkerConnected(a)).toBe(true);
    own.ws.close();
  });

  test('no hello, a bad frame, an unknown instance or protocol are refused', async () => {
    const { token, hash } = newWorkerToken();
    await t.db.database.sql`update instances set worker_token_hash = ${hash} where id = ${a}`;
    expect((await connect('not json')).closeCode).toBe(CloseCodes.unauthorized);
    expect((await connect({ type: 'ping', t: 1 })).closeCode).toBe(CloseCodes.unauthorized);
    expect((await connect(hello(999999, token))).closeCode).toBe(CloseCodes.unauthorized);
    expect((await connect(hello(a, token, 99))).closeCode).toBe(CloseCodes.unsupportedProtocol);
  });

  test('a newer connection replaces the older one', async () => {
    const { token, hash } = newWorkerToken();
    await t.db.database.sql`update instances set worker_token_hash = ${hash} where id = ${a}`;
    const first = await connect(hello(a, token));
    const closed = new Promise<number>((resolve) => (first.ws.onclose = (e) => resolve(e.code)));
    const second = await connect(hello(a, token));
    expect(second.frame.type).toBe('welcome');
    expect(await closed).toBe(CloseCodes.replaced);
    second.ws.close();
  });
});
