import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createTestApp, type TestApp } from '../../../tests/support/app';
import { until } from '../../../tests/support/poll';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ metricsToken: 'metrics-token-0123456789' });
});
afterAll(() => t.close());

describe('GET /metrics', () => {
  test('needs the Bearer METRICS_TOKEN when one is set', async () => {
    expect((await t.call('GET', '/metrics')).status).toBe(401);
    expect((await t.call('GET', '/metrics', { headers: { authorization: 'Bearer wrong-token-wrong-token' } })).status).toBe(401);
    const ok = await t.call('GET', '/metrics', { headers: { authorization: 'Bearer metrics-token-0123456789' } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toStartWith('text/plain');
  });

  test('HTTP requests are counted by route template and status class, never by path', async () => {
    const user = await t.createUser();
    for (const id of [987654, 987655]) expect((await t.call('GET', `/api/instances/${id}`, { key: user.apiKey })).status).toBe(404);
    // Counted once the response is out (onAfterResponse): poll.
    const text = await until('both 404s counted', async () => {
      const body = (await t.call('GET', '/metrics', { headers: { authorization: 'Bearer metrics-token-0123456789' } })).body as string;
      return /^wgs_http_requests_total\{method="GET",route="\/api\/instances\/:id",status_class="4xx"\} 2$/m.test(body) && body;
    });
    expect(text).toContain('wgs_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/api/instances/:id"}');
    expect(text).not.toContain('987654');
  });
});
