/**
 * The whatsmeow provider through the gateway on the process engine: the Go
 * worker starts, reports why WhatsApp is unreachable (its socket points at
 * a closed loopback port: nothing leaves the machine), refuses what needs a
 * session, and goes away on delete. Without the binary, create says what to
 * install and leaves nothing behind.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { createTestApp, type TestApp } from '../../../tests/support/app';
import { closedLoopbackPort, ensureWhatsmeowBinary } from '../../../tests/conformance/workers';
import { until } from '../../../tests/support/poll';

let t: TestApp;
let key: string;
beforeAll(async () => {
  await ensureWhatsmeowBinary();
  t = await createTestApp({ listen: true, workerEnv: { WHATSMEOW_WS_URL: `ws://127.0.0.1:${await closedLoopbackPort()}/ws/chat` } });
  key = (await t.createUser()).apiKey;
}, 120_000);
afterAll(() => t.close());

test('a whatsmeow instance runs its Go worker and says why it is not connected; session calls are refused; delete removes it', async () => {
  const res = await t.call('POST', '/api/instances', { key, body: { provider: 'whatsmeow', phone: '4915100000777' } });
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ provider: 'whatsmeow', status: 'running', node: 'local' });
  const id = res.body.id;
  const reported = await until('reconnecting with the reason', async () => {
    const r = (await t.call('GET', `/api/instances/${id}`, { key })).body;
    return r.state === 'reconnecting' && r;
  });
  expect(reported.stateReason).toContain('cannot reach WhatsApp');
  const worker = (await t.engine.list()).find((w) => w.instanceId === id);
  expect(worker?.state).toBe('running');

  const qr = await t.call('GET', `/api/instances/${id}/qr`, { key });
  expect(qr.status).toBe(503);
  expect(qr.body.error).toContain('in state reconnecting');
  const sent = await t.call('POST', `/api/instances/${id}/send`, { key, body: { to: '15550100000', text: 'hi' } });
  expect(sent.status).toBe(503);
  expect(sent.body).toEqual({ error: 'Client not connected', code: 'not_connected' });
  const code = await t.call('POST', `/api/instances/${id}/pair-code`, { key, body: {} });
  expect(code.status).toBe(503);
  expect(code.body.code).toBe('not_connected');
  // Sandbox routes are for sandbox instances.
  expect((await t.call('POST', `/api/instances/${id}/sandbox/scan`, { key })).status).toBe(400);

  expect((await t.call('DELETE', `/api/instances/${id}`, { key })).status).toBe(204);
  await until('worker gone', async () => !(await t.engine.list()).some((w) => w.instanceId === id && w.state === 'running'));
}, 60_000);

test('without the Go binary, creating a whatsmeow instance is a 503 naming what to install, and leaves nothing behind', async () => {
  const saved = process.env.WGS_WHATSMEOW_BINARY;
  process.env.WGS_WHATSMEOW_BINARY = '/nonexistent/wgs-whatsmeow';
  try {
    const res = await t.call('POST', '/api/instances', { key, body: { provider: 'whatsmeow', phone: '4915100000778' } });
    expect(res.status).toBe(503);
    expect(res.body.code).toBe('worker_unavailable');
    expect(res.body.error).toContain('install Go >= 1.26');
    const [row] = await t.db.database.sql`select count(*)::int as n from instances where phone_number = '4915100000778'`;
    expect(row!.n).toBe(0);
  } finally {
    if (saved === undefined) delete process.env.WGS_WHATSMEOW_BINARY;
    else process.env.WGS_WHATSMEOW_BINARY = saved;
  }
});
