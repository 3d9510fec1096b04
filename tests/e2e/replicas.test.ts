/**
 * Several gateway replicas on one database, as real processes: two gateways
 * (no proxy in front: clients alternate between them) sharing one Postgres
 * database, real sandbox workers on the process engine, the workers given
 * both gateways' URLs. One leader at a time; commands reach workers held by
 * the other replica through the database; a SIGKILLed replica's workers dial
 * the other one; migrate and delete are serialised across replicas; a drain
 * outlives its leader.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../gateway/src/lib/net';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { gatewayApi as api, startGatewayProcess, waitConnected, workerPids, type GatewayProcess } from '../support/gateway-process';
import { replicasView, workerHolder } from '../support/replicas';
import { until } from '../support/poll';
import { receivedTexts } from '../support/received';

const WORKER = 'workers/src/main.ts';
const cleanup: (() => Promise<unknown>)[] = [];
let db: TestDatabase;
let ports: { a: number; b: number };
let webhookKey: string;
let user: { apiKey: string };
const gateways: Record<'a' | 'b', GatewayProcess> = {} as never;

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wgs-e2e-replicas-'));
  await chmod(dir, 0o755);
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Replica `name` on its fixed port; its workers dial it first, then the other one. */
async function start(name: 'a' | 'b'): Promise<GatewayProcess> {
  const other = name === 'a' ? 'b' : 'a';
  // The whole group at the end: the gateway, its workers, and its orphans if only the gateway was killed.
  const g = await startGatewayProcess(
    {
      DATABASE_URL: db.url,
      ADMIN_API_SECRET: 's',
      DATA_DIR: await dataDir(),
      PORT: String(ports[name]),
      GATEWAY_REPLICA_ID: name,
      WEBHOOK_SECRET_KEY: webhookKey,
      WORKER_GATEWAY_URL: `ws://127.0.0.1:${ports[name]},ws://127.0.0.1:${ports[other]}`,
      SANDBOX_RECEIPT_DELAYS_MS: '20,40,60',
      LOG_LEVEL: 'info',
    },
    cleanup,
    { ownProcessGroup: true },
  );
  gateways[name] = g;
  return g;
}

const replicas = replicasView;

async function leaderMetric(g: GatewayProcess): Promise<number | undefined> {
  const text = await (await fetch(`${g.url}/metrics`)).text();
  const m = /^wgs_gateway_leader\{replica="[^"]+"\} (\d)$/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

let seq = 0;
const phone = () => `4916${String(process.pid % 1e4).padStart(4, '0')}${String(seq++).padStart(3, '0')}`;

/** A paired sandbox instance created through `g` (its worker is g's child). */
async function paired(g: GatewayProcess, node?: string): Promise<{ id: number; phone: string }> {
  const created = await api(g, 'POST', '/api/instances', user.apiKey, { provider: 'sandbox', phone: phone(), ...(node && { node }) });
  expect(created.status).toBe(200);
  expect((await api(g, 'POST', `/api/instances/${created.body.id}/sandbox/scan`, user.apiKey)).status).toBe(200);
  await waitConnected(g, created.body.id, user.apiKey);
  return { id: created.body.id, phone: created.body.phone };
}

/**
 * A paired instance whose worker's socket `name` holds. Workers spread over
 * the replicas in their URL list by instance id (workers/src/failover.ts), so
 * an instance is made again until one lands there (bounded).
 */
async function pairedHeldBy(name: 'a' | 'b', via: 'a' | 'b' = name): Promise<{ id: number; phone: string }> {
  for (let i = 0; i < 6; i++) {
    const made = await paired(gateways[via], 'local');
    if ((await holder(made.id)) === name) return made;
    expect((await api(gateways[via], 'DELETE', `/api/instances/${made.id}`, user.apiKey)).status).toBe(204);
  }
  throw new Error(`no instance held by ${name} after 6 tries`);
}

const holder = (id: number) => workerHolder(db.database.sql, id);

beforeAll(async () => {
  db = await createTestDatabase();
  cleanup.push(() => db.drop());
  ports = { a: await freePort(), b: await freePort() };
  webhookKey = randomBytes(32).toString('base64');
  await start('b'); // first: it leads
  await start('a');
  user = (await api(gateways.a, 'POST', '/admin/users', undefined, { email: 'replicas@example.com' })).body;
}, 60_000);

afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
});

test('one leader: both replicas name the same one; wgs_gateway_leader is 1 there and 0 on the other', async () => {
  const [fromA, fromB] = await Promise.all([replicas(gateways.a), replicas(gateways.b)]);
  expect(fromA.self).toBe('a');
  expect(fromB.self).toBe('b');
  expect(fromA.leader).toBe('b');
  expect(fromB.leader).toBe('b');
  expect(fromA.replicas.map((r) => r.replicaId).sort()).toEqual(['a', 'b']);
  expect(await leaderMetric(gateways.b)).toBe(1);
  expect(await leaderMetric(gateways.a)).toBe(0);
}, 20_000);

