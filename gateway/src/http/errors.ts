import { t } from 'elysia';

/** Every error the API returns has this body. */
export const ErrorBody = t.Object(
  {
    error: t.String({ description: 'human-readable message naming the problem' }),
    code: t.String({ description: 'machine-readable code, e.g. `not_found`, `validation_failed`' }),
    providerCode: t.Optional(t.Integer({ description: "the engine's own error code when it gave one, e.g. Meta's 131047 for a waba send" })),
  },
  { title: 'Error' },
);

/** A domain error with its HTTP status; mapped to a response in one place (app.ts). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Meta's (or another engine's) own error code, kept in the body; seconds for a Retry-After header. */
    readonly extra: { providerCode?: number; retryAfter?: number } = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const notFound = (what: string) => new ApiError(404, 'not_found', `${what} not found`);
export const conflict = (code: string, message: string) => new ApiError(409, code, message);
export const badRequest = (code: string, message: string) => new ApiError(400, code, message);
export const unauthorized = (message: string) => new ApiError(401, 'unauthorized', message);

/** The Postgres SQLSTATE of an error, looking through drizzle's wrapper. */
export function sqlState(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

export const UNIQUE_VIOLATION = '23505';
export const FOREIGN_KEY_VIOLATION = '23503';

interface ValidationIssue {
  path?: string;
  message?: string;
  value?: unknown;
  schema?: { error?: unknown; pattern?: string; description?: string };
  /** For a union: one iterator of errors per variant. */
  errors?: Iterable<ValidationIssue>[];
}

/** A union's own error says little; the deepest error among its variants names the field. */
function deepest(issue: ValidationIssue): ValidationIssue {
  let best = issue;
  for (const variant of issue.errors ?? []) {
    for (const nested of variant) {
      const candidate = deepest(nested);
      if ((candidate.path ?? '').length > (best.path ?? '').length) best = candidate;
      break;
    }
  }
  return best;
}

/**
 * Elysia validation issues rendered as one message naming the field: a
 * missing field "is required"; otherwise the schema's own `error` text when it
 * has one, else the validator's message.
 */
export function describeValidation(on: string, issues: ValidationIssue[]): string {
  if (!issues[0]) return `invalid ${on}`;
  const first = deepest(issues[0]);
  // Array items by index, as in JavaScript: /messages/17/to → messages[17].to.
  const field = (first.path ?? '').replace(/\/(\d+)(?=\/|$)/g, '[$1]').replace(/^\//, '').replaceAll('/', '.');
  const where = on === 'body' ? 'field' : on === 'params' ? 'path parameter' : on === 'query' ? 'query parameter' : on;
  if (!field) return `invalid ${on}: ${first.message ?? 'is invalid'}`;
  let reason: string;
  if (first.value === undefined) reason = 'is required';
  else if (typeof first.schema?.error === 'string') reason = first.schema.error;
  else if (first.schema?.pattern) reason = `must match ${first.schema.pattern}`;
  else reason = (first.message ?? 'is invalid').replace(/^Expected/, 'expected');
  return `invalid ${where} '${field}': ${reason}`;
}

/** OpenAPI response entries for the errors a route can return. */
export function errorResponses(...statuses: number[]): Record<number, typeof ErrorBody> {
  return Object.fromEntries(statuses.map((s) => [s, ErrorBody]));
}

/** A 204 entry for a route's `response`: an empty body. See openapi.ts for how it is documented. */
export const noContent = { 204: t.Void({ description: 'No Content' }) };
