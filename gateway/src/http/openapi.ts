import { Elysia } from 'elysia';
import { openapi } from '@elysiajs/openapi';

export const SPEC_PATH = '/openapi.json';

/**
 * @elysiajs/openapi 1.4 renders a `t.Void()` response as `content: {type: "void"}`,
 * which is not valid OpenAPI; an empty response has no `content` at all.
 */
export function dropVoidContent(spec: { paths?: Record<string, Record<string, { responses?: Record<string, { content?: { type?: unknown } }> }>> }) {
  for (const item of Object.values(spec.paths ?? {})) {
    for (const operation of Object.values(item)) {
      for (const response of Object.values(operation.responses ?? {})) {
        if (response.content?.type === 'void') delete response.content;
      }
    }
  }
  return spec;
}

/** The OpenAPI document at /openapi.json and rendered docs at /docs. */
export function apiDocs(version: string) {
  return new Elysia({ name: 'api-docs' })
    .onAfterHandle({ as: 'global' }, ({ path, response }) => {
      if (path === SPEC_PATH && response && typeof response === 'object') dropVoidContent(response as never);
    })
    .use(
      openapi({
        path: '/docs',
        specPath: SPEC_PATH,
        provider: 'scalar',
        documentation: {
          info: {
            title: 'wgs — WhatsApp gateway API',
            version,
            description:
              'Multi-tenant WhatsApp API gateway. Tenants use `/api` with a Bearer API key; operators use `/admin` with `X-Admin-API-Secret`. Every error is `{error, code}` with the matching HTTP status. ' +
              "Rate limits: a plan may limit `/api` requests per minute per API key and per tenant. Every `/api` response of a limited tenant, errors included, carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the window ends; the limit closest to exhaustion); past a limit any `/api` route answers 429 `rate_limited` with `Retry-After` and does nothing.",
          },
          tags: [
            { name: 'health', description: 'liveness and readiness' },
            { name: 'admin', description: 'operator API: users, API keys, nodes' },
            { name: 'tenant', description: 'tenant API' },
            { name: 'instances', description: 'WhatsApp numbers: lifecycle, QR, messages' },
            { name: 'campaigns', description: 'bulk send: up to 10,000 paced messages from one number, progress, cancel' },
            { name: 'webhooks', description: 'signed event deliveries (Standard Webhooks), retries, delivery log, replay' },
            { name: 'sandbox', description: 'the simulated WhatsApp network, for development and tests' },
          ],
          components: {
            securitySchemes: {
              adminSecret: { type: 'apiKey', in: 'header', name: 'X-Admin-API-Secret' },
              apiKey: { type: 'http', scheme: 'bearer', description: 'an API key, `wgs_...`' },
            },
          },
        },
      }),
    );
}