test('QR and sends for instances whose workers sit on the other replica, clients alternating', async () => {
  const { a, b } = gateways;
  // An instance whose worker A holds; its QR and its scan go through B.
  let x = 0;
  for (let i = 0; i < 6 && !x; i++) {
    const created = await api(a, 'POST', '/api/instances', user.apiKey, { provider: 'sandbox', phone: phone() });
    expect(created.status).toBe(200);
    if ((await holder(created.body.id)) === 'a') x = created.body.id;
    else expect((await api(a, 'DELETE', `/api/instances/${created.body.id}`, user.apiKey)).status).toBe(204);
  }
  expect(x).toBeGreaterThan(0);
  const qr = await until('QR through B', async () => {
    const r = await api(b, 'GET', `/api/instances/${x}/qr?format=json`, user.apiKey);
    return r.status === 200 && r.body;
  });
  expect(qr.qr.length).toBeGreaterThan(10);
  const png = await fetch(`${b.url}/api/instances/${x}/qr`, { headers: { authorization: `Bearer ${user.apiKey}` } });
  expect(png.headers.get('content-type')).toBe('image/png');
  expect((await api(b, 'POST', `/api/instances/${x}/sandbox/scan`, user.apiKey)).body).toEqual({ state: 'connected' });
  await waitConnected(b, x, user.apiKey);
  // One whose worker sits on B: A sends for it.
  const y = await pairedHeldBy('b');
  expect(await holder(y.id)).toBe('b');

  const sent: { g: GatewayProcess; id: string; instance: number }[] = [];
  for (let i = 0; i < 10; i++) {
    for (const [instance, g] of [[x, b], [y.id, a], [x, a], [y.id, b]] as const) {
      const r = await api(g, 'POST', `/api/instances/${instance}/send`, user.apiKey, { to: '4915199990001', text: `cross ${i}` });
      expect(r.status).toBe(200); // answered with the worker's result, through the database
      expect(r.body.status).toBe('sent');
      sent.push({ g, id: r.body.id, instance });
    }
  }
  // Receipts come back through whichever replica holds the worker; either replica reads them.
  for (const s of sent.slice(-4)) {
    await until('read', async () => (await api(s.g === a ? b : a, 'GET', `/api/instances/${s.instance}/messages/${s.id}`, user.apiKey)).body?.status === 'read');
  }
  // Paced sends too: scheduled through A, sent when due by B's pacer (B holds Y's worker).
  expect((await api(a, 'PATCH', `/api/instances/${y.id}`, user.apiKey, { pacing: { minIntervalMs: 300, jitterMs: 0 } })).status).toBe(200);
  const paced: string[] = [];
  for (let i = 0; i < 4; i++) {
    const r = await api(a, 'POST', `/api/instances/${y.id}/send`, user.apiKey, { to: '4915199990002', text: `paced ${i}` });
    expect([200, 202]).toContain(r.status);
    paced.push(r.body.id);
  }
  for (const id of paced) {
    await until('paced send sent', async () => ['sent', 'delivered', 'read'].includes((await api(a, 'GET', `/api/instances/${y.id}/messages/${id}`, user.apiKey)).body?.status), 10_000);
  }
  // Interactive commands too: a logout through the other replica (answered with the worker's result).
  expect((await api(b, 'POST', `/api/instances/${x}/logout`, user.apiKey)).body).toEqual({ state: 'logged_out' });
  await until('a fresh QR, read through A', async () => (await api(a, 'GET', `/api/instances/${x}/qr?format=json`, user.apiKey)).status === 200);
  for (const id of [x, y.id]) expect((await api(a, 'DELETE', `/api/instances/${id}`, user.apiKey)).status).toBe(204);
}, 60_000);

