/**
 * Migrate and drain with real worker processes on two process nodes of one
 * machine: sends keep working during a move, the session comes back without
 * a scan, failed moves roll back, drains empty a node.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createTestApp, type TestApp } from '../../../tests/support/app';
import { until } from '../../../tests/support/poll';
import { checkNodes } from '../nodes/health';
import { acquireOwner } from '../claims/owner';
import { createLogger } from '../logging/logger';

let t: TestApp;
let alice: { id: number; apiKey: string };
let bob: { id: number; apiKey: string };
let localId: number;
let p2Id: number;

beforeAll(async () => {
  t = await createTestApp({ listen: true, moveTimeoutMs: 8_000 });
  alice = await t.createUser();
  bob = await t.createUser();
  localId = (await t.call('GET', '/admin/nodes')).body.find((n: { name: string }) => n.name === 'local').id;
  const p2 = await t.call('POST', '/admin/nodes', { body: { name: 'p2', engine: 'process' } });
  expect(p2.status).toBe(200);
  p2Id = p2.body.id;
});
afterAll(() => t.close());

let seq = 0;
const phone = () => `4917${String(Date.now() % 1e6).padStart(6, '0')}${String(seq++ % 100).padStart(2, '0')}`;

async function paired(key: string, node = 'local') {
  const res = await t.call('POST', '/api/instances', { key, body: { provider: 'sandbox', phone: phone(), node } });
  if (res.status !== 200) throw new Error(`create failed: ${res.status} ${JSON.stringify(res.body)}`);
  const scan = await t.call('POST', `/api/instances/${res.body.id}/sandbox/scan`, { key });
  expect(scan.status).toBe(200);
  return res.body as { id: number; phone: string };
}

const get = async (key: string, id: number) => (await t.call('GET', `/api/instances/${id}`, { key })).body;
const migrate = (key: string, id: number, body?: unknown) => t.call('POST', `/api/instances/${id}/migrate`, { key, ...(body !== undefined && { body }) });
const workersOf = async (id: number) => (await t.engine.list()).filter((w) => w.instanceId === id && w.state === 'running');

describe('POST /api/instances/:id/migrate', () => {
  test('sends every 100 ms keep working across a move; every message is sent once; no new scan; the old worker is gone', async () => {
    const a = await paired(alice.apiKey);
    const b = await paired(alice.apiKey);
    const pidBefore = (await workersOf(a.id))[0]!.pid;
    const hook = await t.call('POST', `/api/instances/${a.id}/webhooks`, { key: alice.apiKey, body: { url: 'http://127.0.0.1:9/hook', events: ['instance.migrated'] } });
    expect(hook.status).toBe(201);

    const statuses: number[] = [];
    const ids: string[] = [];
    let moving = true;
    const loop = (async () => {
      // Bounded: at most 200 sends, and it stops 1 s after the move ends.
      let stopAt = Infinity;
      for (let i = 0; i < 200 && Date.now() < stopAt; i++) {
        if (!moving && stopAt === Infinity) stopAt = Date.now() + 1000;
        const res = await t.call('POST', `/api/instances/${a.id}/send`, { key: alice.apiKey, body: { to: b.phone, text: `m${i}` } });
        statuses.push(res.status);
        if (res.body?.id) ids.push(res.body.id);
        await Bun.sleep(100);
      }
    })();
    await Bun.sleep(500);
    const during = until('migrating visible', async () => (await get(alice.apiKey, a.id)).status === 'migrating', 5_000, 5);
    const res = await migrate(alice.apiKey, a.id, { target_node: 'p2' });
    moving = false;
    await during;
    await loop;

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'ok', from: 'local', to: 'p2', instance: { id: a.id, node: 'p2', nodeId: p2Id, state: 'connected', status: 'running' } });
    expect(res.body.durationMs).toBeGreaterThan(0);
    expect(res.body.instance.statusReason).toContain('migrated from local to p2');
    // Restored from Postgres, not paired again.
    expect(res.body.instance.stateReason).toBe('session restored');

    expect(statuses.length).toBeGreaterThan(10);
    expect(statuses.filter((s) => s !== 200 && s !== 202)).toEqual([]);
    expect(new Set(ids).size).toBe(statuses.length);
    await until('every message sent', async () => {
      const rows = await t.db.database.sql`select status from messages where instance_id = ${a.id}`;
      return rows.length === ids.length && rows.every((r) => r.status !== 'queued' && r.status !== 'failed');
    });
    // Each text reached the other instance exactly once.
    await until('every text received once', async () => {
      const rows = await t.db.database.sql`select data->>'text' as text from events where instance_id = ${b.id} and type = 'message.received'`;
      return rows.length === ids.length && new Set(rows.map((r) => r.text)).size === ids.length;
    });

    const workers = await workersOf(a.id);
    expect(workers).toHaveLength(1);
    expect(workers[0]!.pid).not.toBe(pidBefore);
    const [event] = await t.db.database.sql`select data from events where instance_id = ${a.id} and type = 'instance.migrated'`;
    expect(event!.data).toMatchObject({ from: 'local', to: 'p2' });
    // ...queued for the subscription that asked for it (the outbox; this test app runs no dispatcher).
    const queued = await t.db.database.sql`
      select e.type from webhook_deliveries d join events e on e.id = d.event_id where d.webhook_id = ${hook.body.id}`;
    expect(queued.map((r) => r.type)).toEqual(['instance.migrated']);
    const [row] = await t.db.database.sql`select node_id, target_node_id from instances where id = ${a.id}`;
    expect(row).toEqual({ node_id: p2Id, target_node_id: null });

    // And back, with the scheduler choosing (local is the only other node).
    const back = await migrate(alice.apiKey, a.id);
    expect(back.status).toBe(200);
    expect(back.body.instance).toMatchObject({ node: 'local', state: 'connected' });
  }, 60_000);

  test('bad requests: unknown target 422, same node 409, unreachable or draining target 409, no other node 503, other tenant 404, bad body 400', async () => {
    const a = await paired(alice.apiKey);
    const unknown = await migrate(alice.apiKey, a.id, { target_node: 'nope' });
    expect(unknown.status).toBe(422);
    expect(unknown.body.error).toContain("'target_node': no node named nope");
    const same = await migrate(alice.apiKey, a.id, { target_node: 'local' });
    expect(same.status).toBe(409);
    expect(same.body.error).toContain('already on node local');

    const gone = await t.call('POST', '/admin/nodes', { body: { name: 'gone', engine: 'docker', endpoint: 'unix:///nonexistent/docker.sock' } });
    await checkNodes(t.db.database.db, t.runtime.engines);
    const unreachable = await migrate(alice.apiKey, a.id, { target_node: 'gone' });
    expect(unreachable.status).toBe(409);
    expect(unreachable.body.error).toContain('node gone is unreachable');
    await t.call('DELETE', `/admin/nodes/${gone.body.id}`);

    expect((await t.call('POST', `/admin/nodes/${p2Id}/drain`)).status).toBe(200);
    const draining = await migrate(alice.apiKey, a.id, { target_node: 'p2' });
    expect(draining.status).toBe(409);
    expect(draining.body.error).toContain('node p2 is draining');
    // With p2 drained there is no other node to go to.
    const nowhere = await migrate(alice.apiKey, a.id);
    expect(nowhere.status).toBe(503);
    expect(nowhere.body).toMatchObject({ code: 'no_capacity' });
    expect(nowhere.body.error).toContain('p2: draining');
    expect((await t.call('POST', `/admin/nodes/${p2Id}/undrain`)).body.draining).toBe(false);

    expect((await migrate(bob.apiKey, a.id, { target_node: 'p2' })).status).toBe(404);
    expect((await migrate(alice.apiKey, a.id, { target_node: 5 })).status).toBe(400);
    // Nothing moved: still connected on local.
    expect(await get(alice.apiKey, a.id)).toMatchObject({ node: 'local', state: 'connected', status: 'running' });
  }, 30_000);

  test('a second migrate while one runs is 409; restart and logout wait for the move (409)', async () => {
    const a = await paired(alice.apiKey);
    const first = migrate(alice.apiKey, a.id, { target_node: 'p2' });
    await until('migrating', async () => t.runtime.isMoving(a.id), 5_000, 2);
    const second = await migrate(alice.apiKey, a.id, { target_node: 'p2' });
    expect(second.status).toBe(409);
    expect(second.body.code).toBe('migration_in_progress');
    expect((await t.call('POST', `/api/instances/${a.id}/restart`, { key: alice.apiKey })).status).toBe(409);
    expect((await t.call('POST', `/api/instances/${a.id}/logout`, { key: alice.apiKey })).status).toBe(409);
    expect((await first).status).toBe(200);
  }, 30_000);

  test('a move that fails rolls back: 503 with the reason, the instance connected on its old node', async () => {
    const a = await paired(alice.apiKey);
    // Never health-checked (status unknown), so it is a candidate; starting a worker there fails.
    const broken = await t.call('POST', '/admin/nodes', { body: { name: 'broken', engine: 'docker', endpoint: 'unix:///nonexistent/docker.sock' } });
    const res = await migrate(alice.apiKey, a.id, { target_node: 'broken' });
    await t.call('DELETE', `/admin/nodes/${broken.body.id}`);
    expect(res.status).toBe(503);
    expect(res.body.code).toBe('migration_failed');
    expect(res.body.error).toContain('it is back on local');
    const back = await until('connected again on local', async () => {
      const r = await get(alice.apiKey, a.id);
      return r.state === 'connected' && r.status === 'running' && r;
    });
    expect(back.node).toBe('local');
    expect(back.statusReason).toContain('migration to broken failed');
    const [row] = await t.db.database.sql`select node_id, target_node_id from instances where id = ${a.id}`;
    expect(row).toEqual({ node_id: localId, target_node_id: null });
    expect(await workersOf(a.id)).toHaveLength(1);
  }, 30_000);

  test('a delete racing a migrate resolves cleanly: the instance and every worker are gone', async () => {
    const a = await paired(alice.apiKey);
    const moving = migrate(alice.apiKey, a.id, { target_node: 'p2' });
    await until('migrating', async () => t.runtime.isMoving(a.id), 5_000, 2);
    const del = await t.call('DELETE', `/api/instances/${a.id}`, { key: alice.apiKey });
    expect(del.status).toBe(204);
    expect([200, 404]).toContain((await moving).status);
    expect((await t.call('GET', `/api/instances/${a.id}`, { key: alice.apiKey })).status).toBe(404);
    expect(await workersOf(a.id)).toHaveLength(0);
  }, 30_000);
});

describe('POST /admin/nodes/:id/drain', () => {
  test('moves ten paired instances off a node; nothing new lands there; undrain; then the empty node can be deleted', async () => {
    const p3 = await t.call('POST', '/admin/nodes', { body: { name: 'p3', engine: 'process' } });
    const user = await t.createUser();
    const made = [];
    for (let i = 0; i < 10; i++) made.push(await paired(user.apiKey, 'p3'));

    const drained = await t.call('POST', `/admin/nodes/${p3.body.id}/drain`);
    expect(drained.status).toBe(200);
    expect(drained.body.draining).toBe(true);
    // Nothing new is placed on a draining node.
    const pinned = await t.call('POST', '/api/instances', { key: user.apiKey, body: { provider: 'sandbox', phone: phone(), node: 'p3' } });
    expect(pinned.status).toBe(503);
    expect(pinned.body.error).toContain('p3: draining');

    const done = await until(
      'drain finished',
      async () => {
        const n = (await t.call('GET', `/admin/nodes/${p3.body.id}`)).body;
        return n.drain?.finishedAt && n;
      },
      60_000,
      100,
    );
    expect(done.drain).toMatchObject({ total: 10, moved: 10, remaining: 0, failed: [] });
    for (const inst of made) {
      const r = await get(user.apiKey, inst.id);
      expect(r.node).not.toBe('p3');
      expect(r).toMatchObject({ state: 'connected', status: 'running', stateReason: 'session restored' });
    }
    expect((await t.call('POST', `/admin/nodes/${p3.body.id}/undrain`)).body).toMatchObject({ draining: false });
    expect((await t.call('POST', '/admin/nodes/999999/drain')).status).toBe(404);
    expect((await t.call('DELETE', `/admin/nodes/${p3.body.id}`)).status).toBe(204);
    for (const inst of made) expect((await t.call('DELETE', `/api/instances/${inst.id}`, { key: user.apiKey })).status).toBe(204);
  }, 90_000);

  test('one live gateway drives a drain; when it dies another takes the drain over at its next sweep', async () => {
    const p4 = (await t.call('POST', '/admin/nodes', { body: { name: 'p4', engine: 'process' } })).body;
    const user = await t.createUser();
    const inst = await paired(user.apiKey, 'p4');
    await until('connected on p4', async () => (await get(user.apiKey, inst.id)).state === 'connected');
    // Another gateway process (alive: it holds its liveness lock) started the drain and drives it.
    const other = await acquireOwner(t.db.url, createLogger('silent'));
    try {
      await t.db.database.sql`update nodes set draining_since = now(), drain_owner = ${other.id} where id = ${p4.id}`;
      await t.migrator.sweep();
      expect((await get(user.apiKey, inst.id)).node).toBe('p4'); // not this gateway's to drive
      // That gateway dies: its liveness lock is free, and the next sweep here takes the drain over.
      await other.release();
      await t.migrator.sweep();
      const moved = await get(user.apiKey, inst.id);
      expect(moved.node).not.toBe('p4');
      expect(moved).toMatchObject({ state: 'connected', stateReason: 'session restored' });
      const [{ owner }] = (await t.db.database.sql`select drain_owner as owner from nodes where id = ${p4.id}`) as unknown as [{ owner: number | null }];
      expect(owner).not.toBe(other.id);
      expect(owner).not.toBeNull();
    } finally {
      await other.release();
    }
    expect((await t.call('DELETE', `/api/instances/${inst.id}`, { key: user.apiKey })).status).toBe(204);
  }, 60_000);
});
