/**
 * The gateway as a new user runs it: a real process, real Postgres (embedded or
 * external), real HTTP on loopback.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAlive, processState } from '../../gateway/src/lib/process';
import { exitCode, spawnGateway, type GatewayProcess } from '../support/gateway-process';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
});

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wgs-e2e-'));
  await chmod(dir, 0o755);
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function track(g: GatewayProcess): GatewayProcess {
  cleanup.push(() => g.stop('SIGKILL'));
  return g;
}

async function api(g: GatewayProcess, method: string, path: string, opts: { admin?: string; key?: string; body?: unknown } = {}) {
  const headers: Record<string, string> = {};
  if (opts.admin) headers['x-admin-api-secret'] = opts.admin;
  if (opts.key) headers.authorization = `Bearer ${opts.key}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${g.url}${path}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

function postmasterPid(dir: string): Promise<number | null> {
  return readFile(join(dir, 'postgres', 'postmaster.pid'), 'utf8').then(
    (s) => Number(s.split('\n')[0]),
    () => null,
  );
}


describe('embedded Postgres (no DATABASE_URL)', () => {
  test('first start prints the admin secret; data survives SIGTERM and SIGKILL restarts', async () => {
    const dir = await dataDir();

    // First start: secret generated, printed once, kept in DATA_DIR.
    const first = track(await spawnGateway({ DATA_DIR: dir }));
    await first.ready();
    const secret = (await readFile(join(dir, 'admin-api-secret'), 'utf8')).trim();
    expect(first.output()).toContain(secret);
    expect((await api(first, 'GET', '/readyz')).status).toBe(200);

    const user = await api(first, 'POST', '/admin/users', { admin: secret, body: { email: 'owner@example.com' } });
    expect(user.status).toBe(201);
    const node = await api(first, 'POST', '/admin/nodes', {
      admin: secret,
      body: { name: 'vps-1', engine: 'docker', endpoint: 'ssh://root@vps-1.example.com', capacity: { cpu: 2, memory: '4g' } },
    });
    expect(node.status).toBe(200);

    // SIGTERM: clean exit, and Postgres is stopped with it.
    const pgPid = await postmasterPid(dir);
    expect(pgPid).toBeGreaterThan(0);
    expect(await first.stop('SIGTERM')).toBe(0);
    expect(isAlive(pgPid!)).toBe(false);

    // Second start: same secret, not printed again; users, keys and nodes are there.
    const second = track(await spawnGateway({ DATA_DIR: dir }));
    await second.ready();
    expect(second.output()).not.toContain(secret);
    expect((await api(second, 'GET', '/api/me', { key: user.body.apiKey })).body).toMatchObject({ id: user.body.id, email: 'owner@example.com', plan: { name: 'default' } });
    const nodes = await api(second, 'GET', '/admin/nodes', { admin: secret });
    expect(nodes.body.map((n: { name: string }) => n.name)).toEqual(['local', 'vps-1']);
    expect(nodes.body[1].capacity).toEqual({ cpu: 2, memory: '4g' });

    // SIGKILL leaves the embedded Postgres running; the next start takes over its data.
    const orphan = await postmasterPid(dir);
    await second.stop('SIGKILL');
    expect(isAlive(orphan!)).toBe(true);
    const third = track(await spawnGateway({ DATA_DIR: dir }));
    await third.ready();
    // Stopped: gone, or a zombie until its new parent (init) reaps it.
    expect(processState(orphan!)).not.toBe('alive');
    expect((await api(third, 'GET', '/api/me', { key: user.body.apiKey })).status).toBe(200);
    expect(await third.stop('SIGINT')).toBe(0);
  });

  test('PORT, DATA_DIR and ADMIN_API_SECRET are honoured', async () => {
    const dir = await dataDir();
    const g = track(await spawnGateway({ DATA_DIR: dir, ADMIN_API_SECRET: 's' }));
    await g.ready();
    expect(g.url).not.toEndWith(':3000');
    expect((await api(g, 'GET', '/admin/users', { admin: 's' })).status).toBe(200);
    expect((await api(g, 'GET', '/admin/users', { admin: 'not-s' })).status).toBe(401);
    expect(await Bun.file(join(dir, 'admin-api-secret')).exists()).toBe(false);
    expect(await Bun.file(join(dir, 'postgres', 'PG_VERSION')).exists()).toBe(true);
    expect(await g.stop()).toBe(0);
  });

  test('a DATA_DIR below a private directory works; as root only the search bit is added', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'wgs-e2e-private-')); // mode 0700
    cleanup.push(() => rm(parent, { recursive: true, force: true }));
    const g = track(await spawnGateway({ DATA_DIR: join(parent, 'data'), ADMIN_API_SECRET: 's' }));
    await g.ready();
    expect((await api(g, 'GET', '/readyz')).status).toBe(200);
    const mode = (await stat(parent)).mode & 0o777;
    expect(mode).toBe(process.getuid?.() === 0 ? 0o701 : 0o700);
    expect(await g.stop()).toBe(0);
  });
});

describe('configuration errors', () => {
  test('a bad variable stops start-up with a message naming it', async () => {
    for (const [env, variable] of [
      [{ PORT: 'abc' }, 'PORT'],
      [{ LOG_LEVEL: 'chatty' }, 'LOG_LEVEL'],
      [{ DATABASE_URL: 'http://db' }, 'DATABASE_URL'],
    ] as const) {
      const g = await spawnGateway({ DATA_DIR: '/nonexistent-never-created', ...env });
      expect(await exitCode(g)).toBe(1);
      await g.stop();
      expect(g.output()).toContain(`invalid configuration: ${variable}`);
    }
  });

  test('an occupied port is a clear error', async () => {
    const dir = await dataDir();
    const db = await createTestDatabase();
    cleanup.push(() => db.drop());
    const a = track(await spawnGateway({ DATA_DIR: dir, DATABASE_URL: db.url, ADMIN_API_SECRET: 's' }));
    await a.ready();
    const port = new URL(a.url).port;
    const b = await spawnGateway({ DATA_DIR: dir, DATABASE_URL: db.url, ADMIN_API_SECRET: 's', PORT: port });
    expect(await exitCode(b)).toBe(1);
    await b.stop();
    expect(b.output()).toContain(`cannot listen on 127.0.0.1:${port}`);
    await a.stop();
  });
});

describe('external Postgres (DATABASE_URL)', () => {
  let db: TestDatabase;

  test('two gateways starting at once on an empty database both come up', async () => {
    db = await createTestDatabase({ empty: true });
    cleanup.push(() => db.drop());
    const dir = await dataDir();
    const [a, b] = await Promise.all([
      spawnGateway({ DATA_DIR: dir, DATABASE_URL: db.url, ADMIN_API_SECRET: 's' }),
      spawnGateway({ DATA_DIR: dir, DATABASE_URL: db.url, ADMIN_API_SECRET: 's' }),
    ]);
    track(a);
    track(b);
    await Promise.all([a.ready(), b.ready()]);
    const created = await api(a, 'POST', '/admin/users', { admin: 's', body: { email: 'shared@example.com' } });
    expect((await api(b, 'GET', '/api/me', { key: created.body.apiKey })).body.email).toBe('shared@example.com');
    expect((await api(b, 'GET', '/admin/nodes', { admin: 's' })).body).toHaveLength(1);
    expect(await Bun.file(join(dir, 'postgres')).exists()).toBe(false);
    expect(await a.stop()).toBe(0);
    expect(await b.stop()).toBe(0);
  });

  test('logs are JSON with request ids and never carry a secret', async () => {
    const logDb = await createTestDatabase();
    cleanup.push(() => logDb.drop());
    const adminSecret = `adm-${crypto.randomUUID()}`;
    const g = track(await spawnGateway({ DATA_DIR: await dataDir(), DATABASE_URL: logDb.url, ADMIN_API_SECRET: adminSecret, LOG_LEVEL: 'trace' }));
    await g.ready();
    const user = await api(g, 'POST', '/admin/users', { admin: adminSecret, body: { email: 'logs@example.com' } });
    const rotated = await api(g, 'POST', `/admin/users/${user.body.id}/keys`, { admin: adminSecret });
    await api(g, 'GET', '/api/me', { key: user.body.apiKey });
    await api(g, 'GET', '/api/me', { key: `${user.body.apiKey}x` });
    await api(g, 'GET', '/admin/users', { admin: `${adminSecret}-wrong` });
    await api(g, 'POST', '/admin/users', { admin: adminSecret, body: { email: user.body.apiKey } });
    expect(await g.stop()).toBe(0);

    const out = g.output();
    const password = decodeURIComponent(new URL(logDb.url).password);
    expect(password.length).toBeGreaterThan(8);
    for (const secret of [adminSecret, user.body.apiKey, rotated.body.apiKey, password]) {
      expect(out).not.toContain(secret);
    }
    const requests = out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l))
      .filter((r) => r.msg === 'request');
    expect(requests.length).toBeGreaterThanOrEqual(6);
    for (const r of requests) expect(r.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(requests.map((r) => r.status)).toEqual(expect.arrayContaining([201, 200, 401, 400]));
  });
});
