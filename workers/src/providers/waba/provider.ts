/**
 * The `waba` provider: a WhatsApp Business number on Meta's Cloud API
 * (Graph API), for one instance. The worker is the only part of wgs that
 * calls the Graph API; the gateway verifies Meta's signed webhooks and hands
 * each `value` for this number over as a durable `waba.inbound` command.
 *
 * States: `starting` → `connected` once `GET /{phone-number-id}` answers
 * (re-checked every WABA_CHECK_INTERVAL_MS); `reconnecting` while the Graph
 * API is unreachable or answers 5xx (re-checked with backoff); `failed` when
 * Meta refuses the token (expired, invalid, missing permission, wrong id:
 * 0, 3, 10, 190, 200–299, 100/33), re-checked every WABA_CHECK_INTERVAL_MS
 * so a permission restored on Meta's side recovers by itself; `logged_out`
 * after the logout command, until the worker restarts. No QR, ever.
 */
import { COMMAND_NAMES, MAX_INLINE_MEDIA_BYTES, type CommandArgs, type CommandName, type SendArgs, type SessionState } from '../../../protocol/frames';
import { argsProblem } from '../../args';
import { backoffDelay, type BackoffOptions } from '../../backoff';
import type { WabaConfig } from '../../config';
import type { Logger } from '../../logger';
import { ProviderError, type Provider, type ProviderContext } from '../types';
import { classify, describeMeta, isTokenDead, toProviderError, type MetaError } from './errors';
import { GraphCallError, GraphClient } from './graph';
import { mapValue, statusEventId, type InboundMessage, type InboundStatus } from './inbound';
import { buildMessage, defaultFilename, isMediaSend, readReceipt, uploadForm, type MediaRef } from './outbound';
import { SentStore, WABA_TABLES } from './sent-store';

export interface WabaOptions extends WabaConfig {
  /** Backoff of the connection re-check while unreachable (default 1 s doubling to 60 s). */
  recheckBackoff?: BackoffOptions;
  /** Backoff base of the Graph client's retries (default 500 ms). */
  retryBaseMs?: number;
}

const PHONE_FIELDS = 'display_phone_number,verified_name,quality_rating';
const RECHECK_BACKOFF: BackoffOptions = { baseMs: 1_000, capMs: 60_000, jitter: 0.2 };
const PRUNE_INTERVAL_MS = 60 * 60 * 1000;
const MAX_TEMPLATE_PAGES = 100;
export const PAIR_CODE_REFUSAL = "Cloud API numbers are registered in Meta's WhatsApp Manager, not linked by code";
export const LOGOUT_REASON = 'disconnected by logout; restart the instance to reconnect to the Cloud API';

type Timer = ReturnType<typeof setTimeout>;

export class WabaProvider implements Provider {
  readonly name = 'waba';
  private ctx: ProviderContext | undefined;
  private log!: Logger;
  private graph!: GraphClient;
  private sent: SentStore | undefined;
  private state: SessionState = 'starting';
  private reason: string | undefined;
  /** Why the last check failed with Meta refusing the token (state failed). */
  private authFailure: MetaError | undefined;
  private stopped = false;
  private attempt = 0;
  private checkTimer: Timer | undefined;
  private pruneTimer: ReturnType<typeof setInterval> | undefined;
  private checking: Promise<void> | undefined;

  constructor(private readonly opts: WabaOptions) {}

