/**
 * Instances across gateway restarts, as a user runs them: real gateway
 * processes, real worker processes, real Postgres.
 */
import { afterAll, expect, test } from 'bun:test';
import { gatewayApi, startGatewayProcess, waitRestored, workerPids as findWorkerPids } from '../support/gateway-process';
import { createTestDatabase } from '../support/postgres';
import { until } from '../support/poll';

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
});

/** Pids of live TypeScript worker processes for an instance. */
const workerPids = (instanceId: number) => findWorkerPids(instanceId, 'workers/src/main.ts');

const api = gatewayApi;

test('workers stop with the gateway and come back with it; a killed gateway leaves no duplicate', async () => {
  const db = await createTestDatabase();
  cleanup.push(() => db.drop());
  const env = { DATABASE_URL: db.url, ADMIN_API_SECRET: 's', DATA_DIR: '/tmp' };
  const start = () => startGatewayProcess(env, cleanup);

  let g = await start();
  const user = (await api(g, 'POST', '/admin/users', undefined, { email: 'restart@example.com' })).body;
  const created = await api(g, 'POST', '/api/instances', user.apiKey, { provider: 'sandbox', phone: '4915100000777' });
  expect(created.status).toBe(200);
  const id = created.body.id;
  const [first] = await until('one worker', async () => ((await workerPids(id)).length === 1 ? workerPids(id) : null));
  expect(g.output()).toContain('"instanceId":' + id);

  // SIGTERM: the gateway stops its workers before it exits.
  expect(await g.stop('SIGTERM')).toBe(0);
  expect(await workerPids(id)).toEqual([]);

  // Started again: the instance that should run runs.
  g = await start();
  const back = await until('instance running again', async () => {
    const r = await api(g, 'GET', `/api/instances/${id}`, user.apiKey);
    return r.body?.status === 'running' && r.body;
  });
  expect(back.statusReason).toBe('worker connected');
  const [second] = await workerPids(id);
  expect(second).not.toBe(first);

  // SIGKILL: the worker notices its parent is gone and stops; the next gateway starts one worker.
  await g.stop('SIGKILL');
  await until('the orphaned worker gone', async () => (await workerPids(id)).length === 0, 10_000);
  g = await start();
  await until('a single worker again', async () => {
    const pids = await workerPids(id);
    return pids.length === 1 && !pids.includes(second!);
  });
  const status = await until('running after SIGKILL', async () => (await api(g, 'GET', `/api/instances/${id}`, user.apiKey)).body?.status === 'running');
  expect(status).toBe(true);
  expect(await g.stop('SIGTERM')).toBe(0);
});

test('a paired instance survives a gateway SIGKILL: connected again with no scan', async () => {
  const db = await createTestDatabase();
  cleanup.push(() => db.drop());
  const env = { DATABASE_URL: db.url, ADMIN_API_SECRET: 's', DATA_DIR: '/tmp' };
  let g = await startGatewayProcess(env, cleanup);
  const user = (await api(g, 'POST', '/admin/users', undefined, { email: 'survivor@example.com' })).body;
  const id = (await api(g, 'POST', '/api/instances', user.apiKey, { provider: 'sandbox', phone: '4915100000888' })).body.id;
  expect((await api(g, 'POST', `/api/instances/${id}/sandbox/scan`, user.apiKey)).status).toBe(200);

  await g.stop('SIGKILL');
  const t0 = Date.now();
  g = await startGatewayProcess(env, cleanup);
  const back = await waitRestored(g, id, user.apiKey);
  expect(back.stateReason).toBe('session restored');
  expect(Date.now() - t0).toBeLessThan(30_000);
  expect((await api(g, 'POST', `/api/instances/${id}/send`, user.apiKey, { to: '4915199999999', text: 'still here' })).status).toBe(200);
  expect(await workerPids(id)).toHaveLength(1);
  expect(await g.stop('SIGTERM')).toBe(0);
});
