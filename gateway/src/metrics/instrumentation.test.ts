/**
 * What this replica counts, through a real app, real sandbox workers and a
 * real webhook receiver on loopback: sends, receipts, received messages,
 * webhook attempts and latency, worker connections, restarts and crash
 * loops, migrations and drains. Read from the metrics the app's GET
 * /metrics serves.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { Server } from 'bun';
import type { Counter, Gauge, Histogram } from 'prom-client';
import { createTestApp, type TestApp } from '../../../tests/support/app';
import { until } from '../../../tests/support/poll';
import { attemptOutcome } from '../webhooks/dispatcher';

let t: TestApp;
let alice: { id: number; apiKey: string };
let a: { id: number; phone: string };
let b: { id: number; phone: string };
const servers: Server<unknown>[] = [];

let seq = 0;
const phone = () => `4918${String(Date.now() % 1e6).padStart(6, '0')}${String(seq++ % 100).padStart(2, '0')}`;

async function paired(key: string) {
  const res = await t.call('POST', '/api/instances', { key, body: { provider: 'sandbox', phone: phone() } });
  if (res.status !== 200) throw new Error(`create failed: ${res.status} ${JSON.stringify(res.body)}`);
  expect((await t.call('POST', `/api/instances/${res.body.id}/sandbox/scan`, { key })).status).toBe(200);
  await until('connected', async () => (await t.call('GET', `/api/instances/${res.body.id}`, { key })).body.state === 'connected');
  return res.body as { id: number; phone: string };
}

/** The value of one series (0 when it does not exist yet). */
async function value(metric: Counter<string> | Gauge<string>, labels: Record<string, string> = {}): Promise<number> {
  const found = (await metric.get()).values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x));
  return found?.value ?? 0;
}

/** How many observations a histogram series has. */
async function observed(metric: Histogram<string>, labels: Record<string, string> = {}): Promise<{ count: number; sum: number }> {
  const values = (await metric.get()).values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x));
  return {
    count: values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0,
    sum: values.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0,
  };
}

/** A receiver on loopback answering `status`. */
function receiver(status: number): string {
  const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('x', { status }) });
  servers.push(server);
  return `http://127.0.0.1:${server.port}/hook`;
}

beforeAll(async () => {
  t = await createTestApp({ listen: true, webhooks: true, retryScheduleS: [0], moveTimeoutMs: 8_000 });
  alice = await t.createUser();
  a = await paired(alice.apiKey);
  b = await paired((await t.createUser()).apiKey);
});
afterAll(async () => {
  for (const s of servers) s.stop(true);
  await t.close();
});

