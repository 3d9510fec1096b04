import { Elysia } from 'elysia';
import { openapi } from '@elysiajs/openapi';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { scalarStandaloneSource, scalarVersion } from './scalar-bundle' with { type: 'macro' };

export const SPEC_PATH = '/openapi.json';
export const DOCS_PATH = '/docs';
/** The Scalar API reference script that /docs loads: served by the gateway, so /docs works offline. */
export const SCALAR_SCRIPT_PATH = `${DOCS_PATH}/scalar.js`;

// Inlined at build time (see scalar-bundle.ts).
const SCALAR_SOURCE = scalarStandaloneSource();
const SCALAR_VERSION = scalarVersion();
let scalarGzip: Promise<Uint8Array<ArrayBuffer>> | undefined;

/** The script, gzipped (about 4.8 MB to 1.4 MB, compressed once, off the event loop) for clients that accept it. */
async function scalarScript(acceptEncoding: string | null): Promise<Response> {
  const headers: Record<string, string> = {
    'content-type': 'text/javascript; charset=utf-8',
    // The URL carries the package version, so a cached copy is never stale.
    'cache-control': 'public, max-age=31536000, immutable',
    vary: 'accept-encoding',
  };
  if (!/\bgzip\b/i.test(acceptEncoding ?? '')) return new Response(SCALAR_SOURCE, { headers });
  scalarGzip ??= promisify(gzip)(SCALAR_SOURCE).then((buffer) => new Uint8Array(buffer));
  return new Response(await scalarGzip, { headers: { ...headers, 'content-encoding': 'gzip' } });
}

/**
 * Scalar's configuration for /docs: the script from the gateway and everything
 * that would reach Scalar's services off, so the page fetches nothing but the
 * gateway's own URLs.
 */
// The plugin types `scalar` with Scalar's parsed configuration, where every option that has a default is
// required; Scalar fills in what is left out. `agent` is a per-document option, read from this one document.
type ScalarOptions = NonNullable<NonNullable<Parameters<typeof openapi>[0]>['scalar']>;
export const SCALAR_CONFIG: Partial<ScalarOptions> & { agent: { disabled: boolean } } = {
  cdn: `${SCALAR_SCRIPT_PATH}?v=${SCALAR_VERSION}`,
  // Inter and JetBrains Mono from fonts.scalar.com; system fonts instead.
  withDefaultFonts: false,
  telemetry: false,
  // "Ask AI" (Agent Scalar, on by default when the page is on localhost): api.scalar.com and registry.scalar.com.
  agent: { disabled: true },
  // The MCP / "explore" entries in the sidebar footer: Scalar's dashboard and share upload.
  mcp: { disabled: true },
  // The developer toolbar (shown on localhost by default): sharing the document through api.scalar.com.
  showDeveloperTools: 'never' as const,
  // "Open in API Client" links to client.scalar.com; the built-in test request client stays (it calls the gateway directly).
  hideClientButton: true,
};

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

/** The OpenAPI document at /openapi.json and rendered docs at /docs (with no request leaving the gateway). */
export function apiDocs(version: string) {
  return new Elysia({ name: 'api-docs' })
    .onAfterHandle({ as: 'global' }, ({ path, response }) => {
      if (path === SPEC_PATH && response && typeof response === 'object') dropVoidContent(response as never);
    })
    .get(SCALAR_SCRIPT_PATH, ({ request }) => scalarScript(request.headers.get('accept-encoding')), { detail: { hide: true } })
    .use(
      openapi({
        path: DOCS_PATH,
        specPath: SPEC_PATH,
        provider: 'scalar',
        scalar: SCALAR_CONFIG as ScalarOptions,
        documentation: {
          info: {
            title: 'wgs — WhatsApp gateway API',
            version,
            description:
              'Multi-tenant WhatsApp API gateway. Tenants use `/api` with a Bearer API key; operators use `/admin` with `X-Admin-API-Secret`. Every error is `{error, code}` with the matching HTTP status; on every route a JSON body nested deeper than 64 levels is 400 `body_too_deep`. ' +
              "Rate limits: a plan may limit `/api` requests per minute per API key and per tenant. Every `/api` response of a limited tenant, errors included, carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the window ends; the limit closest to exhaustion); past a limit any `/api` route answers 429 `rate_limited` with `Retry-After` and does nothing.",
          },
          tags: [
            { name: 'health', description: 'liveness and readiness' },
            { name: 'admin', description: 'operator API: users, API keys, nodes' },
            { name: 'tenant', description: 'tenant API' },
            { name: 'instances', description: 'WhatsApp numbers: lifecycle, QR, messages' },
            { name: 'campaigns', description: 'bulk send: up to 10,000 paced messages from one number, progress, cancel' },
            { name: 'events', description: 'live event streams (Server-Sent Events) with resume from the event log, and stream tokens for browsers' },
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
