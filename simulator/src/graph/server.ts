/**
 * A fake Meta WhatsApp Cloud API (Graph API) on loopback, for tests of the
 * gateway's `waba` provider: messages, media, phone number, templates, the
 * error object, and signed webhooks to the app's callback. Built from Meta's
 * published reference (sources in errors.ts, media.ts, validate.ts,
 * webhooks.ts); what differs from Meta is listed in docs/simulator.md
 * ("Fake Graph API").
 */
import type { Log } from '../errors';
import { handleControl } from './control';
import {
  GraphError,
  cloudError,

  expiredToken,
  fbtraceId,
  invalidParam,
  invalidToken,
  missingToken,
  statusErrorObject,
  unsupportedRequest,
} from './errors';
import { checkUpload, isAnimatedWebp, sha256Hex, type MediaKind, MEDIA_TYPES, baseMime } from './media';
import { validateMessage, validateReadReceipt, type StoredTemplate } from './validate';
import {
  changePayload,
  isLoopbackHost,
  isLoopbackUrl,
  metaJson,
  newWamid,
  postWebhook,
  sha1SignatureHeader,
  signatureHeader,
  verifyHandshake,
  waIdOf,
} from './webhooks';

export interface FakeGraphOptions {
  port?: number /* 0 = any free port */;
  hostname?: string /* default 127.0.0.1 */;
  /** optional structured log (the simulator's `Log`); silent without it */
  log?: Log;
}

export interface FakeApp {
  readonly id: string;
  appSecret: string;
  callbackUrl?: string;
  verifyToken?: string;
}

export type TemplateStatus = 'APPROVED' | 'PENDING' | 'REJECTED' | 'PAUSED' | 'DISABLED';
export type InjectPath = 'messages' | 'media' | 'phone' | 'templates' | 'download';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  query: Record<string, string>;
  body: unknown;
}

export interface SentMessage {
  wamid: string;
  phoneNumberId: string;
  payload: any;
  at: Date;
}

export interface PushMessageInput {
  from: string;
  name?: string;
  id?: string;
  timestamp?: number;
  type: string;
  mediaBytes?: Uint8Array;
  mimeType?: string;
  [k: string]: unknown;
}

export interface PushStatusInput {
  wamid: string;
  status: 'sent' | 'delivered' | 'read' | 'failed';
  recipientId: string;
  timestamp?: number;
  errors?: Array<{ code: number; title?: string; message?: string }>;
}

export interface PushResult {
  status: number;
  body: string;
  payload: unknown;
}

export interface FakeGraph {
  readonly url: string;
  addApp(app: { appSecret: string; callbackUrl?: string; verifyToken?: string }): FakeApp;
  addPhoneNumber(n: {
    phoneNumberId: string;
    wabaId: string;
    displayPhoneNumber: string;
    verifiedName?: string;
    accessToken: string;
    app: FakeApp;
    enforceWindow?: boolean;
  }): void;
  expireToken(token: string): void;
  /** A further token for a WABA (a new system-user token made in Business Manager, e.g. to replace an expired one). */
  addToken(token: string, wabaId: string): void;
  addTemplate(wabaId: string, t: { name: string; language: string; status?: TemplateStatus; category?: string; components: unknown[] }): void;
  injectError(e: { path?: InjectPath; phoneNumberId?: string; code: number; subcode?: number; httpStatus?: number; message?: string; times?: number }): void;
  injectStatusError(e: { to?: string; code: number; message?: string; times?: number }): void;
  readonly requests: RecordedRequest[];
  sent(phoneNumberId?: string): SentMessage[];
  readReceipts(phoneNumberId?: string): Array<{ messageId: string; phoneNumberId: string }>;
  media(id: string): { bytes: Uint8Array; mimeType: string; sha256: string } | undefined;
  pushMessage(phoneNumberId: string, m: PushMessageInput): Promise<PushResult>;
  pushStatus(phoneNumberId: string, s: PushStatusInput): Promise<PushResult>;
  pushRaw(app: FakeApp, body: string, opts?: { signature?: string | null }): Promise<{ status: number; body: string }>;
  verifyCallback(app: FakeApp): Promise<{ ok: boolean; status: number; body: string }>;
  setAutoStatuses(on: boolean): void;
  close(): Promise<void>;
}

