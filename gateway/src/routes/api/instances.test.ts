import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createTestApp, type TestApp } from '../../../../tests/support/app';
import { until } from '../../../../tests/support/poll';
import { stateRoleName } from '../../instances/state-store';

let t: TestApp;
let alice: { id: number; apiKey: string };
let bob: { id: number; apiKey: string };

beforeAll(async () => {
  t = await createTestApp({ listen: true });
  alice = await t.createUser();
  bob = await t.createUser();
});
afterAll(() => t.close());

let phoneSeq = 0;
const phone = () => `49151${String(Date.now() % 1e6).padStart(6, '0')}${phoneSeq++ % 10}`;

async function createSandbox(key: string, extra: Record<string, unknown> = {}) {
  const res = await t.call('POST', '/api/instances', { key, body: { provider: 'sandbox', phone: phone(), ...extra } });
  if (res.status !== 200) throw new Error(`create failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { id: number; phone: string; status: string; state: string };
}

async function paired(key: string) {
  const inst = await createSandbox(key);
  await until('a QR', async () => (await t.call('GET', `/api/instances/${inst.id}/qr?format=json`, { key })).status === 200);
  const scan = await t.call('POST', `/api/instances/${inst.id}/sandbox/scan`, { key });
  expect(scan.status).toBe(200);
  return inst;
}

async function messageStatus(key: string, instanceId: number, messageId: string) {
  return (await t.call('GET', `/api/instances/${instanceId}/messages/${messageId}`, { key })).body;
}

describe('POST /api/instances', () => {
  test('creates a sandbox instance on the local node; answers once the worker runs', async () => {
    const res = await t.call('POST', '/api/instances', {
      key: alice.apiKey,
      body: { name: 'support', phone: '+49 151 2345-6789', provider: 'sandbox', webhook: 'https://hooks.example.com/wa', resources: { cpu: '0.5', memory: '512m' } },
    });
    expect(res.status).toBe(200);
    const { state, ...rest } = res.body;
    expect(rest).toMatchObject({
      name: 'support',
      phone: '4915123456789',
      provider: 'sandbox',
      status: 'running',
      node: 'local',
      webhook: 'https://hooks.example.com/wa',
      resources: { cpu: '0.5', memory: '512m' },
    });
    const worker = await t.engine.inspect(res.body.id);
    expect(worker?.state).toBe('running');
    // Create waits at most 2 s for the worker's first report: on a loaded machine it may answer 'starting', then the QR follows.
    expect(['qr', 'starting']).toContain(state);
    if (state !== 'qr') {
      await until('state qr', async () => (await t.call('GET', `/api/instances/${res.body.id}`, { key: alice.apiKey })).body.state === 'qr');
    }
    // The QR is ready to serve as soon as the state is 'qr'.
    const qr = await t.call('GET', `/api/instances/${res.body.id}/qr`, { key: alice.apiKey });
    expect(qr.status).toBe(200);
    expect(qr.headers.get('content-type')).toBe('image/png');
  });

  test('bad input is 400 naming the field', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ provider: 'sandbox' }, "'phone'"],
      [{ provider: 'sandbox', phone: '12' }, "'phone'"],
      [{ provider: 'sandbox', phone: 'call me' }, "'phone'"],
      [{ provider: 'telegram', phone: '4915100000001' }, "'provider'"],
      [{ provider: 'sandbox', phone: '4915100000001', resources: { cpu: 'lots' } }, "'resources.cpu'"],
      [{ provider: 'sandbox', phone: '4915100000001', resources: { cpu: '0' } }, "'resources.cpu'"],
      [{ provider: 'sandbox', phone: '4915100000001', resources: { memory: '1.5g' } }, "'resources.memory'"],
      [{ provider: 'sandbox', phone: '4915100000001', webhook: 'ftp://x' }, "'webhook'"],
    ];
    for (const [body, field] of cases) {
      const res = await t.call('POST', '/api/instances', { key: alice.apiKey, body });
      expect(res.status).toBe(400);
      expect(res.body.error).toContain(field);
    }
  });

  test('a provider without a worker yet is 400 naming it', async () => {
    const res = await t.call('POST', '/api/instances', { key: alice.apiKey, body: { provider: 'wawebjs', phone: '4915100000002' } });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'provider "wawebjs" is not implemented yet; implemented: sandbox, whatsmeow, baileys, waba', code: 'provider_not_implemented' });
  });

  test('the same phone twice for one user is 409; another user may use it', async () => {
    const first = await createSandbox(alice.apiKey);
    const dup = await t.call('POST', '/api/instances', { key: alice.apiKey, body: { provider: 'sandbox', phone: `+${first.phone}` } });
    expect(dup.status).toBe(409);
    expect(dup.body.code).toBe('phone_taken');
    const other = await t.call('POST', '/api/instances', { key: bob.apiKey, body: { provider: 'sandbox', phone: first.phone } });
    expect(other.status).toBe(200);
  });

  test('needs an API key', async () => {
    expect((await t.call('POST', '/api/instances', { body: { provider: 'sandbox', phone: phone() } })).status).toBe(401);
    expect((await t.call('GET', '/api/instances')).status).toBe(401);
  });
});

describe('tenancy', () => {
  test("another tenant's instance is a 404 on every route", async () => {
    const inst = await createSandbox(alice.apiKey);
    const routes: [string, string, unknown?][] = [
      ['GET', `/api/instances/${inst.id}`],
      ['GET', `/api/instances/${inst.id}/qr`],
      ['POST', `/api/instances/${inst.id}/send`, { to: '4915199999999', text: 'hi' }],
      ['POST', `/api/instances/${inst.id}/sandbox/scan`],
      ['POST', `/api/instances/${inst.id}/restart`],
      ['POST', `/api/instances/${inst.id}/logout`],
      ['GET', `/api/instances/${inst.id}/messages/msg_x`],
      ['DELETE', `/api/instances/${inst.id}`],
    ];
    for (const [method, path, body] of routes) {
      const res = await t.call(method, path, { key: bob.apiKey, body });
      expect(res.status).toBe(404);
      expect(res.body).toEqual({ error: `instance ${inst.id} not found`, code: 'not_found' });
    }
    const list = await t.call('GET', '/api/instances', { key: bob.apiKey });
    expect(list.body.map((i: { id: number }) => i.id)).not.toContain(inst.id);
    expect((await t.call('GET', `/api/instances/${inst.id}`, { key: alice.apiKey })).status).toBe(200);
  });
});

describe('QR, pairing and sending', () => {
  test('QR as PNG and JSON, unpaired send is 503, scan pairs, QR then 409', async () => {
    const inst = await createSandbox(alice.apiKey);
    const json = await until('a QR', async () => {
      const r = await t.call('GET', `/api/instances/${inst.id}/qr?format=json`, { key: alice.apiKey });
      return r.status === 200 && r.body;
    });
    expect(json.qr).toStartWith(`wgs-sandbox:${inst.id}:`);
    expect(new Date(json.expiresAt).getTime()).toBeGreaterThan(Date.now());
    const png = await t.call('GET', `/api/instances/${inst.id}/qr`, { key: alice.apiKey });
    expect(png.status).toBe(200);
    expect(png.headers.get('content-type')).toBe('image/png');
    expect([...png.bytes.slice(0, 4)]).toEqual([0x89, 0x50, 0x4e, 0x47]);
    expect((await t.call('GET', `/api/instances/${inst.id}`, { key: alice.apiKey })).body.state).toBe('qr');

    const unpaired = await t.call('POST', `/api/instances/${inst.id}/send`, { key: alice.apiKey, body: { to: '4915199999999', text: 'hi' } });
    expect(unpaired.status).toBe(503);
    expect(unpaired.body).toEqual({ error: 'Client not connected', code: 'not_connected' });

    expect((await t.call('POST', `/api/instances/${inst.id}/sandbox/scan`, { key: alice.apiKey })).body).toEqual({ state: 'connected' });
    await until('state connected', async () => (await t.call('GET', `/api/instances/${inst.id}`, { key: alice.apiKey })).body.state === 'connected');
    const qr = await t.call('GET', `/api/instances/${inst.id}/qr`, { key: alice.apiKey });
    expect(qr.status).toBe(409);
    expect(qr.body.code).toBe('already_connected');
    const again = await t.call('POST', `/api/instances/${inst.id}/sandbox/scan`, { key: alice.apiKey });
    expect(again.status).toBe(409);
  });

  test('a sent text moves through sent, delivered and read', async () => {
    const inst = await paired(alice.apiKey);
    const res = await t.call('POST', `/api/instances/${inst.id}/send`, { key: alice.apiKey, body: { to: '+1 555 010 9999', text: 'hello' } });
    expect(res.status).toBe(200);
    expect(res.body.id).toMatch(/^msg_[0-9a-f]{24}$/);
    expect(['sent', 'delivered', 'read']).toContain(res.body.status);
    const read = await until('read receipt', async () => {
      const m = await messageStatus(alice.apiKey, inst.id, res.body.id);
      return m.status === 'read' && m;
    });
    expect(read).toMatchObject({ id: res.body.id, to: '15550109999', type: 'text', status: 'read', providerMessageId: expect.any(String) });
    for (const k of ['createdAt', 'sentAt', 'deliveredAt', 'readAt']) expect(read.timestamps[k]).toBeTruthy();
    expect(read.timestamps.failedAt).toBeNull();
    expect((await t.call('GET', `/api/instances/${inst.id}/messages/msg_nope`, { key: alice.apiKey })).status).toBe(404);
  });

  test('bad sends are 400 naming the field', async () => {
    const inst = await paired(alice.apiKey);
    const cases: [Record<string, unknown>, string][] = [
      [{ to: 'nobody', text: 'x' }, "'to'"],
      [{ to: '4915199999999', text: '   ' }, "'text'"],
      [{ to: '4915199999999' }, "'text'"],
      [{ to: '4915199999999', type: 'gif', text: 'x' }, "'type'"],
      [{ to: '4915199999999', type: 'image', text: 'x' }, "'media'"],
    ];
    for (const [body, field] of cases) {
      const res = await t.call('POST', `/api/instances/${inst.id}/send`, { key: alice.apiKey, body });
      expect(res.status).toBe(400);
      expect(res.body.error).toContain(field);
    }
  });

  test('the same Idempotency-Key sends once', async () => {
    const inst = await paired(alice.apiKey);
    const send = () =>
      t.call('POST', `/api/instances/${inst.id}/send`, { key: alice.apiKey, body: { to: '4915199999998', text: 'once' }, headers: { 'idempotency-key': 'order-42' } });
    const [a, b] = await Promise.all([send(), send()]);
    const c = await send();
    expect(new Set([a.body.id, b.body.id, c.body.id]).size).toBe(1);
    const rows = await t.db.database.sql`select count(*)::int as n from commands where instance_id = ${inst.id} and name = 'send'`;
    expect(rows[0]!.n).toBe(1);
  });

  test('a text to another sandbox number arrives there; inbound makes a message.received event', async () => {
    const a = await paired(alice.apiKey);
    const b = await paired(bob.apiKey);
    const res = await t.call('POST', `/api/instances/${a.id}/send`, { key: alice.apiKey, body: { to: b.phone, text: 'hello bob' } });
    expect(res.status).toBe(200);
    const received = await until('inbound at b', async () => {
      const rows = await t.db.database.sql`select data from events where instance_id = ${b.id} and type = 'message.received'`;
      return rows[0]?.data;
    });
    expect(received).toMatchObject({ from: a.phone, type: 'text', text: 'hello bob' });

    const inbound = await t.call('POST', `/api/instances/${a.id}/sandbox/inbound`, { key: alice.apiKey, body: { from: '+4477001122', text: 'ping' } });
    expect(inbound.status).toBe(200);
    const event = await until('inbound event', async () => {
      const rows = await t.db.database.sql`select data from events where instance_id = ${a.id} and type = 'message.received'`;
      return rows.find((r) => r.data.id === inbound.body.id)?.data;
    });
    expect(event).toMatchObject({ from: '4477001122', text: 'ping' });
    const bad = await t.call('POST', `/api/instances/${a.id}/sandbox/inbound`, { key: alice.apiKey, body: { from: 'x', text: 'ping' } });
    expect(bad.status).toBe(400);
  });
});

describe('QR while no worker runs', () => {
  test('503 with Retry-After until a QR exists', async () => {
    // An instance whose worker is not running (desired stopped): no QR will come.
    const [row] = await t.db.database.sql`
      insert into instances (user_id, phone_number, provider, desired_state, status)
      values (${alice.id}, '4915100000999', 'sandbox', 'stopped', 'stopped') returning id`;
    const res = await t.call('GET', `/api/instances/${row!.id}/qr`, { key: alice.apiKey });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(res.body.code).toBe('qr_not_ready');
    const send = await t.call('POST', `/api/instances/${row!.id}/send`, { key: alice.apiKey, body: { to: '4915199999990', text: 'x' } });
    expect(send.status).toBe(503);
    const scan = await t.call('POST', `/api/instances/${row!.id}/sandbox/scan`, { key: alice.apiKey });
    expect(scan.status).toBe(503);
    expect(scan.body.code).toBe('worker_unavailable');
  });
});

describe('worker lifecycle', () => {
  test('sends while the worker is away are 202 queued and delivered when it is back', async () => {
    const inst = await paired(alice.apiKey);
    const worker = (await t.engine.inspect(inst.id))!;
    process.kill(worker.pid!, 'SIGSTOP');
    try {
      t.runtime.hub.closeAll(); // the gateway side of every socket goes away; the frozen worker cannot reconnect yet
      await until('worker disconnected', () => !t.runtime.isWorkerConnected(inst.id));
      const queued = await t.call('POST', `/api/instances/${inst.id}/send`, { key: alice.apiKey, body: { to: '4915199999997', text: 'later' } });
      expect(queued.status).toBe(202);
      expect(queued.body.status).toBe('queued');
      expect((await messageStatus(alice.apiKey, inst.id, queued.body.id)).status).toBe('queued');
      process.kill(worker.pid!, 'SIGCONT');
      await until('queued message read', async () => (await messageStatus(alice.apiKey, inst.id, queued.body.id)).status === 'read');
    } finally {
      process.kill(worker.pid!, 'SIGCONT');
    }
  });

  test('kill -9 of a worker: it is restarted and the instance is running again', async () => {
    const inst = await createSandbox(alice.apiKey);
    const before = (await t.engine.inspect(inst.id))!;
    process.kill(before.pid!, 'SIGKILL');
    await until('restarted worker', async () => {
      const w = await t.engine.inspect(inst.id);
      return w?.state === 'running' && w.pid !== before.pid;
    });
    const back = await until('status running', async () => {
      const r = await t.call('GET', `/api/instances/${inst.id}`, { key: alice.apiKey });
      return r.body.status === 'running' && r.body;
    });
    expect(back.statusReason).toBe('worker connected');
    const history = await t.db.database.sql`select data->>'statusReason' as reason from events where instance_id = ${inst.id} and type = 'instance.status'`;
    expect(history.map((r) => r.reason)).toContainEqual(expect.stringContaining('worker exited (signal SIGKILL); restarting in'));
  });

  test('kill -9 of a paired worker: connected again with no scan; a send right after the kill is delivered', async () => {
    const inst = await paired(alice.apiKey);
    const before = (await t.engine.inspect(inst.id))!;
    process.kill(before.pid!, 'SIGKILL');
    await until('worker gone', () => !t.runtime.isWorkerConnected(inst.id));
    // The first crash restarts at once: the new worker may already be back for the send (200 sent) or not yet (202 queued).
    const queued = await t.call('POST', `/api/instances/${inst.id}/send`, { key: alice.apiKey, body: { to: '4915199999995', text: 'after the crash' } });
    expect(['202 queued', '200 sent']).toContain(`${queued.status} ${queued.body.status}`);
    const back = await until(
      'connected again',
      async () => {
        const r = await t.call('GET', `/api/instances/${inst.id}`, { key: alice.apiKey });
        return r.body.status === 'running' && r.body.state === 'connected' && r.body;
      },
      10_000,
    );
    expect(back.stateReason).toBe('session restored');
    await until('queued message read', async () => (await messageStatus(alice.apiKey, inst.id, queued.body.id)).status === 'read');
    const events = await t.db.database.sql`select data->>'state' as state from events where instance_id = ${inst.id} and type = 'instance.status' and id > (select max(id) from events where instance_id = ${inst.id} and data->>'statusReason' like 'worker exited%')`;
    expect(events.map((e) => e.state)).not.toContain('qr');
  });

  test('a worker that keeps crashing marks the instance error instead of spinning', async () => {
    const inst = await createSandbox(alice.apiKey);
    // From now on every worker for it exits at once (a provider the worker program rejects).
    await t.db.database.sql`update instances set provider = 'wawebjs' where id = ${inst.id}`;
    process.kill((await t.engine.inspect(inst.id))!.pid!, 'SIGKILL');
    const failed = await until(
      'status error',
      async () => {
        const r = await t.call('GET', `/api/instances/${inst.id}`, { key: alice.apiKey });
        return r.body.status === 'error' && r.body;
      },
      30_000,
    );
    expect(failed.statusReason).toMatch(/^worker crashed 10 times in a row \(last: code 1\); not restarting$/);
    const restarts = await t.db.database.sql`select count(*)::int as n from events where instance_id = ${inst.id} and data->>'statusReason' like 'worker exited%'`;
    expect(restarts[0]!.n).toBe(9);
    expect((await t.runtime.reconcile()).started).not.toContain(inst.id);
  });

  test('the reconciler starts a missing worker and removes one that should not run', async () => {
    const missing = await createSandbox(alice.apiKey);
    const unwanted = await createSandbox(alice.apiKey);
    await t.engine.remove(missing.id); // gone behind the runtime's back (a requested stop: no crash restart)
    await t.db.database.sql`update instances set desired_state = 'stopped' where id = ${unwanted.id}`;
    const { started, removed } = await t.runtime.reconcile();
    expect(started).toContain(missing.id);
    expect(removed).toContain(unwanted.id);
    expect((await t.engine.inspect(unwanted.id))).toBeNull();
    await until('missing worker back', async () => (await t.call('GET', `/api/instances/${missing.id}`, { key: alice.apiKey })).body.status === 'running');
    const again = await t.runtime.reconcile();
    expect(again.started).not.toContain(missing.id);
    expect(again.removed).toEqual([]);
  });

  test('logout ends the session: state back to qr, sends are 503', async () => {
    const inst = await paired(alice.apiKey);
    expect((await t.call('POST', `/api/instances/${inst.id}/logout`, { key: alice.apiKey })).body).toEqual({ state: 'logged_out' });
    await until('state qr', async () => (await t.call('GET', `/api/instances/${inst.id}`, { key: alice.apiKey })).body.state === 'qr');
    const res = await t.call('POST', `/api/instances/${inst.id}/send`, { key: alice.apiKey, body: { to: '4915199999996', text: 'x' } });
    expect(res.status).toBe(503);
    expect(res.body.code).toBe('not_connected');
  });

  test('restart answers once the worker runs again', async () => {
    const inst = await createSandbox(alice.apiKey);
    const before = (await t.engine.inspect(inst.id))!;
    const res = await t.call('POST', `/api/instances/${inst.id}/restart`, { key: alice.apiKey });
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('running');
    expect((await t.engine.inspect(inst.id))!.pid).not.toBe(before.pid);
  });

  test('delete stops and removes the worker and drops its schema and role', async () => {
    const inst = await createSandbox(alice.apiKey);
    const pid = (await t.engine.inspect(inst.id))!.pid!;
    const role = await stateRoleName(t.db.database.sql, inst.id);
    expect(await t.db.database.sql`select 1 from pg_roles where rolname = ${role}`).toHaveLength(1);
    expect(await t.db.database.sql`select 1 from pg_namespace where nspname = ${`wgs_i_${inst.id}`}`).toHaveLength(1);
    expect((await t.call('DELETE', `/api/instances/${inst.id}`, { key: alice.apiKey })).status).toBe(204);
    expect(await t.engine.inspect(inst.id)).toBeNull();
    expect(() => process.kill(pid, 0)).toThrow();
    expect((await t.call('GET', `/api/instances/${inst.id}`, { key: alice.apiKey })).status).toBe(404);
    expect(await t.db.database.sql`select 1 from pg_roles where rolname = ${role}`).toHaveLength(0);
    expect(await t.db.database.sql`select 1 from pg_namespace where nspname = ${`wgs_i_${inst.id}`}`).toHaveLength(0);
  });
});
