/**
 * Webhooks never lose an event: a real gateway process, a real sandbox
 * worker, a receiver on loopback that is down, then failing, then fine, and a
 * gateway restart in the middle.
 */
import { afterAll, expect, test } from 'bun:test';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../gateway/src/lib/net';
import { gatewayApi, startGatewayProcess } from '../support/gateway-process';
import { createTestDatabase } from '../support/postgres';
import { until } from '../support/poll';
import { webhookReceiver } from '../support/receiver';

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
});

const api = gatewayApi;

test('50 events while the receiver is down and the gateway restarts: all arrive, each once', async () => {
  const db = await createTestDatabase();
  cleanup.push(() => db.drop());
  const dir = await mkdtemp(join(tmpdir(), 'wgs-e2e-hooks-'));
  await chmod(dir, 0o755);
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort(); // nothing listens here yet: connection refused
  const env = {
    DATABASE_URL: db.url,
    ADMIN_API_SECRET: 's',
    DATA_DIR: dir,
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    WEBHOOK_RETRY_SCHEDULE: Array(20).fill(1).join(','), // the most the schedule may have
  };
  const start = () => startGatewayProcess(env, cleanup);

  let g = await start();
  const user = (await api(g, 'POST', '/admin/users', undefined, { email: 'hooks@example.com' })).body;
  const id = (await api(g, 'POST', '/api/instances', user.apiKey, { provider: 'sandbox', phone: '4915100000901' })).body.id;
  const hook = await api(g, 'POST', `/api/instances/${id}/webhooks`, user.apiKey, { url: `http://127.0.0.1:${port}/hook`, events: ['message.received'] });
  expect(hook.status).toBe(201);
  expect((await api(g, 'POST', `/api/instances/${id}/sandbox/scan`, user.apiKey)).status).toBe(200);

  const inbound = async (n: number) => {
    const r = await api(g, 'POST', `/api/instances/${id}/sandbox/inbound`, user.apiKey, { from: '4477000000', text: `event ${n}` });
    expect(r.status).toBe(200);
  };
  for (let n = 0; n < 25; n++) await inbound(n);
  expect(await g.stop('SIGTERM')).toBe(0);
  g = await start();
  await until('connected again', async () => (await api(g, 'GET', `/api/instances/${id}`, user.apiKey)).body?.state === 'connected');
  for (let n = 25; n < 50; n++) await inbound(n);

  // The receiver comes up, answers 500 at first, then 200.
  const answered: string[] = [];
  const texts = new Set<string>();
  let requests = 0;
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port,
    async fetch(req) {
      const body = JSON.parse(await req.text());
      if (++requests <= 5) return new Response('not yet', { status: 500 });
      answered.push(req.headers.get('webhook-id')!);
      texts.add(body.data.text);
      return new Response('ok');
    },
  });
  cleanup.push(async () => server.stop(true));

  await until('all 50 delivered', () => texts.size === 50, 60_000);
  await Bun.sleep(1500); // one more retry interval: nothing else may arrive
  expect(answered.length).toBe(50);
  expect(new Set(answered).size).toBe(50);
  expect(await g.stop('SIGTERM')).toBe(0);
});

/** Deliveries of a subscription by state, read from the database. */
async function outbox(sql: import('postgres').Sql, webhookId: number) {
  const [row] = await sql`
    select count(*)::int as total, count(*) filter (where claimed_by is not null)::int as claimed,
           count(*) filter (where status = 'succeeded')::int as succeeded
    from webhook_deliveries where webhook_id = ${webhookId}`;
  return row as unknown as { total: number; claimed: number; succeeded: number };
}

/** A database, a receiver that hangs until told otherwise, and the gateway environment for an outage test. */
async function outageSetup() {
  const db = await createTestDatabase();
  cleanup.push(() => db.drop());
  const port = await freePort();
  const receiver = webhookReceiver(port, cleanup, 'hang');
  const env = {
    DATABASE_URL: db.url,
    ADMIN_API_SECRET: 's',
    DATA_DIR: '/tmp',
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    WEBHOOK_RETRY_SCHEDULE: '0,1,1,1,1',
    // A long delivery timeout: before claims knew their owner, a killed gateway's claims waited two minutes.
    WEBHOOK_TIMEOUT_MS: '60000',
  };
  return { db, port, receiver, env };
}