interface Phone {
  phoneNumberId: string;
  wabaId: string;
  displayPhoneNumber: string;
  verifiedName: string;
  accessToken: string;
  app: FakeApp;
  enforceWindow: boolean;
}

interface Media {
  id: string;
  bytes: Uint8Array;
  mimeType: string;
  sha256: string;
  kind: MediaKind;
  phoneNumberId: string;
  wabaId: string;
  filename?: string;
}

interface ErrorInjection {
  path?: InjectPath;
  phoneNumberId?: string;
  code: number;
  subcode?: number;
  httpStatus?: number;
  message?: string;
  times: number;
}

interface StatusInjection {
  waId?: string;
  code: number;
  message?: string;
  times: number;
}

/** The 24-hour customer service window (Meta: "Customer service windows"). */
export const SERVICE_WINDOW_MS = 24 * 60 * 60 * 1000;
const TEMPLATE_PAGE_DEFAULT = 25;

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json; charset=UTF-8' } });
const randomDigits = (n: number) =>
  Array.from(crypto.getRandomValues(new Uint8Array(n)), (b, i) => (i === 0 ? 1 + (b % 9) : b % 10)).join('');
const nowSeconds = () => Math.floor(Date.now() / 1000);

/** The fake's state and behaviour, without the HTTP listener (the server wraps it). */
export class GraphState {
  readonly apps: FakeApp[] = [];
  readonly phones = new Map<string, Phone>();
  readonly tokenWabas = new Map<string, Set<string>>();
  readonly expired = new Map<string, Date>();
  readonly templates = new Map<string, StoredTemplate[]>();
  readonly mediaStore = new Map<string, Media>();
  readonly requests: RecordedRequest[] = [];
  readonly sentLog: Array<SentMessage & { template?: StoredTemplate }> = [];
  readonly reads: Array<{ messageId: string; phoneNumberId: string }> = [];
  /** `${phoneNumberId}|${waId}` → last inbound message (ms) */
  readonly lastInbound = new Map<string, number>();
  readonly errorInjections: ErrorInjection[] = [];
  readonly statusInjections: StatusInjection[] = [];
  autoStatuses = true;
  /** per app: webhooks go out one after the other */
  private readonly queues = new Map<string, Promise<void>>();
  private readonly pending = new Set<Promise<void>>();

  constructor(
    readonly baseUrl: () => string,
    private readonly log: Log,
  ) {}

  // ---- setup ----

  addApp(a: { appSecret: string; callbackUrl?: string; verifyToken?: string }): FakeApp {
    if (!a || typeof a.appSecret !== 'string' || a.appSecret === '') throw new Error('addApp: appSecret is required');
    if (a.callbackUrl !== undefined && !isLoopbackUrl(a.callbackUrl)) {
      throw new Error(`addApp: callbackUrl must be a loopback http(s) URL (127.0.0.0/8, ::1, localhost), got ${a.callbackUrl}`);
    }
    const app: FakeApp = { id: randomDigits(15), appSecret: a.appSecret, callbackUrl: a.callbackUrl, verifyToken: a.verifyToken };
    this.apps.push(app);
    return app;
  }

  addPhoneNumber(n: Parameters<FakeGraph['addPhoneNumber']>[0]): void {
    for (const k of ['phoneNumberId', 'wabaId', 'displayPhoneNumber', 'accessToken'] as const) {
      if (typeof n[k] !== 'string' || n[k] === '') throw new Error(`addPhoneNumber: ${k} is required`);
    }
    if (!this.apps.includes(n.app)) throw new Error('addPhoneNumber: app must come from addApp() of this fake');
    if (this.phones.has(n.phoneNumberId)) throw new Error(`addPhoneNumber: phone number ${n.phoneNumberId} already exists`);
    this.phones.set(n.phoneNumberId, {
      phoneNumberId: n.phoneNumberId,
      wabaId: n.wabaId,
      displayPhoneNumber: n.displayPhoneNumber,
      verifiedName: n.verifiedName ?? 'Test Business',
      accessToken: n.accessToken,
      app: n.app,
      enforceWindow: n.enforceWindow ?? true,
    });
    const set = this.tokenWabas.get(n.accessToken) ?? new Set<string>();
    set.add(n.wabaId);
    this.tokenWabas.set(n.accessToken, set);
  }

