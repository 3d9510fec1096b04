import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { GatewayMetrics } from '../metrics/metrics';
import { createTestApp, type TestApp } from '../../../tests/support/app';
import { until } from '../../../tests/support/poll';
import { WorkerUsageMetrics } from './usage';

const MB = 1024 * 1024;

/** The value of one series in the exposition text, or undefined when it is absent. */
function sample(text: string, name: string, labels: Record<string, string | number>): number | undefined {
  const wanted = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2]!.split(',').sort();
    if (have.length === wanted.length && have.every((l, i) => l === wanted[i])) return Number(m[3]);
  }
  return undefined;
}

describe('worker usage metrics', () => {
  const at = (perInstance: boolean) => {
    const metrics = new GatewayMetrics({ defaults: false });
    return { metrics, usage: new WorkerUsageMetrics(metrics, { perInstance }), text: () => metrics.text() };
  };
  const local = { node: 'local', provider: 'sandbox' };

  test('memory: the latest RSS of each connected worker, summed per node and provider; a gone worker stops counting', async () => {
    const { usage, text } = at(false);
    usage.connected(1, local);
    usage.connected(2, local);
    usage.connected(3, { node: 'b', provider: 'whatsmeow' });
    usage.report(1, { rssBytes: 40 * MB, cpuSeconds: 1 });
    usage.report(2, { rssBytes: 60 * MB, cpuSeconds: 1 });
    usage.report(1, { rssBytes: 50 * MB, cpuSeconds: 1 });
    usage.report(3, { rssBytes: 20 * MB, cpuSeconds: 1 });
    expect(sample(await text(), 'wgs_worker_memory_rss_bytes', local)).toBe(110 * MB);
    expect(sample(await text(), 'wgs_worker_memory_rss_bytes', { node: 'b', provider: 'whatsmeow' })).toBe(20 * MB);

    usage.disconnected(2);
    expect(sample(await text(), 'wgs_worker_memory_rss_bytes', local)).toBe(50 * MB);
    usage.disconnected(1);
    expect(sample(await text(), 'wgs_worker_memory_rss_bytes', local)).toBeUndefined();
    // Reports after the disconnect (a late frame) are ignored; per-instance series are off.
    usage.report(1, { rssBytes: 90 * MB, cpuSeconds: 9 });
    const after = await text();
    expect(sample(after, 'wgs_worker_memory_rss_bytes', local)).toBeUndefined();
    expect(after).not.toContain('wgs_instance_worker_memory_rss_bytes{');
    expect(after).not.toContain('instance="');
  });

  test('CPU: the growth between reports of one connection; a new connection or a restarted worker is a new baseline', async () => {
    const { usage, text } = at(false);
    const cpu = async () => sample(await text(), 'wgs_worker_cpu_seconds_total', local);
    usage.connected(1, local);
    usage.report(1, { rssBytes: MB, cpuSeconds: 100 }); // baseline: its past may have been counted elsewhere
    expect(await cpu()).toBe(0);
    usage.report(1, { rssBytes: MB, cpuSeconds: 101.5 });
    expect(await cpu()).toBe(1.5);
    usage.report(1, { rssBytes: MB, cpuSeconds: 0.5 }); // restarted: never counted down
    expect(await cpu()).toBe(1.5);
    usage.report(1, { rssBytes: MB, cpuSeconds: 1.5 });
    expect(await cpu()).toBe(2.5);
    usage.connected(1, local); // reconnected (or replaced): baseline again
    usage.report(1, { rssBytes: MB, cpuSeconds: 50 });
    usage.report(1, { rssBytes: MB, cpuSeconds: 51 });
    expect(await cpu()).toBe(3.5);
    usage.disconnected(1);
    expect(await cpu()).toBe(3.5); // a counter keeps what it counted
  });

  test('per instance (METRICS_PER_INSTANCE=true): series per instance, removed when its worker goes', async () => {
    const { usage, text } = at(true);
    usage.connected(7, local);
    usage.report(7, { rssBytes: 30 * MB, cpuSeconds: 2 });
    usage.report(7, { rssBytes: 32 * MB, cpuSeconds: 3 });
    const series = { instance: 7, ...local };
    expect(sample(await text(), 'wgs_instance_worker_memory_rss_bytes', series)).toBe(32 * MB);
    expect(sample(await text(), 'wgs_instance_worker_cpu_seconds_total', series)).toBe(1);
    usage.disconnected(7);
    const after = await text();
    expect(sample(after, 'wgs_instance_worker_memory_rss_bytes', series)).toBeUndefined();
    expect(sample(after, 'wgs_instance_worker_cpu_seconds_total', series)).toBeUndefined();
    expect(sample(after, 'wgs_worker_cpu_seconds_total', local)).toBe(1);
  });
});

describe('GET /metrics with real workers', () => {
  let t: TestApp;
  let key: string;
  beforeAll(async () => {
    t = await createTestApp({ listen: true, metricsPerInstance: true });
    key = (await t.createUser()).apiKey;
  });
  afterAll(() => t.close());

  const scrape = async () => (await t.call('GET', '/metrics')).body as string;

  test("a sandbox worker's report shows per node and provider, and per instance until the instance is deleted", async () => {
    const res = await t.call('POST', '/api/instances', { key, body: { provider: 'sandbox', phone: '4915100000777' } });
    expect(res.status).toBe(200);
    const id = res.body.id as number;
    const local = { node: 'local', provider: 'sandbox' };
    // The worker pings with its usage right after the welcome.
    const text = await until('the worker memory on /metrics', async () => {
      const body = await scrape();
      return (sample(body, 'wgs_worker_memory_rss_bytes', local) ?? 0) > MB ? body : undefined;
    });
    expect(sample(text, 'wgs_worker_cpu_seconds_total', local)).toBeGreaterThanOrEqual(0);
    const series = { instance: id, ...local };
    expect(sample(text, 'wgs_instance_worker_memory_rss_bytes', series)).toBeGreaterThan(MB);
    expect(sample(text, 'wgs_instance_worker_cpu_seconds_total', series)).toBeGreaterThanOrEqual(0);

    expect((await t.call('DELETE', `/api/instances/${id}`, { key })).status).toBe(204);
    const after = await until('the instance series to go', async () => {
      const body = await scrape();
      return sample(body, 'wgs_instance_worker_memory_rss_bytes', series) === undefined ? body : undefined;
    });
    expect(sample(after, 'wgs_instance_worker_cpu_seconds_total', series)).toBeUndefined();
    expect(sample(after, 'wgs_worker_memory_rss_bytes', local)).toBeUndefined();
  });
});