describe('what this replica counts', () => {
  test('worker connections: one per connected worker', async () => {
    expect(await until('two sandbox workers counted', async () => (await value(t.metrics.workerConnections, { provider: 'sandbox' })) === 2)).toBe(true);
  });

  test('a send: sent, then its receipts; the recipient\'s received message; each once', async () => {
    const res = await t.call('POST', `/api/instances/${a.id}/send`, { key: alice.apiKey, body: { to: b.phone, text: 'counted' } });
    expect(res.status).toBe(200);
    await until('the message read', async () => {
      const [row] = await t.db.database.sql`select status from messages where id = ${res.body.id}`;
      return row?.status === 'read';
    });
    expect(await value(t.metrics.sends, { provider: 'sandbox', type: 'text', result: 'sent' })).toBe(1);
    expect(await value(t.metrics.sends, { result: 'failed' })).toBe(0);
    // Counted once the receipts' transaction has committed: the row can say `read` a moment before.
    await until('both receipts counted', async () => (await value(t.metrics.messageStatuses, { provider: 'sandbox', status: 'read' })) >= 1);
    expect(await value(t.metrics.messageStatuses, { provider: 'sandbox', status: 'delivered' })).toBe(1);
    expect(await value(t.metrics.messageStatuses, { provider: 'sandbox', status: 'read' })).toBe(1);
    await until('b received it', async () => (await value(t.metrics.messagesReceived, { provider: 'sandbox' })) === 1);
    // The same event sent again by a worker (no ack seen) is stored once and counted once.
    const [event] = await t.db.database.sql`select worker_event_id, data from events where instance_id = ${b.id} and type = 'message.received'`;
    await t.runtime['frames'].events(b.id, [{ eventId: event!.worker_event_id, event: { type: 'message.received', data: event!.data } }]);
    expect(await value(t.metrics.messagesReceived, { provider: 'sandbox' })).toBe(1);
  });

  test('webhook attempts by outcome; latency of the 2xx ones', async () => {
    const subscribe = async (url: string) =>
      expect((await t.call('POST', `/api/instances/${a.id}/webhooks`, { key: alice.apiKey, body: { url, events: ['instance.qr'] } })).status).toBe(201);
    await subscribe(receiver(200));
    await subscribe(receiver(503));
    await subscribe(receiver(410));
    await t.db.database.sql`insert into events (instance_id, type, data) values (${a.id}, 'instance.qr', '{}')`; // a is paired: no QR of its own comes
    // One attempt in the schedule: the 503 one is given up at once (counted once its outcome is recorded).
    await until('three attempts and one give-up counted', async () => {
      const [d, f, g] = await Promise.all(['delivered', 'failed', 'gone'].map((outcome) => value(t.metrics.webhookDeliveries, { outcome })));
      return d === 1 && f === 1 && g === 1 && (await value(t.metrics.webhookGivenUp)) === 1 && (await observed(t.metrics.webhookLatency)).count > 0;
    });
    const latency = await observed(t.metrics.webhookLatency);
    expect(latency.count).toBe(1);
    expect(latency.sum).toBeGreaterThanOrEqual(0);
    expect(latency.sum).toBeLessThan(10);
  });

  test('attempt outcomes: timeout and connection errors apart from answers', () => {
    expect(attemptOutcome(204, null)).toBe('delivered');
    expect(attemptOutcome(410, null)).toBe('gone');
    expect(attemptOutcome(500, null)).toBe('failed');
    expect(attemptOutcome(302, null)).toBe('failed');
    expect(attemptOutcome(null, 'TimeoutError: The operation timed out.')).toBe('timeout');
    expect(attemptOutcome(null, 'TypeError: ECONNREFUSED')).toBe('error');
    expect(attemptOutcome(null, 'destination refused: http://10.0.0.1/ is private')).toBe('error');
  });

  test('kill -9 of a worker: one restart counted; the new connection replaces the old one in the gauge', async () => {
    const before = (await t.engine.inspect(a.id))!;
    process.kill(before.pid!, 'SIGKILL');
    await until('restart counted', async () => (await value(t.metrics.workerRestarts, { provider: 'sandbox' })) === 1);
    await until('connected again', async () => (await t.call('GET', `/api/instances/${a.id}`, { key: alice.apiKey })).body.state === 'connected');
    expect(await until('two workers counted again', async () => (await value(t.metrics.workerConnections, { provider: 'sandbox' })) === 2)).toBe(true);
  });

  test('a worker that keeps crashing: one crash loop counted, by the instance\'s provider', async () => {
    const res = await t.call('POST', '/api/instances', { key: alice.apiKey, body: { provider: 'sandbox', phone: phone() } });
    expect(res.status).toBe(200);
    await until('its worker runs', async () => (await t.engine.inspect(res.body.id))?.state === 'running');
    // From now on every worker for it exits at once (a provider the worker program rejects).
    await t.db.database.sql`update instances set provider = 'wawebjs' where id = ${res.body.id}`;
    process.kill((await t.engine.inspect(res.body.id))!.pid!, 'SIGKILL');
    await until('crash loop counted', async () => (await value(t.metrics.workerCrashLoops, { provider: 'wawebjs' })) === 1, 30_000);
    expect(await value(t.metrics.workerRestarts, { provider: 'wawebjs' })).toBe(9);
    await t.call('DELETE', `/api/instances/${res.body.id}`, { key: alice.apiKey });
  });

  test('a migration and a drain, with their durations', async () => {
    const p2 = await t.call('POST', '/admin/nodes', { body: { name: 'p2', engine: 'process' } });
    expect(p2.status).toBe(200);
    const moved = await t.call('POST', `/api/instances/${a.id}/migrate`, { key: alice.apiKey, body: { target_node: 'p2' } });
    expect(moved.status).toBe(200);
    expect(await value(t.metrics.migrations, { result: 'ok' })).toBe(1);
    expect((await observed(t.metrics.migrationDuration, { result: 'ok' })).count).toBe(1);
    // A refusal before the move begins is the API's answer, not a migration.
    expect((await t.call('POST', `/api/instances/${a.id}/migrate`, { key: alice.apiKey, body: { target_node: 'p2' } })).status).toBe(409);
    expect(await value(t.metrics.migrations, { result: 'failed' })).toBe(0);

    expect((await t.call('POST', `/admin/nodes/${p2.body.id}/drain`)).status).toBe(200);
    await until('drain counted', async () => (await value(t.metrics.drains, { result: 'ok' })) === 1, 30_000);
    expect(await value(t.metrics.migrations, { result: 'ok' })).toBe(2);
    expect((await observed(t.metrics.drainDuration, { result: 'ok' })).count).toBe(1);
  });

  test('GET /metrics: the counters above, and no instance, tenant or user label anywhere', async () => {
    const text = (await t.call('GET', '/metrics')).body as string;
    expect(text).toMatch(/^wgs_sends_total\{provider="sandbox",type="text",result="sent"\} 1$/m);
    expect(text).toMatch(/^wgs_worker_connections\{provider="sandbox"\} 2$/m);
    expect(text).toMatch(/^wgs_instances\{provider="sandbox",node="local",status="running",state="connected"\} 2$/m);
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#') || line.startsWith('wgs_instance_worker_')) continue;
      expect(line).not.toMatch(/[{,](instance|instance_id|tenant|user|user_id|phone)=/);
    }
  });
});