  expireToken(token: string): void {
    this.expired.set(token, new Date());
  }

  addToken(token: string, wabaId: string): void {
    if (typeof token !== 'string' || token === '' || typeof wabaId !== 'string' || wabaId === '') throw new Error('addToken: token and wabaId are required');
    const set = this.tokenWabas.get(token) ?? new Set<string>();
    set.add(wabaId);
    this.tokenWabas.set(token, set);
  }

  addTemplate(wabaId: string, t: Parameters<FakeGraph['addTemplate']>[1]): void {
    if (!t || typeof t.name !== 'string' || typeof t.language !== 'string') throw new Error('addTemplate: name and language are required');
    if (!Array.isArray(t.components)) throw new Error('addTemplate: components must be an array');
    const list = this.templates.get(wabaId) ?? [];
    const rec: StoredTemplate = {
      id: randomDigits(15),
      name: t.name,
      language: t.language,
      status: t.status ?? 'APPROVED',
      category: (t.category ?? 'UTILITY').toUpperCase(),
      components: t.components,
    };
    const i = list.findIndex((x) => x.name === t.name && x.language === t.language);
    if (i >= 0) list[i] = { ...rec, id: list[i]!.id };
    else list.push(rec);
    this.templates.set(wabaId, list);
  }

  injectError(e: Parameters<FakeGraph['injectError']>[0]): void {
    if (!e || typeof e.code !== 'number') throw new Error('injectError: code is required');
    this.errorInjections.push({ ...e, times: e.times ?? 1 });
  }

  injectStatusError(e: Parameters<FakeGraph['injectStatusError']>[0]): void {
    if (!e || typeof e.code !== 'number') throw new Error('injectStatusError: code is required');
    this.statusInjections.push({ waId: e.to === undefined ? undefined : waIdOf(e.to), code: e.code, message: e.message, times: e.times ?? 1 });
  }

  sent(phoneNumberId?: string): SentMessage[] {
    return this.sentLog
      .filter((s) => phoneNumberId === undefined || s.phoneNumberId === phoneNumberId)
      .map(({ wamid, phoneNumberId: p, payload, at }) => ({ wamid, phoneNumberId: p, payload, at }));
  }

  readReceipts(phoneNumberId?: string) {
    return this.reads.filter((r) => phoneNumberId === undefined || r.phoneNumberId === phoneNumberId);
  }

  media(id: string) {
    const m = this.mediaStore.get(id);
    return m ? { bytes: m.bytes, mimeType: m.mimeType, sha256: m.sha256 } : undefined;
  }

  // ---- webhooks ----

  private async deliverSigned(app: FakeApp, value: unknown): Promise<{ status: number; body: string; raw: string }> {
    const raw = metaJson(value);
    const res = await postWebhook(app.callbackUrl, raw, {
      'x-hub-signature-256': signatureHeader(app.appSecret, raw),
      'x-hub-signature': sha1SignatureHeader(app.appSecret, raw),
    });
    this.log(res.status >= 200 && res.status < 300 ? 'debug' : 'warn', 'fake graph webhook delivered', {
      appId: app.id,
      status: res.status,
      answer: res.body.slice(0, 200),
    });
    return { ...res, raw };
  }

  /** Runs `job` after every webhook already queued for this app (sent before delivered). */
  private enqueue(app: FakeApp, job: () => Promise<unknown>): void {
    const prev = this.queues.get(app.id) ?? Promise.resolve();
    const next = prev.then(job).then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(app.id, next);
    this.pending.add(next);
    void next.finally(() => this.pending.delete(next));
  }

  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  private phoneOrThrow(phoneNumberId: string): Phone {
    const p = this.phones.get(phoneNumberId);
    if (!p) throw new Error(`unknown phone number ${phoneNumberId}: addPhoneNumber() first`);
    return p;
  }