test('a SIGKILLed gateway holds nothing back: 50 events in flight at the kill all arrive within 10 s of the receiver coming back, each once', async () => {
  const { db, port, receiver, env } = await outageSetup();
  let g = await startGatewayProcess(env, cleanup);
  const user = (await api(g, 'POST', '/admin/users', undefined, { email: 'kill@example.com' })).body;
  const id = (await api(g, 'POST', '/api/instances', user.apiKey, { provider: 'sandbox', phone: '4915100000931' })).body.id;
  const hook = await api(g, 'POST', `/api/instances/${id}/webhooks`, user.apiKey, { url: `http://127.0.0.1:${port}/hook`, events: ['message.received'] });
  expect(hook.status).toBe(201);
  receiver.secrets.set('default', hook.body.secret);
  expect((await api(g, 'POST', `/api/instances/${id}/sandbox/scan`, user.apiKey)).status).toBe(200);
  for (let n = 0; n < 50; n++) {
    const r = await api(g, 'POST', `/api/instances/${id}/sandbox/inbound`, user.apiKey, { from: '4477000000', text: `event ${n}` });
    expect(r.status).toBe(200);
  }
  const { sql } = db.database;
  await until('50 deliveries, some in flight', async () => {
    const o = await outbox(sql, hook.body.id);
    return o.total === 50 && o.claimed > 0 && receiver.hung > 0;
  });

  await g.stop('SIGKILL');
  receiver.mode = 'up';
  const back = Date.now();
  g = await startGatewayProcess(env, cleanup);
  await until('all 50 answered', () => new Set(receiver.answered).size === 50, 10_000);
  expect(Date.now() - back).toBeLessThan(10_000);
  expect(receiver.forged).toBe(0);
  // Nothing was answered before the kill, so nothing may be answered twice.
  expect(receiver.answered).toHaveLength(50);
  await until('the outbox agrees', async () => (await outbox(sql, hook.body.id)).succeeded === 50);
  expect(await g.stop('SIGTERM')).toBe(0);
}, 120_000);

test('two gateways on one database: one SIGKILLed while it holds claims, the other delivers them within 10 s', async () => {
  const { db, port, receiver, env } = await outageSetup();
  const { sql } = db.database;
  const a = await startGatewayProcess(env, cleanup);
  const user = (await api(a, 'POST', '/admin/users', undefined, { email: 'replicas@example.com' })).body;
  // An instance with no worker (desired stopped): the events below are what this test is about, not a worker.
  const [{ id }] = (await sql`
    insert into instances (user_id, node_id, phone_number, provider, desired_state, status)
    select ${user.id}, id, '4915100000932', 'sandbox', 'stopped', 'stopped' from nodes where name = 'local' returning id`) as unknown as [{ id: number }];
  const hook = await api(a, 'POST', `/api/instances/${id}/webhooks`, user.apiKey, { url: `http://127.0.0.1:${port}/hook`, events: ['message.received'] });
  expect(hook.status).toBe(201);
  receiver.secrets.set('default', hook.body.secret);
  await sql`
    insert into events (instance_id, type, data)
    select ${id}, 'message.received', jsonb_build_object('id', 'in-' || n, 'from', '4477000000', 'chat', '4477000000', 'type', 'text', 'text', 'n ' || n, 'timestamp', now())
    from generate_series(1, 30) n`;
  await until('gateway a holds every claim', async () => (await outbox(sql, hook.body.id)).claimed === 30);

  const b = await startGatewayProcess(env, cleanup);
  await a.stop('SIGKILL');
  receiver.mode = 'up';
  const killed = Date.now();
  await until('b delivered all 30', () => new Set(receiver.answered).size === 30, 10_000);
  expect(Date.now() - killed).toBeLessThan(10_000);
  expect(receiver.answered).toHaveLength(30);
  expect(receiver.forged).toBe(0);
  await until('the outbox agrees', async () => (await outbox(sql, hook.body.id)).succeeded === 30);
  const [{ owners }] = (await sql`select array_agg(distinct claimed_by) filter (where claimed_by is not null) as owners from webhook_deliveries`) as unknown as [
    { owners: number[] | null },
  ];
  expect(owners).toBeNull(); // every claim finished and released
  expect(await b.stop('SIGTERM')).toBe(0);
}, 120_000);
