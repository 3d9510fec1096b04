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

/**
 * A Postgres error caused by a value the client sent, as the 400 it answers
 * (undefined for any other error). Class 22 (data exception): a value Postgres
 * cannot store. Class 54 (program limit exceeded): one past its limits, e.g.
 * a jsonb value nested deeper than its stack allows. Neither names a column
 * or echoes the value.
 */
export function clientDatabaseError(err: unknown): ApiError | undefined {
  const state = sqlState(err);
  if (state?.startsWith('22')) {
    return new ApiError(400, 'invalid_value', 'a value in the request cannot be stored: a text with a NUL character or an unpaired UTF-16 surrogate, or a number or date out of range');
  }
  if (state === '54001') return new ApiError(400, 'value_too_complex', 'a value in the request is nested too deeply to be stored');
  if (state?.startsWith('54')) return new ApiError(400, 'value_too_complex', 'a value in the request is too large or too complex to be stored');
  return undefined;
}

const LOG_TEXT_MAX = 1_000;
const clip = (text: string) => (text.length > LOG_TEXT_MAX ? `${text.slice(0, LOG_TEXT_MAX)}... (${text.length} characters)` : text);

/**
 * An error as the log records it: type, code, message and stack, and its
 * causes, each text cut to 1,000 characters, and without the query
 * parameters drizzle's error carries (its `params` and its message's
 * `params:` line): those are the request's content, possibly tens of kB.
 */
export function errorForLog(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) return typeof err === 'string' ? clip(err) : err;
  const e = err as Error & Record<string, unknown>;
  const message = clip(Array.isArray(e.params) ? e.message.replace(/\nparams: [\s\S]*$/, '') : e.message);
  const frames = (e.stack ?? '').split('\n').filter((line) => /^\s+at /.test(line)).slice(0, 20);
  const out: Record<string, unknown> = { type: e.constructor?.name ?? e.name, message, stack: [`${e.name}: ${message}`, ...frames].join('\n') };
  if (typeof e.code === 'string' || typeof e.code === 'number') out.code = e.code;
  // What a PostgresError adds that helps (not its query or parameters, which it keeps non-enumerable).
  for (const key of ['detail', 'hint', 'where', 'table_name', 'column_name', 'constraint_name', 'routine']) {
    if (typeof e[key] === 'string') out[key] = clip(e[key] as string);
  }
  if (e.cause !== undefined && depth < 3) out.cause = errorForLog(e.cause, depth + 1);
  return out;
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
