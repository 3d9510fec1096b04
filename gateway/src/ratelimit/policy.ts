/**
 * Pure rate-limit decisions: which windows a request counts in, whether the
 * counts allow it, and the response headers. The I/O lives in limiter.ts.
 */

export type Scope = 'key' | 'tenant';

/** A plan's limits in requests per window; null: unlimited (not counted). */
export interface Limits {
  perKey: number | null;
  perTenant: number | null;
}

/** One limit as counted in the current window. */
export interface WindowState {
  scope: Scope;
  limit: number;
  /** Requests counted in this window, this one included. */
  count: number;
  /** Seconds until the window ends (whole seconds, at least 1). */
  resetSeconds: number;
}

export interface Decision {
  allowed: boolean;
  /** The limit the headers report: the one refusing the request, or else the one closest to exhaustion. */
  reported: WindowState;
}

/** The rate_limit_windows keys a request counts in: only limits that exist. */
export function windowKeys(limits: Limits, userId: number, keyId: number): { scope: Scope; key: string; limit: number }[] {
  const keys: { scope: Scope; key: string; limit: number }[] = [];
  if (limits.perKey !== null) keys.push({ scope: 'key', key: `key:${keyId}`, limit: limits.perKey });
  if (limits.perTenant !== null) keys.push({ scope: 'tenant', key: `tenant:${userId}`, limit: limits.perTenant });
  return keys;
}

const remaining = (s: WindowState) => Math.max(0, s.limit - s.count);

/**
 * Allowed while every counted window is within its limit. The reported
 * window is the one with the fewest requests left (on a tie, the per-key one:
 * it is listed first), so a refused request reports a limit with 0 left.
 */
export function decide(states: WindowState[]): Decision | null {
  if (states.length === 0) return null;
  const refused = states.find((s) => s.count > s.limit);
  const reported = refused ?? states.reduce((a, b) => (remaining(b) < remaining(a) ? b : a));
  return { allowed: !refused, reported };
}

/**
 * RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset (delta seconds),
 * the form of draft-ietf-httpapi-ratelimit-headers up to -06, which API
 * gateways and client libraries widely read; later drafts fold them into
 * `RateLimit` / `RateLimit-Policy` structured fields, not yet an RFC.
 */
export function rateLimitHeaders(d: Decision): Record<string, string> {
  return {
    'ratelimit-limit': String(d.reported.limit),
    'ratelimit-remaining': String(remaining(d.reported)),
    'ratelimit-reset': String(d.reported.resetSeconds),
  };
}

/** The 429 message: names the limit and when it resets. */
export function refusal(d: Decision, windowSeconds: number): string {
  const per = windowSeconds === 60 ? 'per minute' : `per ${windowSeconds} s`;
  const scope = d.reported.scope === 'key' ? 'for this API key' : "for this tenant (all of its API keys together)";
  return `rate limit of ${d.reported.limit} requests ${per} ${scope} exceeded; it resets in ${d.reported.resetSeconds} s`;
}