  async pushMessage(phoneNumberId: string, m: PushMessageInput): Promise<PushResult> {
    const phone = this.phoneOrThrow(phoneNumberId);
    if (!m || typeof m.from !== 'string' || typeof m.type !== 'string') throw new Error('pushMessage: from and type are required');
    const from = waIdOf(m.from);
    const timestamp = m.timestamp ?? nowSeconds();
    const { from: _f, name, id, timestamp: _t, type, mediaBytes, mimeType, ...rest } = m;
    const message: Record<string, unknown> = { from, id: id ?? newWamid(from), timestamp: String(timestamp), type, ...rest };
    if (mediaBytes !== undefined) {
      const mime = mimeType ?? 'application/octet-stream';
      const stored = await this.storeMedia(phone, mediaBytes, mime, typeof (rest[type] as any)?.filename === 'string' ? (rest[type] as any).filename : undefined);
      const given = (rest[type] ?? {}) as Record<string, unknown>;
      message[type] = {
        ...given,
        mime_type: mime,
        // inbound webhooks carry the SHA-256 base64-encoded
        sha256: Buffer.from(stored.sha256, 'hex').toString('base64'),
        id: stored.id,
        ...(type === 'sticker' ? { animated: isAnimatedWebp(mediaBytes) } : {}),
      };
    }
    const key = `${phoneNumberId}|${from}`;
    this.lastInbound.set(key, Math.max(this.lastInbound.get(key) ?? 0, timestamp * 1000));
    const payload = changePayload(phone, { contacts: [{ profile: { name: name ?? from }, wa_id: from }], messages: [message] });
    const res = await this.deliverSigned(phone.app, payload);
    return { status: res.status, body: res.body, payload: JSON.parse(res.raw) };
  }

  private statusObject(phone: Phone, s: PushStatusInput) {
    const sent = this.sentLog.find((x) => x.wamid === s.wamid);
    const obj: Record<string, unknown> = {
      id: s.wamid,
      status: s.status,
      timestamp: String(s.timestamp ?? nowSeconds()),
      recipient_id: waIdOf(s.recipientId),
    };
    if (s.status === 'sent' || s.status === 'delivered') {
      const category = sent?.template ? sent.template.category.toLowerCase() : 'service';
      const free = !sent?.template;
      obj.pricing = { billable: !free, pricing_model: 'PMP', category, type: free ? 'free_customer_service' : 'regular' };
    }
    if (s.status === 'failed') {
      obj.errors = (s.errors?.length ? s.errors : [{ code: 131000 }]).map((e) => statusErrorObject(e.code, { title: e.title, message: e.message }));
    }
    void phone;
    return obj;
  }

  async pushStatus(phoneNumberId: string, s: PushStatusInput): Promise<PushResult> {
    const phone = this.phoneOrThrow(phoneNumberId);
    const payload = changePayload(phone, { statuses: [this.statusObject(phone, s)] });
    const res = await this.deliverSigned(phone.app, payload);
    return { status: res.status, body: res.body, payload: JSON.parse(res.raw) };
  }

  async pushRaw(app: FakeApp, body: string, opts: { signature?: string | null } = {}) {
    const headers: Record<string, string> = {};
    if (opts.signature === undefined) headers['x-hub-signature-256'] = signatureHeader(app.appSecret, body);
    else if (opts.signature !== null) headers['x-hub-signature-256'] = opts.signature;
    return postWebhook(app.callbackUrl, body, headers);
  }

  verifyCallback(app: FakeApp) {
    return verifyHandshake(app.callbackUrl, app.verifyToken);
  }

  // ---- the Graph API ----

