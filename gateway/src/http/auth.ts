import { Elysia } from 'elysia';
import { resolveApiKey, secretsEqual } from '../auth/api-keys';
import type { User } from '../db/schema';
import { unauthorized } from './errors';
import type { AppDeps } from './context';
import { RateLimiter } from '../ratelimit/limiter';
import { enforceRateLimit } from '../ratelimit/enforce';
import { streamTokenUser, verifyStreamToken } from '../auth/stream-tokens';

export const ADMIN_HEADER = 'x-admin-api-secret';

/** The tenant and the API key (id) of each /api request, resolved by the request hook (the key directly or through a stream token). */
const callerOf = new WeakMap<Request, { user: User; keyId: number }>();

/** The event stream routes: the only ones a stream token (`?token=`) opens. */
export const STREAM_PATH_RE = /^\/api\/(?:instances\/[^/]+\/)?events\/stream\/?$/;

/**
 * Authentication runs on every request before body parsing and validation, so
 * an unauthenticated caller learns nothing about a route's input rules:
 * /admin needs X-Admin-API-Secret, /api needs a Bearer API key. /api
 * requests are then rate limited per key and per tenant (ratelimit/).
 */
export function authentication({ database, adminSecret, logger, secrets }: AppDeps) {
  const limiter = new RateLimiter(database, logger);
  return new Elysia({ name: 'authentication' }).onRequest(async ({ request, set }) => {
    const path = new URL(request.url).pathname;
    if (path === '/admin' || path.startsWith('/admin/')) {
      const given = request.headers.get(ADMIN_HEADER);
      if (!given) throw unauthorized('missing X-Admin-API-Secret header');
      if (!secretsEqual(given, adminSecret)) throw unauthorized('invalid X-Admin-API-Secret');
    } else if (path === '/api' || path.startsWith('/api/')) {
      const header = request.headers.get('authorization');
      const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
      const token = !match && STREAM_PATH_RE.test(path) ? new URL(request.url).searchParams.get('token') : null;
      let found: { user: User; keyId: number } | null;
      if (token) {
        const check = verifyStreamToken(secrets, token);
        if (!check.ok) throw unauthorized(check.reason);
        const user = await streamTokenUser(database.db, check.keyId, check.userId);
        if (!user) throw unauthorized('invalid stream token: its API key was deleted');
        found = { user, keyId: check.keyId };
      } else {
        if (!match) throw unauthorized('missing Authorization: Bearer <apiKey> header');
        found = await resolveApiKey(database.db, match[1]!);
        if (!found) throw unauthorized('invalid API key');
      }
      await enforceRateLimit(limiter, found.user.id, found.keyId, set.headers);
      callerOf.set(request, found);
    }
  });
}

/** The authenticated tenant of an /api request. */
export function tenant(request: Request): User {
  const user = callerOf.get(request)?.user;
  if (!user) throw unauthorized('missing Authorization: Bearer <apiKey> header');
  return user;
}

/** The id of the API key an /api request authenticated with. */
export function apiKeyId(request: Request): number {
  const id = callerOf.get(request)?.keyId;
  if (id === undefined) throw unauthorized('missing Authorization: Bearer <apiKey> header');
  return id;
}

export const adminSecurity = [{ adminSecret: [] as string[] }];
export const tenantSecurity = [{ apiKey: [] as string[] }];
