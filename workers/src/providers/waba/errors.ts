/**
 * Meta's Graph / Cloud API errors and what the gateway calls them.
 *
 * One table (META_ERROR_TABLE), every row checked against Meta's
 * "WhatsApp error codes" reference
 * (https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes/,
 * formerly https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/)
 * and Graph API "Handling errors"
 * (https://developers.facebook.com/docs/graph-api/guides/error-handling) for
 * the envelope `{error: {message, type, code, error_subcode?, error_data:
 * {details}, fbtrace_id}}`. Meta recommends building on `code` and
 * `error_data.details`, never on the title in `message`.
 */
import { ProviderError } from '../types';

/** The gateway's codes for a failed Cloud API call (it maps them to HTTP statuses). */
export type WabaErrorCode =
  | 'template_required'
  | 'undeliverable'
  | 'spam_rate_limited'
  | 'ecosystem_limited'
  | 'template_error'
  | 'rate_limited'
  | 'provider_auth_failed'
  | 'provider_rejected'
  | 'media_failed'
  | 'account_restricted'
  | 'provider_error'
  | 'provider_unreachable';

/** One row: Meta's code (or an inclusive range), the gateway code, whether a retry may succeed, Meta's title. */
export interface MetaErrorRow {
  codes: number | readonly [number, number];
  code: WabaErrorCode;
  /** Meta's throughput / transient errors: retried with backoff (see graph.ts). */
  transient?: boolean;
  title: string;
}

/**
 * Meta error code → gateway code. Order matters only for ranges: the first
 * row that matches wins (single codes are listed before the ranges that
 * contain them). 100 with subcode 33 is handled in `classify`.
 */
export const META_ERROR_TABLE: readonly MetaErrorRow[] = [
  // Authorization: the token is expired, invalid or lacks a permission.
  { codes: 0, code: 'provider_auth_failed', title: 'AuthException' },
  { codes: 3, code: 'provider_auth_failed', title: 'API Method (capability or permissions issue)' },
  { codes: 10, code: 'provider_auth_failed', title: 'Permission Denied' },
  { codes: 190, code: 'provider_auth_failed', title: 'Access token has expired' },
  { codes: [200, 299], code: 'provider_auth_failed', title: 'API Permission' },
  // Throttling: retried, then reported with retryAfter.
  { codes: 4, code: 'rate_limited', transient: true, title: 'API Too Many Calls' },
  { codes: 80007, code: 'rate_limited', transient: true, title: 'Rate limit issues' },
  { codes: 130429, code: 'rate_limited', transient: true, title: 'Rate limit hit (Cloud API throughput)' },
  { codes: 131056, code: 'rate_limited', transient: true, title: '(Business Account, Consumer Account) pair rate limit hit' },
  { codes: 131048, code: 'spam_rate_limited', title: 'Spam rate limit hit' },
  { codes: 131049, code: 'ecosystem_limited', title: 'Meta chose not to deliver' },
  // Integrity / account state.
  { codes: 368, code: 'account_restricted', title: 'Temporarily blocked for policies violations' },
  { codes: 131031, code: 'account_restricted', title: 'Account has been locked' },
  { codes: 130497, code: 'account_restricted', title: 'Business account is restricted from messaging users in this country' },
  { codes: 131042, code: 'account_restricted', title: 'Business eligibility payment issue' },
  { codes: 133010, code: 'account_restricted', title: 'Phone number not registered on the WhatsApp Business Platform' },
  // Recipient and conversation window.
  { codes: 131047, code: 'template_required', title: 'Re-engagement message (more than 24 hours since the customer last replied)' },
  { codes: 131026, code: 'undeliverable', title: 'Message Undeliverable' },
  { codes: 131050, code: 'undeliverable', title: 'User stopped marketing messages' },
  { codes: 130472, code: 'undeliverable', title: "User's number is part of an experiment" },
  // Media.
  { codes: 131052, code: 'media_failed', title: 'Media download error' },
  { codes: 131053, code: 'media_failed', title: 'Media upload error' },
  // Templates.
  { codes: [132000, 132999], code: 'template_error', title: 'Template error (param count, missing, paused, disabled, format…)' },
  // The request itself.
  { codes: 100, code: 'provider_rejected', title: 'Invalid parameter' },
  { codes: 33, code: 'provider_rejected', title: 'Parameter value is not valid' },
  { codes: 131008, code: 'provider_rejected', title: 'Required parameter is missing' },
  { codes: 131009, code: 'provider_rejected', title: 'Parameter value is not valid' },
  { codes: 131021, code: 'provider_rejected', title: 'Recipient cannot be sender' },
  { codes: 131051, code: 'provider_rejected', title: 'Unsupported message type' },
  { codes: 131005, code: 'provider_rejected', title: 'Access denied' },
  { codes: 131045, code: 'provider_rejected', title: 'Incorrect certificate (phone number registration error)' },
  { codes: 135000, code: 'provider_rejected', title: 'Generic user error' },
  // Meta's side: unknown or temporarily unavailable.
  { codes: 1, code: 'provider_error', transient: true, title: 'API Unknown' },
  { codes: 2, code: 'provider_error', transient: true, title: 'API Service (temporary downtime or overload)' },
  { codes: 131000, code: 'provider_error', transient: true, title: 'Something went wrong' },
  { codes: 131016, code: 'provider_error', transient: true, title: 'Service unavailable' },
  { codes: 131057, code: 'provider_error', title: 'Account in maintenance mode' },
];

