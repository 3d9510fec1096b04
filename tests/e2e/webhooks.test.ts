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
