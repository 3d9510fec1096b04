import { Elysia } from 'elysia';
import { randomUUID } from 'node:crypto';
import { ApiError, describeValidation, sqlState } from './errors';
import { authentication } from './auth';
import { apiDocs } from './openapi';
import type { AppDeps } from './context';
import { healthRoutes } from '../routes/health';
import { adminUserRoutes } from '../routes/admin/users';
import { adminNodeRoutes } from '../routes/admin/nodes';
import { adminReplicaRoutes } from '../routes/admin/replicas';
import { adminPlanRoutes } from '../routes/admin/plans';
import { adminBillingRoutes } from '../routes/admin/billing';
import { meRoutes } from '../routes/api/me';
import { instanceRoutes } from '../routes/api/instances';
import { campaignRoutes } from '../routes/api/campaigns';
import { messagingRoutes } from '../routes/api/messaging';
import { webhookRoutes } from '../routes/api/webhooks';
import { workerSocketRoute } from '../routes/internal/workers';
import { wabaRoutes } from '../routes/waba';
import { metricsRoutes } from '../routes/metrics';
import { usageRoutes } from '../routes/api/usage';
import { adminUsageRoutes } from '../routes/admin/usage';
import { streamRoutes } from '../routes/api/streams';
import { eventRoutes } from '../routes/api/events';
import { dashboardRoutes } from '../routes/dashboard';

export const API_VERSION = '0.1.0';

interface RequestMeta {
  id: string;
  start: number;
}
const metaOf = new WeakMap<Request, RequestMeta>();
const REQUEST_ID_RE = /^[A-Za-z0-9._-]{1,128}$/;

function errorResponse(
  set: { status?: number | string },
  status: number,
  code: string,
  error: string,
  requestId?: string,
  extra: ApiError['extra'] = {},
): Response {
  set.status = status; // what the access log reports
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (requestId) headers['x-request-id'] = requestId;
  if (extra.retryAfter !== undefined) headers['retry-after'] = String(extra.retryAfter);
  const body = { error, code, ...(extra.providerCode !== undefined && { providerCode: extra.providerCode }) };
  return new Response(JSON.stringify(body), { status, headers });
}

/**
 * The whole HTTP surface. Tests call `createApp(deps).handle(request)`;
 * main.ts adds `.listen()`.
 */
export function createApp(deps: AppDeps) {
  const log = deps.logger.child({ component: 'http' });

  return (
    new Elysia()
      .onRequest(({ request, set }) => {
        const given = request.headers.get('x-request-id');
        const id = given && REQUEST_ID_RE.test(given) ? given : randomUUID();
        metaOf.set(request, { id, start: performance.now() });
        set.headers['x-request-id'] = id;
      })
      .onError(({ code, error, request, path, set }) => {
        const requestId = metaOf.get(request)?.id;
        if (error instanceof ApiError) return errorResponse(set, error.status, error.code, error.message, requestId, error.extra);
        // Postgres "data exception" (class 22): a value it cannot store, e.g. a NUL character.
        if (sqlState(error)?.startsWith('22')) {
          return errorResponse(set, 400, 'invalid_value', 'a value in the request cannot be stored (e.g. it contains a NUL character)', requestId);
        }
        switch (code) {
          case 'VALIDATION':
            return errorResponse(set, 400, 'validation_failed', describeValidation(error.type, error.all), requestId);
          case 'PARSE':
            return errorResponse(set, 400, 'invalid_body', 'request body is not valid JSON', requestId);
          case 'NOT_FOUND':
            return errorResponse(set, 404, 'route_not_found', `no route for ${request.method} ${path}`, requestId);
          case 'INVALID_COOKIE_SIGNATURE':
          case 'INVALID_FILE_TYPE':
            return errorResponse(set, 400, 'invalid_request', error.message, requestId);
          default:
            log.error({ err: error, requestId, method: request.method, path }, 'unhandled error');
            return errorResponse(set, 500, 'internal_error', 'internal error', requestId);
        }
      })
      .onAfterResponse(({ request, set, path, route }) => {
        const meta = metaOf.get(request);
        const status = Number(set.status) || 200;
        // The route template (`/api/instances/:id`), never the path: ids would make the label set unbounded.
        const template = route || 'unmatched';
        deps.metrics.httpRequests.inc({ method: request.method, route: template, status_class: `${Math.floor(status / 100)}xx` });
        if (meta) deps.metrics.httpDuration.observe({ method: request.method, route: template }, (performance.now() - meta.start) / 1000);
        log.info(
          {
            requestId: meta?.id,
            method: request.method,
            path,
            status,
            ms: meta ? Math.round((performance.now() - meta.start) * 10) / 10 : undefined,
          },
          'request',
        );
      })
      .use(apiDocs(API_VERSION))
      .use(authentication(deps))
      .use(healthRoutes(deps))
      .use(metricsRoutes(deps))
      .use(adminUserRoutes(deps))
      .use(adminNodeRoutes(deps))
      .use(adminReplicaRoutes(deps))
      .use(adminPlanRoutes(deps))
      .use(adminBillingRoutes(deps))
      .use(meRoutes(deps))
      .use(instanceRoutes(deps))
      .use(campaignRoutes(deps))
      .use(messagingRoutes(deps))
      .use(webhookRoutes(deps))
      .use(usageRoutes(deps))
      .use(streamRoutes(deps))
      .use(eventRoutes(deps))
      .use(adminUsageRoutes(deps))
      .use(wabaRoutes(deps))
      .use(workerSocketRoute(deps))
      .use(dashboardRoutes())
  );
}

export type App = ReturnType<typeof createApp>;
