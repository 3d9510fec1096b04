/**
 * A campaign across gateway restarts: a real gateway process on a test
 * database, a campaign of 30 messages paced at 100 ms to another sandbox
 * number, the gateway SIGKILLed mid-way and started again, then stopped with
 * SIGTERM and started again: the campaign completes and the recipient
 * received each message exactly once.
 */
import { afterAll, expect, test } from 'bun:test';
import { gatewayApi as api, startGatewayProcess, waitConnected } from '../support/gateway-process';
import { createTestDatabase } from '../support/postgres';
import { until } from '../support/poll';

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
});

test('a campaign survives a SIGKILL and a SIGTERM of the gateway: completed, each message received once', async () => {
  const db = await createTestDatabase();
  cleanup.push(() => db.drop());
  const env = { DATABASE_URL: db.url, ADMIN_API_SECRET: 's', DATA_DIR: '/tmp' };
  const start = () => startGatewayProcess(env, cleanup);
  const sql = db.database.sql;

  let g = await start();
  const user = (await api(g, 'POST', '/admin/users', undefined, { email: 'campaign-restart@example.com' })).body;
  const ids: number[] = [];
  for (const phone of ['4915100000881', '4915100000882']) {
    const created = await api(g, 'POST', '/api/instances', user.apiKey, { provider: 'sandbox', phone });
    expect(created.status).toBe(200);
    ids.push(created.body.id);
    expect((await api(g, 'POST', `/api/instances/${created.body.id}/sandbox/scan`, user.apiKey)).status).toBe(200);
  }
  const [sender, recipient] = ids as [number, number];
  expect((await api(g, 'PATCH', `/api/instances/${sender}`, user.apiKey, { pacing: { minIntervalMs: 100 } })).status).toBe(200);
  const texts = Array.from({ length: 30 }, (_, i) => `restart ${i}`);
  const created = await api(g, 'POST', `/api/instances/${sender}/campaigns`, user.apiKey, { name: 'restart', messages: texts.map((text) => ({ to: '4915100000882', text })) });
  expect(created.status).toBe(202);
  const id = created.body.id as string;
  const progress = async () => (await api(g, 'GET', `/api/campaigns/${id}`, user.apiKey)).body;
  const receivedTexts = async () =>
    (await sql<{ text: string }[]>`select data->>'text' as text from events where instance_id = ${recipient} and type = 'message.received'`).map((r) => r.text);

  // SIGKILL a third of the way in: no shutdown, whatever was in flight is cut.
  await until('ten sent', async () => (await progress())?.counts?.queued <= 20);
  await g.stop('SIGKILL');
  const atKill = await receivedTexts();
  expect(atKill.length).toBeLessThan(30);
  g = await start();
  for (const i of ids) await waitConnected(g, i, user.apiKey);

  // SIGTERM two thirds of the way in, if it is not done by then.
  const mid = await until('twenty sent or done', async () => {
    const p = await progress();
    return p?.counts?.queued <= 10 ? p : undefined;
  });
  if (mid.status === 'running') {
    expect(await g.stop('SIGTERM')).toBe(0);
    g = await start();
    for (const i of ids) await waitConnected(g, i, user.apiKey);
  }

  const done = await until(
    'campaign completed',
    async () => {
      const p = await progress();
      return p?.status === 'completed' ? p : undefined;
    },
    60_000,
  );
  expect(done.counts.queued).toBe(0);
  expect(done.counts.failed).toBe(0);
  expect(done.counts.sent + done.counts.delivered + done.counts.read).toBe(30);
  const got = await until('all thirty received', async () => {
    const r = await receivedTexts();
    return r.length >= 30 ? r : undefined;
  }, 30_000);
  // Exactly once each: nothing lost, nothing sent twice across the restarts.
  expect(got.sort()).toEqual([...texts].sort());
  // Each send command was answered once (done), whatever number of times it was handed out.
  const [c] = await sql`select count(*) filter (where status = 'done')::int as done, count(*)::int as n from commands where instance_id = ${sender} and name = 'send'`;
  expect(c).toEqual({ done: 30, n: 30 });
  expect(await g.stop('SIGTERM')).toBe(0);
}, 180_000);