  async start(ctx: ProviderContext): Promise<void> {
    if (this.ctx) throw new Error('waba provider started twice');
    this.ctx = ctx;
    this.log = ctx.log;
    this.graph = new GraphClient({
      baseUrl: this.opts.graphBaseUrl,
      version: this.opts.graphVersion,
      accessToken: this.opts.accessToken,
      timeoutMs: this.opts.timeoutMs,
      maxRetries: this.opts.maxRetries,
      log: ctx.log.child({ component: 'graph' }),
      ...(this.opts.retryBaseMs !== undefined && { retryBaseMs: this.opts.retryBaseMs }),
    });
    this.setState('starting');
    try {
      await ctx.store.migrate('waba', WABA_TABLES);
      this.sent = new SentStore(ctx.store.sql);
    } catch (err) {
      this.log.error({ err: { message: errorText(err) } }, 'waba state tables unusable; staying failed');
      this.setState('failed', `the waba state store cannot be opened: ${errorText(err)}`);
      return;
    }
    if (this.stopped) return;
    this.log.info(
      { graph: this.opts.graphBaseUrl, version: this.opts.graphVersion, phoneNumberId: this.opts.phoneNumberId, wabaId: this.opts.wabaId },
      'waba provider starting',
    );
    this.startPruning();
    this.checking = this.check();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.checkTimer);
    clearInterval(this.pruneTimer);
    await this.checking?.catch(() => {});
  }

  async execute(name: CommandName, args: unknown): Promise<Record<string, unknown>> {
    if (!this.ctx || this.stopped) throw new ProviderError('not_ready', 'waba provider is not running');
    if (!COMMAND_NAMES.includes(name) || name.startsWith('sandbox.')) {
      throw new ProviderError('unsupported_command', `the waba provider does not support ${JSON.stringify(name)}`);
    }
    if (name === 'pair-code') throw new ProviderError('unsupported_command', PAIR_CODE_REFUSAL);
    if (name === 'presence') {
      // The Cloud API shows a typing indicator only together with a read receipt of a received message.
      throw new ProviderError('unsupported_command', 'the Cloud API has no typing indicator of its own (only with a read receipt)');
    }
    const problem = argsProblem(name, args);
    if (problem) throw new ProviderError('invalid_args', `invalid arguments for ${name}: ${problem}`);
    if (!this.sent) throw new ProviderError('not_ready', this.reason ?? 'the waba state store is not open');
    switch (name) {
      case 'send':
        return this.send(args as SendArgs);
      case 'read':
        return this.read(args as CommandArgs<'read'>);
      case 'logout':
        return this.logout();
      case 'waba.inbound':
        return this.inbound(args as CommandArgs<'waba.inbound'>);
      case 'waba.templates':
        return this.templates();
      default:
        throw new ProviderError('unsupported_command', `the waba provider does not support ${JSON.stringify(name)}`);
    }
  }

  // ------------------------------------------------------------ connection check

  /** Looks the phone number up; the answer decides the state and when the next check runs. */
  private async check(): Promise<void> {
    if (this.inactive()) return;
    clearTimeout(this.checkTimer);
    try {
      const phone = await this.graph.get<{ display_phone_number?: string; verified_name?: string; quality_rating?: string }>(
        this.opts.phoneNumberId,
        { fields: PHONE_FIELDS },
        { retries: 0 },
      );
      if (this.inactive()) return;
      this.attempt = 0;
      this.authFailure = undefined;
      const reason = `Cloud API: ${phone.verified_name ?? 'unnamed'} (${phone.display_phone_number ?? this.opts.phoneNumberId})`;
      if (this.state !== 'connected' || this.reason !== reason) {
        this.log.info({ verifiedName: phone.verified_name, display: phone.display_phone_number, quality: phone.quality_rating }, 'Cloud API number reachable');
        this.setState('connected', reason);
      }
      this.schedule(this.opts.checkIntervalMs);
    } catch (err) {
      if (this.inactive()) return;
      const meta = err instanceof GraphCallError ? err.meta : { message: errorText(err), network: true };
      this.onCheckFailure(meta);
    }
  }

  private onCheckFailure(meta: MetaError): void {
    const c = classify(meta);
    if (c.auth) {
      this.authFailure = meta;
      this.log.error({ code: meta.code, subcode: meta.subcode }, 'Meta refuses the access token; failed until it works again');
      this.setState('failed', describeMeta(meta));
      this.schedule(this.opts.checkIntervalMs);
      return;
    }
    const delay = backoffDelay(this.attempt++, Math.random, this.opts.recheckBackoff ?? RECHECK_BACKOFF);
    this.log.warn({ code: meta.code, httpStatus: meta.httpStatus, retryInMs: delay }, 'Graph API unavailable; checking again');
    this.setState('reconnecting', describeMeta(meta));
    this.schedule(delay);
  }

  /** Stopped, or logged out: no more checks. A method, so TypeScript does not narrow `state` across awaits. */
  private inactive(): boolean {
    return this.stopped || this.state === 'logged_out';
  }

  private schedule(ms: number): void {
    clearTimeout(this.checkTimer);
    if (this.inactive()) return;
    this.checkTimer = setTimeout(() => {
      this.checking = this.check();
    }, ms);
    this.checkTimer.unref?.();
  }

  /** A command's Graph call failed: a dead token fails the instance; an unreachable Graph starts a check at once. */
  private onCallFailure(meta: MetaError): void {
    if (this.state === 'logged_out' || this.stopped) return;
    if (isTokenDead(meta)) {
      this.authFailure = meta;
      this.setState('failed', describeMeta(meta));
      this.schedule(this.opts.checkIntervalMs);
    } else if (meta.network && this.state === 'connected') {
      this.schedule(0);
    }
  }

  /** Runs a Graph call for a command; failures become the mapped ProviderError. */
  private async graphCall<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof GraphCallError) {
        this.onCallFailure(err.meta);
        throw toProviderError(err.meta);
      }
      throw err;
    }
  }

  /**
   * Sends and reads need `connected`, as with every provider: while the
   * Graph API is unreachable (reconnecting) they answer not_connected at
   * once instead of each waiting for its own timeout; a failed token answers
   * with Meta's refusal.
   */
  private requireUsable(): void {
    if (this.state === 'connected') return;
    if (this.state === 'failed' && this.authFailure) throw toProviderError(this.authFailure);
    if (this.state === 'logged_out') throw new ProviderError('not_connected', `Client not connected: ${LOGOUT_REASON}`);
    throw new ProviderError('not_connected', 'Client not connected');
  }

  // ------------------------------------------------------------ commands

  private async send(args: SendArgs): Promise<Record<string, unknown>> {
    if (args.type === 'edit' || args.type === 'revoke') {
      throw new ProviderError('unsupported_command', `the waba provider does not support ${args.type} messages: the Cloud API cannot ${args.type} a sent message`);
    }
    this.requireUsable();
    const sent = this.sent!;
    // A send redelivered after a restart (its result lost) was already sent: answer with its wamid.
    const already = await sent.wamidFor(args.messageId).catch((err: unknown) => {
      throw new ProviderError('send_failed', `the state store is unavailable: ${errorText(err)}`, { cause: err });
    });
    if (already) return { messageId: args.messageId, providerMessageId: already, status: 'sent' };
    let media: MediaRef | undefined;
    if (isMediaSend(args)) media = args.media.url ? { link: args.media.url } : { id: await this.upload(args) };
    const payload = buildMessage(args, media);
    const res = await this.graphCall(() =>
      this.graph.post<{ messages?: { id?: string }[] }>(`${this.opts.phoneNumberId}/messages`, { json: payload }, false),
    );
    const wamid = res.messages?.[0]?.id;
    if (!wamid) throw new ProviderError('provider_error', 'the Cloud API accepted the message but returned no message id');
    // Recorded before answering, so the status webhooks (which may come at once) find the gateway's id.
    try {
      await sent.record(wamid, args.messageId, args.to);
    } catch (err) {
      // The message is out: failing the command would make the caller send it again. Its statuses will not map.
      this.log.error({ err: { message: errorText(err) }, wamid, messageId: args.messageId }, 'recording a sent message failed; its statuses will be skipped');
    }
    this.log.debug({ messageId: args.messageId, wamid, type: args.type }, 'Cloud API message sent');
    return { messageId: args.messageId, providerMessageId: wamid, status: 'sent' };
  }

  /** Uploads base64 media (`POST /{phone-number-id}/media`) and returns its media id. */
  private async upload(args: Extract<SendArgs, { media: unknown }>): Promise<string> {
    const { data, mimetype, filename } = args.media;
    if (!data) throw new ProviderError('invalid_args', '/media: needs data or url');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data.replace(/\s+/g, ''))) throw new ProviderError('invalid_args', '/media/data: not valid base64');
    const bytes = Buffer.from(data, 'base64');
    if (bytes.length === 0) throw new ProviderError('invalid_args', '/media/data: empty');
    if (bytes.length > MAX_INLINE_MEDIA_BYTES) throw new ProviderError('invalid_args', `/media/data: more than ${MAX_INLINE_MEDIA_BYTES} bytes once decoded`);
    const form = uploadForm(bytes, mimetype, filename ?? defaultFilename(args.type, mimetype));
    const res = await this.graphCall(() => this.graph.post<{ id?: string }>(`${this.opts.phoneNumberId}/media`, { form }, true));
    if (!res.id) throw new ProviderError('media_failed', 'the Cloud API accepted the upload but returned no media id');
    return res.id;
  }

  private async read(args: CommandArgs<'read'>): Promise<Record<string, unknown>> {
    this.requireUsable();
    for (const id of args.messageIds) {
      await this.graphCall(() => this.graph.post(`${this.opts.phoneNumberId}/messages`, { json: readReceipt(id) }, true));
    }
    return {};
  }

  /**
   * Stops using the number: no checks, sends answer not_connected until the
   * worker restarts. Nothing is deregistered at Meta: taking a Cloud API
   * number off the platform is an operator's decision in WhatsApp Manager
   * (and registering it again needs its two-step PIN), not an API logout.
   */
  private logout(): Record<string, unknown> {
    clearTimeout(this.checkTimer);
    this.authFailure = undefined;
    this.setState('logged_out', LOGOUT_REASON);
    return { state: 'logged_out' };
  }

  private async templates(): Promise<Record<string, unknown>> {
    if (this.state === 'logged_out') this.requireUsable();
    const templates: Record<string, unknown>[] = [];
    let page = await this.graphCall(() =>
      this.graph.get<TemplatePage>(`${this.opts.wabaId}/message_templates`, { fields: 'name,language,status,category,components', limit: '100' }),
    );
    for (let pages = 1; ; pages++) {
      for (const t of page.data ?? []) {
        templates.push({ name: t.name, language: t.language, status: t.status, category: t.category, components: t.components ?? [] });
      }
      const next = page.paging?.next;
      if (!next || pages >= MAX_TEMPLATE_PAGES) break;
      let url: URL;
      try {
        url = new URL(next);
      } catch {
        break;
      }
      // The token goes with the request: only ever to the Graph API itself.
      if (url.origin !== this.graph.origin) {
        this.log.warn({ origin: url.origin }, 'templates paging.next points elsewhere; not following it');
        break;
      }
      page = await this.graphCall(() => this.graph.getAbsolute<TemplatePage>(url));
    }
    return { templates };
  }

  // ------------------------------------------------------------ inbound

  private async inbound(args: CommandArgs<'waba.inbound'>): Promise<Record<string, unknown>> {
    const mapped = mapValue(args.value);
    for (const why of mapped.skipped) this.log.warn({ why }, 'part of a webhook value skipped');
    for (const m of mapped.messages) await this.receive(m);
    let statuses = 0;
    for (const s of mapped.statuses) if (await this.status(s)) statuses += 1;
    return { messages: mapped.messages.length, statuses };
  }

  private async receive(m: InboundMessage): Promise<void> {
    const message = m.message;
    if (m.reactionTarget && message.target) {
      message.target = { ...message.target, fromMe: (await this.sent!.messageIdFor(m.reactionTarget)) !== undefined };
    }
    if (m.mediaId && message.media && this.state !== 'logged_out') {
      message.media = await this.downloadMedia(m.mediaId, message.media, message.id);
    }
    this.ctx!.emit({ type: 'message.received', data: message }, { eventId: m.eventId });
  }

  /** The media's bytes as base64; on any failure the media without data (the message is never lost). */
  private async downloadMedia<M extends { mimetype: string; size?: number; data?: string }>(mediaId: string, media: M, wamid: string): Promise<M> {
    let size: number | undefined;
    try {
      const info = await this.graph.get<{ url?: string; file_size?: number | string; mime_type?: string }>(mediaId);
      size = info.file_size !== undefined ? Number(info.file_size) : undefined;
      if (size !== undefined && size > MAX_INLINE_MEDIA_BYTES) return { ...media, size };
      if (!info.url) throw new Error('the media lookup returned no url');
      const got = await this.graph.download(info.url, MAX_INLINE_MEDIA_BYTES);
      if ('tooLarge' in got) return { ...media, size: got.tooLarge };
      return { ...media, data: got.bytes.toString('base64'), size: got.bytes.length };
    } catch (err) {
      const message = err instanceof GraphCallError ? describeMeta(err.meta) : errorText(err);
      this.log.warn({ wamid, mediaId, err: { message } }, 'downloading received media failed; delivering the message without it');
      if (err instanceof GraphCallError) this.onCallFailure(err.meta);
      return size !== undefined && Number.isFinite(size) ? { ...media, size } : media;
    }
  }

  /** Emits a status for a message this number sent through the gateway; false for anyone else's. */
  private async status(s: InboundStatus): Promise<boolean> {
    const messageId = await this.sent!.messageIdFor(s.wamid);
    if (!messageId) {
      this.log.info({ wamid: s.wamid, status: s.status }, 'status for a message not sent through the gateway; skipped');
      return false;
    }
    const data: {
      messageId: string;
      status: InboundStatus['status'];
      timestamp: string;
      error?: string;
      code?: string;
      providerCode?: number;
    } = { messageId, status: s.status, timestamp: s.timestamp };
    if (s.status === 'failed') {
      if (s.error) {
        data.code = classify(s.error).code;
        if (s.error.code !== undefined) data.providerCode = s.error.code;
        const title = s.error.title && s.error.title !== s.error.message ? `${s.error.title}: ` : '';
        data.error = `${title}${describeMeta(s.error)}`;
      } else {
        data.error = 'the Cloud API reported the message failed without saying why';
        data.code = 'provider_error';
      }
    }
    this.ctx!.emit({ type: 'message.status', data }, { eventId: statusEventId(s.wamid, s.status) });
    return true;
  }

  // ------------------------------------------------------------ helpers

  private startPruning(): void {
    const prune = () =>
      this.sent
        ?.prune()
        .then((n) => n > 0 && this.log.info({ pruned: n }, 'old sent messages pruned'))
        .catch((err: unknown) => this.log.warn({ err: { message: errorText(err) } }, 'pruning sent messages failed'));
    void prune();
    this.pruneTimer = setInterval(prune, PRUNE_INTERVAL_MS);
    this.pruneTimer.unref?.();
  }

  private setState(state: SessionState, reason?: string): void {
    this.state = state;
    this.reason = reason;
    this.ctx!.setState(state, reason);
  }
}

interface TemplatePage {
  data?: { name?: string; language?: string; status?: string; category?: string; components?: unknown[] }[];
  paging?: { next?: string };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
