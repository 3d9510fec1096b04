/**
 * Leadership among replicas on a real Postgres: one leader at a time, the
 * next takes over once the leader's session ends, and a leader whose session
 * is cut steps down at once.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/postgres';
import { until } from '../../../tests/support/poll';
import { createLogger } from '../logging/logger';
import { acquireOwner, type GatewayOwner } from './owner';
import { Leadership, leaderOwner } from './leader';

let db: TestDatabase;
const owners: GatewayOwner[] = [];
const leaderships: Leadership[] = [];
const logger = createLogger('silent');

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  for (const l of leaderships) await l.stop();
  for (const o of owners) await o.release();
  await db.drop();
});

/** A replica's leadership with fast timings; its duties count what they were asked to do. */
async function replica() {
  const owner = await acquireOwner(db.url, logger);
  owners.push(owner);
  const duties = { leads: 0, stepDowns: 0, leading: false };
  const leadership = new Leadership(
    db.url,
    owner.id,
    {
      lead: () => {
        duties.leads++;
        duties.leading = true;
      },
      stepDown: () => {
        duties.stepDowns++;
        duties.leading = false;
      },
    },
    logger,
    // 3 s: a heartbeat slowed by a loaded machine must not step a leader down during the tests' pauses.
    { retryMs: 100, heartbeatMs: 100, heartbeatTimeoutMs: 3000 },
  );
  leaderships.push(leadership);
  await leadership.start();
  return { owner, leadership, duties };
}

const leaderId = async () => (await db.database.db.execute<{ id: number | null }>(sql`select ${leaderOwner} as id`))[0]!.id;

test('one leader at a time; pg_locks names it; a stopped leader hands over to the next', async () => {
  const a = await replica();
  const b = await replica();
  const c = await replica();
  expect([a, b, c].filter((r) => r.leadership.isLeader)).toHaveLength(1);
  expect(a.leadership.isLeader).toBe(true);
  expect(a.duties).toEqual({ leads: 1, stepDowns: 0, leading: true });
  expect(await leaderId()).toBe(a.owner.id);
  // Followers keep trying and never both win.
  await Bun.sleep(350);
  expect([b, c].filter((r) => r.leadership.isLeader)).toHaveLength(0);

  await a.leadership.stop();
  // Timed from the lock's release (stop() may first wait out a heartbeat): followers retry every 100 ms.
  const t0 = Date.now();
  expect(a.duties).toEqual({ leads: 1, stepDowns: 1, leading: false });
  const next = await until('a new leader', () => [b, c].find((r) => r.leadership.isLeader), 5000, 10);
  expect(Date.now() - t0).toBeLessThan(3000);
  await Bun.sleep(300);
  expect([b, c].filter((r) => r.leadership.isLeader)).toHaveLength(1);
  expect(await leaderId()).toBe(next.owner.id);
  expect(next.duties.leads).toBe(1);
}, 20_000);

test('a leader whose database session is cut steps down at once; another replica leads', async () => {
  const current = leaderships.find((l) => l.isLeader)!;
  const before = await leaderId();
  // Postgres ends the leader's session (what a lost connection or a database failover does).
  const t0 = Date.now();
  await db.database.sql`select pg_terminate_backend(pid) from pg_stat_activity
    where application_name = 'wgs-gateway-leader' and datname = current_database()
      and pid in (select pid from pg_locks where locktype = 'advisory' and classid = 0 and objid = ${0x77677305}::oid and granted)`;
  await until('the old leader stepped down', () => !current.isLeader, 2000, 5);
  const stepDownMs = Date.now() - t0;
  await until('someone leads again', async () => leaderships.some((l) => l.isLeader) && (await leaderId()) !== null, 3000, 10);
  expect(await leaderId()).not.toBe(null);
  expect(leaderships.filter((l) => l.isLeader)).toHaveLength(1);
  console.log(`session cut → stepped down in ${stepDownMs} ms; leader ${before} → ${await leaderId()}`);
}, 20_000);

test('a heartbeat that gets no answer in time steps down', async () => {
  const owner = await acquireOwner(db.url, logger);
  owners.push(owner);
  // Every other leadership stops: this one leads, then its heartbeat stalls behind a lock held elsewhere.
  for (const l of leaderships.splice(0)) await l.stop();
  let leading = false;
  const l = new Leadership(db.url, owner.id, { lead: () => void (leading = true), stepDown: () => void (leading = false) }, logger, {
    retryMs: 100,
    heartbeatMs: 100,
    heartbeatTimeoutMs: 300,
  });
  leaderships.push(l);
  await l.start();
  expect(l.isLeader).toBe(true);
  // A database that does not answer: an ACCESS EXCLUSIVE lock on the pg_locks view holds the heartbeat's query.
  const blocker = db.database.sql.begin(async (tx) => {
    await tx`lock table pg_catalog.pg_locks in access exclusive mode`;
    await until('stepped down', () => !leading, 3000, 10);
  });
  await blocker;
  expect(l.isLeader).toBe(false);
  // Once the database answers again it leads again (nobody else competes).
  await until('leads again', () => l.isLeader, 3000, 20);
}, 20_000);
