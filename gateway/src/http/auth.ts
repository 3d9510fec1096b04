import { Elysia } from 'elysia';
import { resolveApiKey, secretsEqual } from '../auth/api-keys';
import type { User } from '../db/schema';
import { unauthorized } from './errors';
import type { AppDeps } from './context';
import { RateLimiter } from '../ratelimit/limiter';
import { enforceRateLimit } from '../ratelimit/enforce';

export const ADMIN_HEADER = 'x-admin-api-secret';

/** Users resolved by the request hook, read back by the /api routes. */
const tenantOf = new WeakMap<Request, User>();

/**
 * Authentication runs on every request before body parsing and validation, so
 * an unauthenticated caller learns nothing about a route's input rules:
 * /admin needs X-Admin-API-Secret, /api needs a Bearer API key. /api
 * requests are then rate limited per key and per tenant (ratelimit/).
 */
export function authentication({ database, adminSecret, logger }: AppDeps) {
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
      if (!match) throw unauthorized('missing Authorization: Bearer <apiKey> header');
      const found = await resolveApiKey(database.db, match[1]!);
      if (!found) throw unauthorized('invalid API key');
      await enforceRateLimit(limiter, found.user.id, found.keyId, set.headers);
      tenantOf.set(request, found.user);
    }
  });
}

/** The authenticated tenant of an /api request. */
export function tenant(request: Request): User {
  const user = tenantOf.get(request);
  if (!user) throw unauthorized('missing Authorization: Bearer <apiKey> header');
  return user;
}

export const adminSecurity = [{ adminSecret: [] as string[] }];
export const tenantSecurity = [{ apiKey: [] as string[] }];