  async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (url.pathname === '/_fake' || url.pathname.startsWith('/_fake/')) return handleControl(this, req, url);
    const body = await readBody(req);
    const headers: Record<string, string> = {};
    req.headers.forEach((v, k) => (headers[k] = v));
    this.requests.push({ method: req.method, path: url.pathname, headers, query: Object.fromEntries(url.searchParams), body });
    try {
      return await this.route(req.method, url, headers, body);
    } catch (err) {
      if (err instanceof GraphError) return json(err.status, err.body);
      this.log('warn', 'fake graph handler failed', { error: (err as Error).message, path: url.pathname });
      return json(500, { error: { message: 'An unexpected error has occurred. Please retry your request later.', type: 'OAuthException', code: 2, is_transient: true, fbtrace_id: fbtraceId() } });
    }
  }

  private token(headers: Record<string, string>, url: URL): string {
    const auth = headers['authorization'];
    const m = auth ? /^Bearer\s+(.+)$/i.exec(auth.trim()) : null;
    const t = m?.[1] ?? url.searchParams.get('access_token') ?? undefined;
    if (!t) throw missingToken();
    const exp = this.expired.get(t);
    if (exp) throw expiredToken(exp);
    if (!this.tokenWabas.has(t)) throw invalidToken();
    return t;
  }

  private canSee(token: string, wabaId: string): boolean {
    return this.tokenWabas.get(token)?.has(wabaId) ?? false;
  }

  /** An injected error matching this call, consumed. */
  private injected(path: InjectPath, phoneNumberId: string | undefined, wabaId: string | undefined): GraphError | undefined {
    const i = this.errorInjections.findIndex((e) => {
      if (e.path !== undefined && e.path !== path) return false;
      if (e.phoneNumberId === undefined) return true;
      if (phoneNumberId !== undefined) return e.phoneNumberId === phoneNumberId;
      return wabaId !== undefined && this.phones.get(e.phoneNumberId)?.wabaId === wabaId;
    });
    if (i < 0) return undefined;
    const e = this.errorInjections[i]!;
    if (--e.times <= 0) this.errorInjections.splice(i, 1);
    if (e.code === 190 && e.message === undefined) return expiredToken(new Date(Date.now() - 60_000));
    return cloudError(e.code, { subcode: e.subcode, httpStatus: e.httpStatus, message: e.message ? `(#${e.code}) ${e.message}` : undefined, details: e.message });
  }

  private async route(method: string, url: URL, headers: Record<string, string>, body: unknown): Promise<Response> {
    const path = url.pathname.replace(/^\/v\d+(\.\d+)?(?=\/|$)/, '');
    if (method === 'GET' && path.startsWith('/_media/')) return this.download(decodeURIComponent(path.slice('/_media/'.length)), headers, url);
    const segs = path.split('/').filter(Boolean).map(decodeURIComponent);
    const id = segs[0];
    if (!id || segs.length > 2) throw unsupportedRequest(method, id ?? '');
    const token = this.token(headers, url);
    const edge = segs[1];
    const phone = this.phones.get(id);
    const media = this.mediaStore.get(id);
    const wabaKnown = [...this.phones.values()].some((p) => p.wabaId === id);

    if (phone && edge === 'messages' && method === 'POST') {
      if (!this.canSee(token, phone.wabaId)) throw unsupportedRequest(method, id);
      const inj = this.injected('messages', phone.phoneNumberId, phone.wabaId);
      if (inj) throw inj;
      return this.sendMessage(phone, body);
    }
    if (phone && edge === 'media' && method === 'POST') {
      if (!this.canSee(token, phone.wabaId)) throw unsupportedRequest(method, id);
      const inj = this.injected('media', phone.phoneNumberId, phone.wabaId);
      if (inj) throw inj;
      return this.upload(phone, body);
    }
    if (phone && edge === undefined && method === 'GET') {
      if (!this.canSee(token, phone.wabaId)) throw unsupportedRequest(method, id);
      const inj = this.injected('phone', phone.phoneNumberId, phone.wabaId);
      if (inj) throw inj;
      return json(200, phoneFields(phone, url.searchParams.get('fields')));
    }
    if (media && edge === undefined && (method === 'GET' || method === 'DELETE')) {
      if (!this.canSee(token, media.wabaId)) throw unsupportedRequest(method, id);
      const inj = this.injected('media', media.phoneNumberId, media.wabaId);
      if (inj) throw inj;
      if (method === 'DELETE') {
        this.mediaStore.delete(id);
        return json(200, { success: true });
      }
      return json(200, {
        messaging_product: 'whatsapp',
        url: `${this.baseUrl()}/_media/${encodeURIComponent(media.id)}?mid=${media.id}&ext=${nowSeconds()}&hash=${randomDigits(12)}`,
        mime_type: media.mimeType,
        sha256: media.sha256,
        file_size: media.bytes.length,
        id: media.id,
      });
    }
    if (wabaKnown && edge === 'message_templates' && method === 'GET') {
      if (!this.canSee(token, id)) throw unsupportedRequest(method, id);
      const inj = this.injected('templates', undefined, id);
      if (inj) throw inj;
      return json(200, this.templatePage(id, url));
    }
    if ((phone && this.canSee(token, phone.wabaId)) || (wabaKnown && this.canSee(token, id))) {
      if (edge !== undefined) {
        throw new GraphError(400, {
          error: {
            message: `(#100) Tried accessing nonexisting field (${edge}) on node type (${phone ? 'WhatsAppBusinessPhoneNumber' : 'WhatsAppBusinessAccount'})`,
            type: 'OAuthException',
            code: 100,
            fbtrace_id: fbtraceId(),
          },
        });
      }
    }
    throw unsupportedRequest(method, id);
  }

  private async sendMessage(phone: Phone, body: unknown): Promise<Response> {
    const readId = validateReadReceipt(body);
    if (readId !== undefined) {
      this.reads.push({ messageId: readId, phoneNumberId: phone.phoneNumberId });
      return json(200, { success: true });
    }
    const v = validateMessage(body, {
      ownWaId: waIdOf(phone.displayPhoneNumber),
      media: (mid) => {
        const m = this.mediaStore.get(mid);
        return m && m.wabaId === phone.wabaId ? { kind: m.kind } : undefined;
      },
      templates: (name) => (this.templates.get(phone.wabaId) ?? []).filter((t) => t.name === name),
    });
    const wamid = newWamid(v.waId);
    this.sentLog.push({ wamid, phoneNumberId: phone.phoneNumberId, payload: body, at: new Date(), template: v.template });

    // what happens to it afterwards, as status webhooks
    let failure: { code: number; message?: string; details?: string } | undefined;
    const si = this.statusInjections.findIndex((s) => s.waId === undefined || s.waId === v.waId);
    if (si >= 0) {
      const s = this.statusInjections[si]!;
      if (--s.times <= 0) this.statusInjections.splice(si, 1);
      failure = { code: s.code, message: s.message };
    } else if (v.asyncFailure) {
      failure = { code: v.asyncFailure.code, details: v.asyncFailure.details };
    } else if (v.type !== 'template' && phone.enforceWindow) {
      const last = this.lastInbound.get(`${phone.phoneNumberId}|${v.waId}`);
      if (last === undefined || Date.now() - last >= SERVICE_WINDOW_MS) failure = { code: 131047 };
    }
    const app = phone.app;
    if (app.callbackUrl) {
      if (failure) {
        const f = failure;
        this.enqueue(app, () =>
          this.deliverSigned(
            app,
            changePayload(phone, {
              statuses: [
                {
                  id: wamid,
                  status: 'failed',
                  timestamp: String(nowSeconds()),
                  recipient_id: v.waId,
                  errors: [statusErrorObject(f.code, { message: f.message, details: f.details })],
                },
              ],
            }),
          ),
        );
      } else if (this.autoStatuses) {
        for (const status of ['sent', 'delivered'] as const) {
          this.enqueue(app, () => this.deliverSigned(app, changePayload(phone, { statuses: [this.statusObject(phone, { wamid, status, recipientId: v.waId })] })));
        }
      }
    }
    return json(200, {
      messaging_product: 'whatsapp',
      contacts: [{ input: v.to, wa_id: v.waId }],
      messages: [v.type === 'template' ? { id: wamid, message_status: 'accepted' } : { id: wamid }],
    });
  }

  private async storeMedia(phone: Phone, bytes: Uint8Array, mimeType: string, filename?: string): Promise<Media> {
    const m: Media = {
      id: randomDigits(16),
      bytes,
      mimeType,
      sha256: await sha256Hex(bytes),
      kind: MEDIA_TYPES[baseMime(mimeType)]?.kind ?? 'document',
      phoneNumberId: phone.phoneNumberId,
      wabaId: phone.wabaId,
      filename,
    };
    this.mediaStore.set(m.id, m);
    return m;
  }

  private async upload(phone: Phone, body: unknown): Promise<Response> {
    const form = body as { fields?: Record<string, string>; file?: { name: string; type: string; size: number; bytes: Uint8Array } } | undefined;
    if (!form || typeof form !== 'object' || !('fields' in form)) throw invalidParam('The parameter messaging_product is required.');
    const mp = form.fields?.messaging_product;
    if (!mp) throw invalidParam('The parameter messaging_product is required.');
    if (mp !== 'whatsapp') throw invalidParam(`Param messaging_product must be one of {WHATSAPP} - got "${mp}".`);
    if (!form.file) throw invalidParam('The parameter file is required.');
    const mime = form.fields?.type || form.file.type;
    if (!mime) throw invalidParam('The parameter type is required.');
    const check = checkUpload(mime, form.file.bytes);
    if (!check.ok) throw cloudError(131053, { details: check.reason });
    const m = await this.storeMedia(phone, form.file.bytes, mime, form.file.name);
    return json(200, { id: m.id });
  }

  private download(id: string, headers: Record<string, string>, url: URL): Response {
    const auth = headers['authorization'];
    const m = auth ? /^Bearer\s+(.+)$/i.exec(auth.trim()) : null;
    const token = m?.[1];
    const media = this.mediaStore.get(id);
    if (!token || this.expired.has(token) || !this.tokenWabas.has(token)) {
      return new Response('Unauthorized', { status: 401, headers: { 'content-type': 'text/plain', 'www-authenticate': 'Bearer' } });
    }
    if (!media || !this.canSee(token, media.wabaId)) return new Response('Not Found', { status: 404, headers: { 'content-type': 'text/plain' } });
    const inj = this.injected('download', media.phoneNumberId, media.wabaId);
    if (inj) return json(inj.status, inj.body);
    void url;
    return new Response(media.bytes, {
      status: 200,
      headers: {
        'content-type': media.mimeType,
        'content-length': String(media.bytes.length),
        ...(media.filename ? { 'content-disposition': `attachment; filename="${media.filename.replace(/"/g, '')}"` } : {}),
      },
    });
  }

  private templatePage(wabaId: string, url: URL) {
    const q = url.searchParams;
    let list = this.templates.get(wabaId) ?? [];
    const name = q.get('name');
    if (name) list = list.filter((t) => t.name === name);
    const status = q.get('status');
    if (status) list = list.filter((t) => status.split(',').map((s) => s.trim().toUpperCase()).includes(t.status));
    const category = q.get('category');
    if (category) list = list.filter((t) => category.split(',').map((s) => s.trim().toUpperCase()).includes(t.category));
    const language = q.get('language');
    if (language) list = list.filter((t) => t.language === language);
    const limitRaw = Number(q.get('limit') ?? TEMPLATE_PAGE_DEFAULT);
    const limit = Number.isInteger(limitRaw) && limitRaw > 0 ? Math.min(limitRaw, 1000) : TEMPLATE_PAGE_DEFAULT;
    const cursor = (i: number) => Buffer.from(`${i}`).toString('base64url');
    const decode = (c: string | null) => (c === null ? undefined : Number(Buffer.from(c, 'base64url').toString()));
    let start = 0;
    const after = decode(q.get('after'));
    const before = decode(q.get('before'));
    if (after !== undefined && Number.isInteger(after)) start = after + 1;
    else if (before !== undefined && Number.isInteger(before)) start = Math.max(0, before - limit);
    const page = list.slice(start, start + limit);
    const fields = q.get('fields')?.split(',').map((f) => f.trim()).filter(Boolean);
    const data = page.map((t) => {
      const full: Record<string, unknown> = {
        name: t.name,
        parameter_format: 'POSITIONAL',
        components: t.components,
        language: t.language,
        status: t.status,
        category: t.category,
        id: t.id,
      };
      if (!fields) return full;
      return Object.fromEntries(Object.entries(full).filter(([k]) => k === 'id' || fields.includes(k)));
    });
    const out: Record<string, unknown> = { data };
    if (page.length > 0) {
      const paging: Record<string, unknown> = { cursors: { before: cursor(start), after: cursor(start + page.length - 1) } };
      const link = (k: 'after' | 'before', c: string) => {
        const u = new URL(`${this.baseUrl()}${url.pathname}`);
        q.forEach((v, key) => key !== 'after' && key !== 'before' && u.searchParams.set(key, v));
        u.searchParams.set('limit', String(limit));
        u.searchParams.set(k, c);
        return u.toString();
      };
      if (start + page.length < list.length) paging.next = link('after', cursor(start + page.length - 1));
      if (start > 0) paging.previous = link('before', cursor(start));
      out.paging = paging;
    }
    return out;
  }
}

