import { Elysia } from 'elysia';
import { secretsEqual } from '../auth/api-keys';
import type { AppDeps } from '../http/context';
import { errorResponses, unauthorized } from '../http/errors';

/**
 * GET /metrics: the Prometheus text format. Open unless METRICS_TOKEN is set;
 * then `Authorization: Bearer <METRICS_TOKEN>` (Prometheus' `authorization`
 * scrape setting), compared in constant time.
 */
export function metricsRoutes({ metrics, metricsToken, logger }: AppDeps) {
  const log = logger.child({ component: 'metrics' });
  return new Elysia({ name: 'metrics', detail: { tags: ['health'] } }).get(
    '/metrics',
    async ({ request }) => {
      if (metricsToken) {
        const match = request.headers.get('authorization')?.match(/^Bearer\s+(\S+)\s*$/i);
        if (!match) throw unauthorized('missing Authorization: Bearer <METRICS_TOKEN> header');
        if (!secretsEqual(match[1]!, metricsToken)) throw unauthorized('invalid metrics token');
      }
      const body = await metrics.text((err) => log.error({ err }, 'a metrics collector failed'));
      return new Response(body, { headers: { 'content-type': metrics.contentType, 'cache-control': 'no-store' } });
    },
    {
      detail: {
        summary: 'Prometheus metrics (text format)',
        description: 'Bearer METRICS_TOKEN when the gateway has one. Fleet gauges (from the database) are the same on every replica; counters are per replica.',
      },
      response: { ...errorResponses(401) },
    },
  );
}