test('a migrate on one replica and a delete on the other, racing: clean answers, no orphaned worker or row', async () => {
  const { a, b } = gateways;
  if (!(await api(a, 'GET', '/admin/nodes')).body.some((n: { name: string }) => n.name === 'p2')) {
    expect((await api(a, 'POST', '/admin/nodes', undefined, { name: 'p2', engine: 'process' })).status).toBe(200);
  }
  const outcomes: string[] = [];
  for (const [mover, deleter, delayMs] of [[a, b, 0], [b, a, 0], [a, b, 150]] as const) {
    const z = await paired(a, 'local');
    const migrating = api(mover, 'POST', `/api/instances/${z.id}/migrate`, user.apiKey, { target_node: 'p2' });
    await Bun.sleep(delayMs);
    const deleting = api(deleter, 'DELETE', `/api/instances/${z.id}`, user.apiKey);
    const [m, d] = await Promise.all([migrating, deleting]);
    outcomes.push(`migrate ${m.status} ${m.body?.code ?? ''} / delete ${d.status} ${d.body?.code ?? ''}`);
    expect([200, 404, 409, 503]).toContain(m.status);
    expect([204, 409]).toContain(d.status);
    if (m.status === 409) expect(m.body.code).toBe('migration_in_progress');
    if (d.status === 409) expect(d.body.code).toBe('migration_in_progress');
    if (d.status === 204) {
      expect((await api(a, 'GET', `/api/instances/${z.id}`, user.apiKey)).status).toBe(404);
      await until('no worker left for the deleted instance', async () => (await workerPids(z.id, WORKER)).length === 0, 15_000);
      // And none comes back: both control loops agree it is gone.
      await Bun.sleep(300);
      expect(await workerPids(z.id, WORKER)).toEqual([]);
    } else {
      await waitConnected(b, z.id, user.apiKey);
      expect(await workerPids(z.id, WORKER)).toHaveLength(1);
      expect((await api(b, 'DELETE', `/api/instances/${z.id}`, user.apiKey)).status).toBe(204);
    }
  }
  console.log(`migrate/delete races: ${outcomes.join('; ')}`);
}, 90_000);

test('SIGKILL of the replica holding a worker (and leading) under a send loop: the worker dials the other one, every accepted message arrives once; leadership moves within 10 s', async () => {
  const { a, b } = gateways;
  // X's worker is A's child (A started it) but dialled B, the leader: B dies, the worker lives on and dials A.
  const x = await pairedHeldBy('b', 'a');
  const y = await pairedHeldBy('a'); // the recipient
  const [workerBefore] = await workerPids(x.id, WORKER);
  expect(workerBefore).toBeDefined();
  expect((await replicas(a)).leader).toBe('b');

  const accepted = new Map<string, string>(); // text → message id
  const statuses: number[] = [];
  let killedAt = 0;
  let leaderAt = 0;
  const watchLeader = (async () => {
    // Until B says it leads (bounded).
    for (let i = 0; i < 600 && !leaderAt; i++) {
      if (killedAt && (await replicas(a).catch(() => null))?.leader === 'a') leaderAt = Date.now();
      await Bun.sleep(25);
    }
  })();
  // Bounded: 50 sends, 100 ms apart; a client whose replica does not answer tries the other with the same key.
  for (let i = 0; i < 50; i++) {
    if (i === 15) {
      b.proc.kill('SIGKILL');
      await b.proc.exited;
      killedAt = Date.now();
    }
    const text = `loop ${i}`;
    for (const g of i % 2 === 0 ? [a, b] : [b, a]) {
      const res = await fetch(`${g.url}/api/instances/${x.id}/send`, {
        method: 'POST',
        headers: { authorization: `Bearer ${user.apiKey}`, 'content-type': 'application/json', 'idempotency-key': `k-${i}` },
        body: JSON.stringify({ to: y.phone, text }),
      }).catch(() => null);
      if (!res) continue; // refused connection: the other replica
      statuses.push(res.status);
      if (process.env.DEBUG_REPLICAS) console.log(i, g === a ? 'a' : 'b', res.status, Date.now() - (killedAt || Date.now()));
      const body = (await res.json()) as { id?: string; code?: string };
      if (res.status === 200 || res.status === 202) accepted.set(text, body.id!);
      break;
    }
    await Bun.sleep(100);
  }
  await watchLeader;
  if (process.env.DEBUG_REPLICAS) {
    for (const line of a.output().split('\n')) {
      if (!line.includes(`"instanceId":${x.id},`) || line.includes("worker log")) continue;
      try {
        const r = JSON.parse(line);
        console.log("A", new Date(r.time).getTime() - killedAt, r.msg, r.worker?.msg ?? '', r.reason ?? '', r.err?.message ?? '');
      } catch {}
    }
  }
  expect(leaderAt).toBeGreaterThan(0);
  const failover = leaderAt - killedAt;
  console.log(`leader SIGKILLed → the other leads in ${failover} ms; statuses ${JSON.stringify(Object.fromEntries(statuses.reduce((m, s) => m.set(s, (m.get(s) ?? 0) + 1), new Map())))}`);
  expect(failover).toBeLessThan(10_000);
  expect(statuses.filter((s) => s === 503).length).toBeLessThanOrEqual(3);
  expect(accepted.size).toBeGreaterThanOrEqual(47);
  // The same worker process of X dialled A, which holds it now; no second worker was started.
  expect(await holder(x.id)).toBe('a');
  expect(await workerPids(x.id, WORKER)).toEqual([workerBefore!]);
  // Every accepted message reached Y exactly once.
  const received = await receivedTexts(db.database.sql, y.id, accepted.keys());
  for (const text of accepted.keys()) expect(received.filter((t) => t === text)).toHaveLength(1);
  expect(await leaderMetric(a)).toBe(1);
  const after = await api(a, 'POST', `/api/instances/${x.id}/send`, user.apiKey, { to: y.phone, text: 'after' });
  expect(after.status).toBe(200);
}, 90_000);

