import { afterAll, beforeAll, expect, test } from 'bun:test';
import { cpus } from 'node:os';
import { createTestApp, type TestApp } from '../../../tests/support/app';
import { dockerAvailable } from '../../../tests/support/docker';
import { checkNodes } from './health';

const docker = await dockerAvailable();
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

test('the process node is ready with the machine\'s totals; an unreachable docker node says why', async () => {
  const gone = await t.call('POST', '/admin/nodes', { body: { name: 'gone', engine: 'docker', endpoint: 'unix:///nonexistent/docker.sock' } });
  expect(gone.status).toBe(200);
  const results = await checkNodes(t.db.database.db, t.runtime.engines);
  expect(results.get('local')).toMatchObject({ status: 'ready', millicpu: cpus().length * 1000 });
  expect(results.get('gone')!.status).toBe('unreachable');
  const listed = (await t.call('GET', '/admin/nodes')).body;
  const local = listed.find((n: { name: string }) => n.name === 'local');
  expect(local.status).toBe('ready');
  expect(local.reported.cpu).toBe(cpus().length);
  expect(local.lastSeenAt).not.toBeNull();
  const g = listed.find((n: { name: string }) => n.name === 'gone');
  expect(g).toMatchObject({ status: 'unreachable', reported: null, lastSeenAt: null });
  expect(g.statusReason).toBeTruthy();
  // Unreachable nodes take no instances.
  const user = await t.createUser();
  const pinned = await t.call('POST', '/api/instances', { key: user.apiKey, body: { provider: 'sandbox', phone: '4915100000444', node: 'gone' } });
  expect(pinned.status).toBe(503);
  expect(pinned.body.error).toContain('gone: unreachable');
});

test.skipIf(!docker)('a docker node on a live daemon is ready with its totals', async () => {
  const res = await t.call('POST', '/admin/nodes', { body: { name: 'live', engine: 'docker', endpoint: 'unix:///var/run/docker.sock' } });
  expect(res.status).toBe(200);
  const results = await checkNodes(t.db.database.db, t.runtime.engines);
  expect(results.get('live')!.status).toBe('ready');
  expect(results.get('live')!.millicpu).toBeGreaterThanOrEqual(1000);
  expect(results.get('live')!.memoryBytes).toBeGreaterThan(0);
});
