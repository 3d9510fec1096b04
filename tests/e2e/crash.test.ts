/**
 * Crashes as a supervisor sees them: the gateway's whole process group
 * (gateway, workers, embedded Postgres) killed with SIGKILL and started again
 * at once. Real gateway processes, real workers, real Postgres.
 */
import { afterAll, expect, test } from 'bun:test';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { OWNER_LOCK } from '../../gateway/src/claims/owner';
import { startEmbeddedPostgres } from '../../gateway/src/db/embedded';
import { freePort } from '../../gateway/src/lib/net';
import { createLogger } from '../../gateway/src/logging/logger';
import { gatewayApi, startGatewayProcess, waitConnected, waitRestored } from '../support/gateway-process';
import { until } from '../support/poll';

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
});

const api = gatewayApi;

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wgs-e2e-crash-'));
  await chmod(dir, 0o755);
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('the whole process group SIGKILLed and started again at once, 5 times: serves at once, sessions back with no scan', async () => {
  const dir = await dataDir();
  const env = { DATA_DIR: dir, ADMIN_API_SECRET: 's' };
  const start = () => startGatewayProcess(env, cleanup, { ownProcessGroup: true });

  let g = await start();
  const user = (await api(g, 'POST', '/admin/users', undefined, { email: 'crash@example.com' })).body;
  const ids: number[] = [];
  for (const phone of ['4915100000711', '4915100000712', '4915100000713']) {
    const created = await api(g, 'POST', '/api/instances', user.apiKey, { provider: 'sandbox', phone });
    expect(created.status).toBe(200);
    ids.push(created.body.id);
    expect((await api(g, 'POST', `/api/instances/${created.body.id}/sandbox/scan`, user.apiKey)).status).toBe(200);
  }
  for (const id of ids) await waitConnected(g, id, user.apiKey);

  for (let round = 1; round <= 5; round++) {
    await g.killGroup();
    // No pause: a supervisor restarts at once, while the dead Postgres may still be a zombie.
    const t0 = Date.now();
    g = await start();
    const ready = Date.now() - t0;
    for (const id of ids) {
      const back = await waitRestored(g, id, user.apiKey);
      // The sandbox says so only when it resumed the pairing kept in Postgres (a new number shows a QR).
      expect(back.stateReason).toBe('session restored');
    }
    expect((await api(g, 'GET', '/readyz')).status).toBe(200);
    console.log(`group kill ${round}: start → /healthz ${ready} ms, → 3 sessions connected ${Date.now() - t0} ms`);
  }
  const sent = await api(g, 'POST', `/api/instances/${ids[0]}/send`, user.apiKey, { to: '4915199999999', text: 'after five crashes' });
  expect(sent.status).toBe(200);
  expect(await g.stop('SIGTERM')).toBe(0);
}, 240_000);

test('Postgres restarted under a running gateway: sessions come back with no scan; the gateway holds its liveness lock again', async () => {
  const dir = await dataDir();
  const pgDir = await dataDir();
  const port = await freePort();
  const logger = createLogger('silent');
  let pg = await startEmbeddedPostgres({ dataDir: pgDir, port, logger });
  cleanup.push(() => pg.stop());
  const g = await startGatewayProcess({ DATABASE_URL: pg.url, ADMIN_API_SECRET: 's', DATA_DIR: dir }, cleanup);
  const user = (await api(g, 'POST', '/admin/users', undefined, { email: 'pg-restart@example.com' })).body;
  const id = (await api(g, 'POST', '/api/instances', user.apiKey, { provider: 'sandbox', phone: '4915100000721' })).body.id;
  expect((await api(g, 'POST', `/api/instances/${id}/sandbox/scan`, user.apiKey)).status).toBe(200);
  await waitConnected(g, id, user.apiKey);

  await pg.stop();
  pg = await startEmbeddedPostgres({ dataDir: pgDir, port, logger });
  const restarted = Date.now();
  const back = await until(
    'connected again after the Postgres restart',
    async () => {
      const r = await api(g, 'GET', `/api/instances/${id}`, user.apiKey);
      return r.body?.status === 'running' && r.body?.state === 'connected' && r.body?.stateReason === 'session restored' && r.body;
    },
    30_000,
  );
  expect(back.stateReason).toBe('session restored');
  console.log(`Postgres restart → connected again in ${Date.now() - restarted} ms`);
  expect((await api(g, 'POST', `/api/instances/${id}/send`, user.apiKey, { to: '4915199999999', text: 'after the restart' })).status).toBe(200);
  // The gateway took its liveness lock again on a new connection, so its claims are its own again.
  const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
  try {
    await until('the liveness lock held again', async () => {
      const [{ n }] = (await sql`select count(*)::int as n from pg_locks where locktype = 'advisory' and classid = ${OWNER_LOCK}::oid and granted`) as unknown as [{ n: number }];
      return n === 1;
    });
  } finally {
    await sql.end();
  }
  expect((await api(g, 'GET', '/readyz')).status).toBe(200);
  expect(await g.stop('SIGTERM')).toBe(0);
}, 120_000);