/** An error answered by the Graph API (its envelope), or a failure to reach it. */
export interface MetaError {
  /** Meta's code; undefined when the Graph API answered without its envelope or was not reached. */
  code?: number;
  subcode?: number;
  message: string;
  /** `error_data.details` (sync) or `error_data.details` of a status webhook error. */
  details?: string;
  title?: string;
  httpStatus?: number;
  /** Seconds from a Retry-After header. */
  retryAfter?: number;
  /** Not reached at all (connection refused, DNS, timeout). */
  network?: boolean;
}

export interface Classified {
  code: WabaErrorCode;
  transient: boolean;
  /** The token is unusable: the provider turns `failed`. */
  auth: boolean;
}

function rowFor(code: number): MetaErrorRow | undefined {
  return META_ERROR_TABLE.find((row) =>
    typeof row.codes === 'number' ? row.codes === code : code >= row.codes[0] && code <= row.codes[1],
  );
}

/** The gateway code for one Meta error (plus whether a retry may help and whether the token is at fault). */
export function classify(err: MetaError): Classified {
  if (err.network) return { code: 'provider_unreachable', transient: true, auth: false };
  if (err.code === undefined) {
    // No Graph envelope: a proxy or load balancer answered.
    const server = (err.httpStatus ?? 500) >= 500;
    if (err.httpStatus === 429) return { code: 'rate_limited', transient: true, auth: false };
    if (err.httpStatus === 401) return { code: 'provider_auth_failed', transient: false, auth: true };
    return { code: server ? 'provider_error' : 'provider_rejected', transient: server, auth: false };
  }
  // 100/33: the phone number or WABA id does not exist or the token cannot see it (missing permission).
  if (err.code === 100 && err.subcode === 33) return { code: 'provider_auth_failed', transient: false, auth: true };
  const row = rowFor(err.code);
  if (row) {
    return { code: row.code, transient: Boolean(row.transient), auth: row.code === 'provider_auth_failed' };
  }
  // Unknown code: Meta's 5xx are their side (retry), anything else is a refusal.
  const server = (err.httpStatus ?? 400) >= 500;
  return { code: server ? 'provider_error' : 'provider_rejected', transient: server, auth: false };
}

/** True when the token itself is dead (expired, invalidated): the number cannot be used until it is replaced. */
export function isTokenDead(err: MetaError): boolean {
  return err.code === 190 || err.code === 0 || (err.code === undefined && err.httpStatus === 401);
}

/** `<Meta's message> (Meta error <code>[/<subcode>]: <details>)` */
export function describeMeta(err: MetaError): string {
  if (err.code === undefined) return err.message;
  const id = err.subcode !== undefined ? `${err.code}/${err.subcode}` : String(err.code);
  const extra = err.details && err.details !== err.message ? `: ${err.details}` : '';
  return `${err.message} (Meta error ${id}${extra})`;
}

/** The ProviderError a command fails with. */
export function toProviderError(err: MetaError, context?: string): ProviderError {
  const { code } = classify(err);
  const message = context ? `${context}: ${describeMeta(err)}` : describeMeta(err);
  const details: { providerCode?: number; retryAfter?: number } = {};
  if (err.code !== undefined) details.providerCode = err.code;
  if (err.retryAfter !== undefined) details.retryAfter = err.retryAfter;
  else if (code === 'rate_limited') details.retryAfter = 60;
  return new ProviderError(code, message, { details });
}

/**
 * Reads a Graph error envelope from a response body (already parsed JSON or
 * undefined) into a MetaError.
 */
export function parseGraphError(httpStatus: number, body: unknown, retryAfter?: number): MetaError {
  const error = (body as { error?: Record<string, unknown> } | undefined)?.error;
  if (error && typeof error === 'object' && typeof error.code === 'number') {
    const data = error.error_data as { details?: unknown } | undefined;
    return {
      code: error.code,
      ...(typeof error.error_subcode === 'number' && { subcode: error.error_subcode }),
      message: typeof error.message === 'string' && error.message ? error.message : `Graph API error ${error.code}`,
      ...(typeof data?.details === 'string' && { details: data.details }),
      ...(typeof error.error_user_msg === 'string' && !data?.details && { details: error.error_user_msg }),
      httpStatus,
      ...(retryAfter !== undefined && { retryAfter }),
    };
  }
  return { message: `the Graph API answered HTTP ${httpStatus}`, httpStatus, ...(retryAfter !== undefined && { retryAfter }) };
}

/**
 * The error object of a `failed` status webhook
 * (`{code, title, message, error_data: {details}, href}`) as a MetaError.
 */
export function parseStatusError(raw: unknown): MetaError | undefined {
  if (!raw || typeof raw !== 'object') return undefined;
  const e = raw as { code?: unknown; title?: unknown; message?: unknown; error_data?: { details?: unknown } };
  if (typeof e.code !== 'number') return undefined;
  const title = typeof e.title === 'string' ? e.title : undefined;
  const message = typeof e.message === 'string' && e.message ? e.message : (title ?? `Meta error ${e.code}`);
  const details = typeof e.error_data?.details === 'string' ? e.error_data.details : undefined;
  return { code: e.code, message, ...(title && { title }), ...(details && { details }) };
}

/** Seconds from a Retry-After header (seconds or an HTTP date); undefined when absent or unreadable. */
export function parseRetryAfter(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now) / 1000));
}