function phoneFields(p: Phone, fieldsParam: string | null) {
  const all: Record<string, unknown> = {
    verified_name: p.verifiedName,
    code_verification_status: 'VERIFIED',
    display_phone_number: p.displayPhoneNumber,
    quality_rating: 'GREEN',
    platform_type: 'CLOUD_API',
    throughput: { level: 'STANDARD' },
    name_status: 'APPROVED',
    messaging_limit_tier: 'TIER_1K',
    is_official_business_account: false,
    account_mode: 'LIVE',
    status: 'CONNECTED',
    id: p.phoneNumberId,
  };
  const defaults = ['verified_name', 'code_verification_status', 'display_phone_number', 'quality_rating', 'platform_type', 'throughput', 'id'];
  const wanted = fieldsParam ? [...fieldsParam.split(',').map((f) => f.trim()), 'id'] : defaults;
  return Object.fromEntries(Object.entries(all).filter(([k]) => wanted.includes(k)));
}

async function readBody(req: Request): Promise<unknown> {
  if (req.method === 'GET' || req.method === 'HEAD') return undefined;
  const type = req.headers.get('content-type') ?? '';
  if (type.toLowerCase().startsWith('multipart/form-data')) {
    try {
      const form = await req.formData();
      const fields: Record<string, string> = {};
      let file: { name: string; type: string; size: number; bytes: Uint8Array } | undefined;
      for (const [k, v] of form.entries()) {
        if (typeof v === 'string') fields[k] = v;
        else if (k === 'file') file = { name: v.name, type: v.type, size: v.size, bytes: new Uint8Array(await v.arrayBuffer()) };
      }
      return { fields, file };
    } catch {
      return { fields: {} };
    }
  }
  const text = await req.text();
  if (text === '') return undefined;
  if (type.toLowerCase().includes('application/x-www-form-urlencoded')) return Object.fromEntries(new URLSearchParams(text));
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export async function startFakeGraph(opts: FakeGraphOptions = {}): Promise<FakeGraph> {
  const hostname = opts.hostname ?? '127.0.0.1';
  if (!isLoopbackHost(hostname)) throw new Error(`startFakeGraph: hostname must be loopback (127.0.0.0/8, ::1, localhost), got ${hostname}`);
  const log: Log = opts.log ?? (() => {});
  let base = '';
  const state = new GraphState(() => base, log);
  const server = Bun.serve({ port: opts.port ?? 0, hostname, fetch: (req) => state.handle(req), maxRequestBodySize: 128 * 1024 * 1024 });
  base = `http://${hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname}:${server.port}`;
  log('info', 'fake graph listening', { url: base });
  return {
    get url() {
      return base;
    },
    addApp: (a) => state.addApp(a),
    addPhoneNumber: (n) => state.addPhoneNumber(n),
    expireToken: (t) => state.expireToken(t),
    addToken: (t, w) => state.addToken(t, w),
    addTemplate: (w, t) => state.addTemplate(w, t),
    injectError: (e) => state.injectError(e),
    injectStatusError: (e) => state.injectStatusError(e),
    get requests() {
      return state.requests;
    },
    sent: (p) => state.sent(p),
    readReceipts: (p) => state.readReceipts(p),
    media: (id) => state.media(id),
    pushMessage: (p, m) => state.pushMessage(p, m),
    pushStatus: (p, s) => state.pushStatus(p, s),
    pushRaw: (a, b, o) => state.pushRaw(a, b, o),
    verifyCallback: (a) => state.verifyCallback(a),
    setAutoStatuses: (on) => {
      state.autoStatuses = on;
    },
    close: async () => {
      await state.settle();
      await server.stop(true);
    },
  };
}
