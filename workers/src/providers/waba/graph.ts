/**
 * A small Graph API client for the Cloud API: Bearer token, JSON, one
 * timeout per attempt, and retries with exponential backoff and jitter for
 * Meta's transient errors only (errors.ts decides which).
 *
 * What is retried:
 * - an answer carrying a transient Meta code (throughput 4, 80007, 130429,
 *   131056; server 1, 2, 131000, 131016) or an HTTP 5xx with Meta's error
 *   envelope: Meta said the call failed, so repeating it cannot send twice;
 * - network errors, timeouts and 5xx without Meta's envelope, but only for
 *   idempotent calls (GET, media upload, read receipts). A POST /messages
 *   that timed out or was cut by a proxy may have been accepted by Meta:
 *   it is not repeated but reported as provider_unreachable / provider_error,
 *   so a message is never sent twice behind the caller's back.
 * A Retry-After header, when present, sets the wait (capped at MAX_WAIT_MS).
 *
 * The token only ever goes into the Authorization header; URLs and errors
 * that are logged never contain it.
 */
import type { Logger } from '../../logger';
import { classify, parseGraphError, parseRetryAfter, type MetaError } from './errors';

export interface GraphClientOptions {
  baseUrl: string;
  version: string;
  accessToken: string;
  timeoutMs: number;
  maxRetries: number;
  log: Logger;
  /** Backoff base (ms); tests shorten it. */
  retryBaseMs?: number;
  random?: () => number;
}

/** A failed Graph call; `meta` says what Meta (or the network) answered. */
export class GraphCallError extends Error {
  override name = 'GraphCallError';
  constructor(
    readonly meta: MetaError,
    readonly attempts: number,
  ) {
    super(meta.message);
  }
}

/** The longest a single retry waits, whatever Retry-After says. */
const MAX_WAIT_MS = 30_000;

export interface CallOptions {
  query?: Record<string, string>;
  json?: unknown;
  form?: FormData;
  /** Safe to repeat after a network error or an ambiguous 5xx (default: GET yes, POST no). */
  idempotent?: boolean;
  /** Overrides maxRetries (the connection check retries on its own schedule: 0). */
  retries?: number;
}

export class GraphClient {
  readonly origin: string;

  constructor(private readonly opts: GraphClientOptions) {
    this.origin = new URL(opts.baseUrl).origin;
  }

  /** `<base>/<version>/<path>` */
  url(path: string, query?: Record<string, string>): URL {
    const url = new URL(`${this.opts.baseUrl}/${this.opts.version}/${path.replace(/^\/+/, '')}`);
    for (const [k, v] of Object.entries(query ?? {})) url.searchParams.set(k, v);
    return url;
  }

  get<T = Record<string, unknown>>(path: string, query?: Record<string, string>, opts: { retries?: number } = {}): Promise<T> {
    return this.call<T>('GET', this.url(path, query), { idempotent: true, ...opts });
  }

  post<T = Record<string, unknown>>(path: string, body: { json?: unknown; form?: FormData }, idempotent: boolean): Promise<T> {
    return this.call<T>('POST', this.url(path), { ...body, idempotent });
  }

  /** GET of an absolute URL on the Graph API (paging.next). */
  getAbsolute<T = Record<string, unknown>>(url: URL): Promise<T> {
    return this.call<T>('GET', url, { idempotent: true });
  }

