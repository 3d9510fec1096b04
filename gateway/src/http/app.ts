import { Elysia } from 'elysia';
import { randomUUID } from 'node:crypto';
import { ApiError, clientDatabaseError, describeValidation, errorForLog, sqlState } from './errors';
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

/**
 * How deeply a JSON request body may nest arrays and objects. The deepest
 * legitimate body, a campaign's message with a template carousel (body,
 * messages, message, template, components, component, cards, card,
 * components, component, parameters, parameter, image), is 13 levels; past a
 * few thousand, validation and Postgres's jsonb input overflow their stacks.
 */
export const MAX_BODY_DEPTH = 64;

/**
 * Whether JSON text nests arrays and objects deeper than `limit`: one linear
 * pass counting `[` and `{` outside strings (escapes honoured), stopping at the
 * first level past the limit. Malformed text is left to the JSON parser.
 */
export function jsonNestingExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > limit) return true;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) depth--;
  }
  return false;
}

/**
 * Refuses a JSON body nested deeper than MAX_BODY_DEPTH before any route
 * parses or validates it, for every route at once (an `onRequest` hook: a
 * parse hook would make Elysia parse the bodies of routes that take none and
 * break `parse: 'none'`). It reads a clone, so the route still gets the body.
 */
async function refuseDeepJson({ request }: { request: Request }): Promise<void> {
  if (request.method === 'GET' || request.method === 'HEAD' || !request.body) return;
  if (!/json/i.test(request.headers.get('content-type') ?? '')) return;
  if (jsonNestingExceeds(await request.clone().text(), MAX_BODY_DEPTH)) {
    throw new ApiError(400, 'body_too_deep', `the JSON body is nested deeper than ${MAX_BODY_DEPTH} levels`);
  }
}

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
        // A value Postgres refused (data exception, program limit): the client's, so a 400; logged without the query's parameters.
        const refused = clientDatabaseError(error);
        if (refused) {
          log.info({ requestId, method: request.method, path, sqlState: sqlState(error) }, 'request refused by the database');
          return errorResponse(set, refused.status, refused.code, refused.message, requestId);
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
            // Not the raw error: drizzle's carries every query parameter (user content) in its message.
            log.error({ err: errorForLog(error), requestId, method: request.method, path }, 'unhandled error');
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
      // After authentication: an unauthenticated caller gets its 401 whatever it sends.
      .onRequest(refuseDeepJson)
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
