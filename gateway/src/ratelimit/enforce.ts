import { ApiError } from '../http/errors';
import type { RateLimiter } from './limiter';
import { rateLimitHeaders, refusal } from './policy';

/**
 * Counts an authenticated /api request: puts the RateLimit-* headers on the
 * response (set in the request hook, Elysia adds them to every response,
 * errors included), and refuses it with 429 before any route runs.
 */
export async function enforceRateLimit(limiter: RateLimiter, userId: number, keyId: number, headers: Record<string, string | number>): Promise<void> {
  const decision = await limiter.check(userId, keyId);
  if (!decision) return;
  Object.assign(headers, rateLimitHeaders(decision));
  if (!decision.allowed) {
    throw new ApiError(429, 'rate_limited', refusal(decision, limiter.window), { retryAfter: decision.reported.resetSeconds });
  }
}
