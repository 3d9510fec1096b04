import { afterAll, beforeAll, expect, test } from 'bun:test';
import { cpus } from 'node:os';
import { createTestApp, type TestApp } from '../../../tests/support/app';
import { dockerAvailable } from '../../../tests/support/docker';
import { checkNodes } from './health';
import { dockerTlsFront, makePki } from '../../../tests/support/tls';
import { sshdAvailable, startSshd } from '../../../tests/support/sshd';

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

test.skipIf(!docker)('a tcp:// node behind TLS: ready with the client certificate, unreachable without; version and workers reported', async () => {
  const pki = makePki();
  const front = await dockerTlsFront(pki);
  try {
    const endpoint = `tcp://127.0.0.1:${front.port}`;
    const withCert = await t.call('POST', '/admin/nodes', {
      body: { name: 'tls-ok', engine: 'docker', endpoint, tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } },
    });
    expect(withCert.status).toBe(200);
    expect(withCert.body.tls).toBe(true);
    expect(JSON.stringify(withCert.body)).not.toContain('PRIVATE KEY');
    const without = await t.call('POST', '/admin/nodes', { body: { name: 'tls-none', engine: 'docker', endpoint } });
    expect(without.status).toBe(200);
    expect(without.body.tls).toBe(false);

    const results = await checkNodes(t.db.database.db, t.runtime.engines);
    expect(results.get('tls-ok')).toMatchObject({ status: 'ready', workers: 0 });
    expect(results.get('tls-ok')!.version).toMatch(/^\d+\.\d+/);
    expect(results.get('tls-none')!.status).toBe('unreachable');
    const view = (await t.call('GET', `/admin/nodes/${withCert.body.id}`)).body;
    expect(view.reported).toMatchObject({ workers: 0, engineVersion: results.get('tls-ok')!.version });

    // The key is stored sealed, not as PEM.
    const [row] = await t.db.database.sql`select tls_key_encrypted from nodes where name = 'tls-ok'`;
    expect(row!.tls_key_encrypted).toStartWith('v1.');
    expect(row!.tls_key_encrypted).not.toContain('PRIVATE KEY');

    // Clearing the certificate makes the node unreachable at the next check.
    expect((await t.call('PUT', `/admin/nodes/${withCert.body.id}`, { body: { tls: null } })).body.tls).toBe(false);
    expect((await checkNodes(t.db.database.db, t.runtime.engines)).get('tls-ok')!.status).toBe('unreachable');
  } finally {
    front.close();
  }
});

test.skipIf(!docker || !sshdAvailable())('an ssh:// node: ready with the key and the pinned host key; a wrong host key or no key is unreachable', async () => {
  const sshd = await startSshd();
  try {
    const endpoint = `ssh://root@127.0.0.1:${sshd.port}`;
    const add = (name: string, ssh?: Record<string, unknown>) => t.call('POST', '/admin/nodes', { body: { name, engine: 'docker', endpoint, ...(ssh && { ssh }) } });
    const ok = await add('ssh-ok', { privateKey: sshd.clientKey, hostKey: sshd.hostKeyFingerprint });
    expect(ok.status).toBe(200);
    expect(ok.body.ssh).toEqual({ hostKey: sshd.hostKeyFingerprint });
    expect(JSON.stringify(ok.body)).not.toContain('PRIVATE KEY');
    await add('ssh-wrong-host', { privateKey: sshd.clientKey, hostKey: `SHA256:${'A'.repeat(43)}` });
    await add('ssh-stranger', { privateKey: sshd.strangerKey, passphrase: 'secret' });
    await add('ssh-nokey');

    const results = await checkNodes(t.db.database.db, t.runtime.engines);
    expect(results.get('ssh-ok')).toMatchObject({ status: 'ready', workers: 0 });
    expect(results.get('ssh-ok')!.version).toMatch(/^\d+\.\d+/);
    for (const name of ['ssh-wrong-host', 'ssh-stranger', 'ssh-nokey']) {
      expect(results.get(name)!.status).toBe('unreachable');
      expect(results.get(name)!.reason).toBeTruthy();
    }
    const [row] = await t.db.database.sql`select ssh_key_encrypted from nodes where name = 'ssh-ok'`;
    expect(row!.ssh_key_encrypted).toStartWith('v1.');
  } finally {
    sshd.close();
  }
}, 30_000);