test('the leader SIGKILLed during a drain: the new leader finishes the drain', async () => {
  const b = await start('b'); // B comes back: A leads now, B follows
  const a = gateways.a;
  expect((await replicas(b)).leader).toBe('a');
  const p3 = await api(b, 'POST', '/admin/nodes', undefined, { name: 'p3', engine: 'process' });
  expect(p3.status).toBe(200);
  const made: { id: number; phone: string }[] = [];
  for (let i = 0; i < 4; i++) made.push(await paired(i % 2 ? a : b, 'p3'));
  const workersBefore = new Map<number, number[]>();
  for (const m of made) workersBefore.set(m.id, await workerPids(m.id, WORKER));
  // The leader (A) drives the drain; it dies a moment into it (the gateway alone: its workers die with it).
  expect((await api(a, 'POST', `/admin/nodes/${p3.body.id}/drain`)).status).toBe(200);
  await until('a move under way', async () => {
    const [{ n }] = (await db.database.sql`select count(*)::int as n from instances where target_node_id is not null or (node_id <> ${p3.body.id} and id in ${db.database.sql(made.map((m) => m.id))})`) as unknown as [{ n: number }];
    return n > 0;
  }, 10_000, 10);
  a.proc.kill('SIGKILL');
  await a.proc.exited;
  const t0 = Date.now();
  await until('B leads', async () => (await replicas(b)).leader === 'b', 10_000, 50);
  await until(
    'drain finished by the new leader',
    async () => {
      const [{ n }] = (await db.database.sql`select count(*)::int as n from instances where node_id = ${p3.body.id}`) as unknown as [{ n: number }];
      return n === 0;
    },
    45_000,
    100,
  ).catch(async (err) => {
    const rows = await db.database.sql`select id, node_id, target_node_id, move_owner, op_owner, worker_owner, started_by, status, status_reason, state from instances where id in ${db.database.sql(made.map((m) => m.id))}`;
    console.log(JSON.stringify(rows), JSON.stringify(await db.database.sql`select id, name, draining_since, drain_owner from nodes`));
    if (process.env.DEBUG_REPLICAS) for (const line of b.output().split('\n')) if (/migrat|drain|reconcil|lead|abandon/i.test(line) && !line.includes('worker log')) console.log(line.slice(0, 500));
    throw err;
  });
  console.log(`leader killed mid-drain → node empty ${Date.now() - t0} ms later`);
  for (const inst of made) {
    // Connected with no new link: a new worker resumed the session kept in Postgres, or (a move cut short by A's death
    // after it let the old worker go, whose parent is B, and before it started the new one: process nodes share the
    // host) the very worker from before still holds it. A stale `connected` before a new worker's report is neither.
    const held = async () => {
      const v = (await api(b, 'GET', `/api/instances/${inst.id}`, user.apiKey)).body;
      if (v?.status !== 'running' || v.state !== 'connected') return undefined;
      if (v.stateReason === 'session restored') return v;
      const same = JSON.stringify(await workerPids(inst.id, WORKER)) === JSON.stringify(workersBefore.get(inst.id));
      return v.stateReason === 'paired by sandbox scan' && same ? v : undefined;
    };
    const r = await until(`instance ${inst.id} held again`, held, 30_000).catch(async (err) => {
      const [row] = await db.database.sql`select i.*, r.replica_id from instances i left join gateway_replicas r on r.owner_id = i.worker_owner where i.id = ${inst.id}`;
      console.log(JSON.stringify(row), await workerPids(inst.id, WORKER));
      if (process.env.DEBUG_REPLICAS) for (const line of b.output().split('\n')) if (line.includes(`"instanceId":${inst.id},`) && !line.includes('worker log')) console.log(line.slice(0, 400));
      throw err;
    });
    expect(r.node).not.toBe('p3');
    expect(['session restored', 'paired by sandbox scan']).toContain(r.stateReason);
    expect(await workerPids(inst.id, WORKER)).toHaveLength(1);
  }
  const [{ owner }] = (await db.database.sql`select drain_owner as owner from nodes where id = ${p3.body.id}`) as unknown as [{ owner: number }];
  const [{ mine }] = (await db.database.sql`select owner_id as mine from gateway_replicas where replica_id = 'b' order by started_at desc limit 1`) as unknown as [{ mine: number }];
  expect(owner).toBe(mine);
}, 120_000);
