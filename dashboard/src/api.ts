/**
 * The gateway's API as the dashboard uses it: the signed-in credentials
 * (session storage only, never in a URL), JSON calls that throw the
 * gateway's `{error, code}` as an ApiError, and live event streams (Server-Sent
 * Events opened with a short-lived stream token, renewed and resumed by
 * event id when the stream closes).
 */

export class ApiError extends Error {
  status: number;
  code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

const KEY_ITEM = 'wgs.apiKey';
const ADMIN_ITEM = 'wgs.adminSecret';

function stored(name: string): string | null {
  try {
    return sessionStorage.getItem(name);
  } catch {
    return null; // storage disabled: signed out
  }
}

/** Who is signed in, kept in sessionStorage (gone with the tab); `save()` after changing the fields. */
export const session: { apiKey: string | null; adminSecret: string | null; save(): void; clear(): void } = {
  apiKey: stored(KEY_ITEM),
  adminSecret: stored(ADMIN_ITEM),
  save() {
    const put = (name: string, value: string | null) => (value ? sessionStorage.setItem(name, value) : sessionStorage.removeItem(name));
    put(KEY_ITEM, this.apiKey);
    put(ADMIN_ITEM, this.adminSecret);
  },
  clear() {
    this.apiKey = null;
    this.adminSecret = null;
    sessionStorage.removeItem(KEY_ITEM);
    sessionStorage.removeItem(ADMIN_ITEM);
  },
};

/**
 * One API call: `Authorization: Bearer <apiKey>` (or `X-Admin-API-Secret` with
 * `admin`), a JSON body (or `form` as multipart), the JSON answer (undefined
 * for 204). A non-2xx answer throws an ApiError with the gateway's code and
 * message; an unreachable gateway throws one with status 0, code `network_error`.
 */
export async function api<T = any>(method: string, path: string, body?: unknown, opts: { admin?: boolean; form?: FormData } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (opts.admin) {
    if (session.adminSecret) headers['x-admin-api-secret'] = session.adminSecret;
  } else if (session.apiKey) {
    headers.authorization = `Bearer ${session.apiKey}`;
  }
  let payload: BodyInit | undefined;
  if (opts.form) payload = opts.form;
  else if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: payload });
  } catch (err) {
    throw new ApiError(0, 'network_error', `cannot reach the gateway: ${err instanceof Error ? err.message : String(err)}`);
  }
  const text = await res.text();
  let parsed: any = undefined;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      if (res.ok) throw new ApiError(res.status, 'invalid_response', `${method} ${path} answered ${res.status} with a body that is not JSON`);
    }
  }
  if (!res.ok) {
    const code = typeof parsed?.code === 'string' ? parsed.code : `http_${res.status}`;
    const message = typeof parsed?.error === 'string' ? parsed.error : `${method} ${path} failed: ${res.status} ${res.statusText}`;
    throw new ApiError(res.status, code, message);
  }
  return parsed as T;
}

/** One event of a stream: the gateway's event log entry. */
export interface StreamEvent {
  id: number;
  type: string;
  instanceId: number;
  createdAt: string;
  data: any;
}

/** A page of the event log (`GET /api/instances/:id/events`, `GET /api/events`): `next` holds the query values for the next page. */
export interface EventPage {
  events: StreamEvent[];
  next?: { after?: number; before?: number };
  more: boolean;
}

/** The gateway's event types: what a stream without a `types` filter listens for (EventSource delivers named events only to their listeners), and what webhooks filter on. */
export const EVENT_TYPES = [
  // The gateway's event types (gateway/src/webhooks/subscriptions.ts EVENT_TYPES).
  'message.received',
  'message.status',
  'instance.status',
  'instance.qr',
  'instance.migrated',
  'instance.paused',
  'instance.resumed',
  'webhook.failed',
] as const;

/** What a stream without a `types` filter carries: the log's types, and `instance.deleted` (streams only, without an id). */
export const STREAM_EVENT_TYPES = [...EVENT_TYPES, 'instance.deleted'] as const;

/** Event ids a stream remembers to drop repeats. */
const SEEN_KEPT = 2000;

/** Waits after a failed open: 0.5 s, 1 s, 2 s … up to 15 s. */
const backoff = (attempt: number) => Math.min(15_000, 500 * 2 ** Math.min(attempt, 5));

/**
 * Opens a live event stream (`/api/events/stream` or
 * `/api/instances/:id/events/stream`) and calls `onEvent` for each event, in
 * order. EventSource reconnects by itself with Last-Event-ID; when the
 * gateway refuses the stream (the token expired: 401; the instance is gone:
 * 404) the EventSource closes, and this opens it again with a new token from
 * `lastEventId` on, so no event is lost or repeated. `onOpen` runs each time
 * the stream is open: the moment to (re)load REST state. Returns a function
 * that closes the stream for good.
 */
export function openStream(
  path: string,
  onEvent: (ev: StreamEvent) => void,
  opts: { types?: string[]; onOpen?: () => void; onError?: (err: ApiError) => void } = {},
): () => void {
  let closed = false;
  let source: EventSource | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let lastId: number | null = null;
  const seen = new Set<number>();
  let attempt = 0;

  const handle = (msg: MessageEvent) => {
    let ev: StreamEvent;
    try {
      ev = JSON.parse(msg.data);
    } catch {
      return; // not an event of the contract
    }
    // `instance.deleted` has no id (it is not in the log): never a repeat, and not a point to resume from.
    const id = ev.id === undefined ? NaN : Number(ev.id);
    if (Number.isFinite(id)) {
      // Delivery is at least once (a resume may overlap) and an event of a slow transaction may come
      // after higher ids: skip ids already handled, resume after the highest.
      if (seen.has(id)) return;
      seen.add(id);
      if (seen.size > SEEN_KEPT) seen.delete(seen.values().next().value!);
      if (lastId === null || id > lastId) lastId = id;
    }
    onEvent(ev);
  };

  const retry = () => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(connect, backoff(attempt++));
  };

  async function connect() {
    if (closed) return;
    let token: string;
    try {
      token = (await api<{ token: string }>('POST', '/api/stream-tokens')).token;
    } catch (err) {
      opts.onError?.(err instanceof ApiError ? err : new ApiError(0, 'network_error', String(err)));
      return retry();
    }
    if (closed) return;
    const url = new URL(path, location.origin);
    url.searchParams.set('token', token);
    if (opts.types?.length) url.searchParams.set('types', opts.types.join(','));
    if (lastId !== null) url.searchParams.set('lastEventId', String(lastId));
    const es = new EventSource(url.toString());
    source = es;
    for (const type of opts.types?.length ? opts.types : [...STREAM_EVENT_TYPES]) es.addEventListener(type, handle as EventListener);
    es.onmessage = handle;
    es.onopen = () => {
      attempt = 0;
      opts.onOpen?.();
    };
    es.onerror = () => {
      // CONNECTING: EventSource retries by itself (with Last-Event-ID). CLOSED: refused; a new token, from lastId.
      if (es.readyState === EventSource.CLOSED && source === es) {
        es.close();
        source = null;
        retry();
      }
    };
  }

  void connect();
  return () => {
    closed = true;
    clearTimeout(timer);
    source?.close();
    source = null;
  };
}