  async call<T>(method: 'GET' | 'POST', url: URL, opts: CallOptions = {}): Promise<T> {
    const idempotent = opts.idempotent ?? method === 'GET';
    const maxRetries = opts.retries ?? this.opts.maxRetries;
    const path = url.pathname;
    for (let attempt = 0; ; attempt++) {
      let failure: MetaError;
      try {
        const res = await fetch(url, {
          method,
          headers: {
            authorization: `Bearer ${this.opts.accessToken}`,
            accept: 'application/json',
            ...(opts.json !== undefined && { 'content-type': 'application/json' }),
          },
          body: opts.json !== undefined ? JSON.stringify(opts.json) : opts.form,
          signal: AbortSignal.timeout(this.opts.timeoutMs),
          redirect: 'error',
        });
        const text = await res.text();
        let body: unknown;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          body = undefined;
        }
        if (res.ok) {
          if (body === undefined || typeof body !== 'object') {
            throw new GraphCallError({ message: `the Graph API answered ${method} ${path} with something other than JSON`, httpStatus: res.status }, attempt + 1);
          }
          return body as T;
        }
        failure = parseGraphError(res.status, body, parseRetryAfter(res.headers.get('retry-after')));
      } catch (err) {
        if (err instanceof GraphCallError) throw err;
        failure = networkError(err, this.opts.timeoutMs, url.origin);
      }
      const { transient } = classify(failure);
      // Meta's own envelope says the call failed: safe to repeat. Otherwise only when the call is idempotent.
      const safe = idempotent || (failure.code !== undefined && !failure.network);
      if (!transient || !safe || attempt >= maxRetries) {
        this.opts.log.debug({ method, path, attempt, code: failure.code, httpStatus: failure.httpStatus }, 'Graph API call failed');
        throw new GraphCallError(failure, attempt + 1);
      }
      const waitMs = failure.retryAfter !== undefined ? Math.min(MAX_WAIT_MS, failure.retryAfter * 1000) : this.backoff(attempt);
      this.opts.log.info({ method, path, attempt, code: failure.code, httpStatus: failure.httpStatus, waitMs }, 'Graph API call failed; retrying');
      await Bun.sleep(waitMs);
    }
  }

  /**
   * Downloads media bytes from a URL the Graph API gave (`GET /{media-id}` →
   * url) with the Bearer token, at most `maxBytes`. Accepted only when the
   * URL is https or on the Graph API's own origin (the fake Graph in tests),
   * so the token never goes anywhere else in clear text.
   */
  async download(rawUrl: string, maxBytes: number): Promise<{ bytes: Buffer } | { tooLarge: number }> {
    let url: URL;
    try {
      url = new URL(rawUrl);
    } catch {
      throw new Error('the media URL from the Graph API is not a URL');
    }
    if (url.protocol !== 'https:' && url.origin !== this.origin) {
      throw new Error(`refusing to send the token to a non-https media URL (${url.origin})`);
    }
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.downloadOnce(url, maxBytes);
      } catch (err) {
        if (!(err instanceof RetryableDownload) || attempt >= this.opts.maxRetries) throw err instanceof RetryableDownload ? err.cause : err;
        await Bun.sleep(this.backoff(attempt));
      }
    }
  }

  private async downloadOnce(url: URL, maxBytes: number): Promise<{ bytes: Buffer } | { tooLarge: number }> {
    let res: Response;
    try {
      res = await fetch(url, {
        headers: { authorization: `Bearer ${this.opts.accessToken}` },
        signal: AbortSignal.timeout(Math.max(this.opts.timeoutMs, 60_000)),
        redirect: 'error',
      });
    } catch (err) {
      throw new RetryableDownload(new Error(`downloading the media failed: ${networkError(err, this.opts.timeoutMs, url.origin).message}`));
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      const error = new Error(`downloading the media failed: HTTP ${res.status}`);
      if (res.status >= 500 || res.status === 429) throw new RetryableDownload(error);
      throw error;
    }
    const declared = Number(res.headers.get('content-length'));
    if (Number.isFinite(declared) && declared > maxBytes) {
      await res.body?.cancel().catch(() => {});
      return { tooLarge: declared };
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    const reader = res.body?.getReader();
    if (!reader) return { bytes: Buffer.alloc(0) };
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        return { tooLarge: size };
      }
      chunks.push(value);
    }
    return { bytes: Buffer.concat(chunks) };
  }

  private backoff(attempt: number): number {
    const base = this.opts.retryBaseMs ?? 500;
    const exponential = Math.min(MAX_WAIT_MS, base * 2 ** attempt);
    // Full jitter between half and the whole delay, so retries of many workers spread out.
    return Math.round(exponential * (0.5 + 0.5 * (this.opts.random ?? Math.random)()));
  }
}

class RetryableDownload extends Error {
  constructor(override readonly cause: Error) {
    super(cause.message);
  }
}

function networkError(err: unknown, timeoutMs: number, origin: string): MetaError {
  const e = err as { name?: string; message?: string; code?: string };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') {
    return { message: `the Graph API at ${origin} did not answer within ${timeoutMs} ms`, network: true };
  }
  const detail = e?.code ? `${e.code}: ${e.message ?? ''}` : (e?.message ?? String(err));
  return { message: `cannot reach the Graph API at ${origin} (${detail.trim()})`, network: true };
}
