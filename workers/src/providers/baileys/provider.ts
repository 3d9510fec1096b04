/**
 * The `baileys` provider: WhatsApp through Baileys (npm baileys 7.0.0-rc14),
 * its session in the instance's Postgres schema (auth-store.ts). Runs on
 * Node (the worker bundled by scripts/build-worker-node); Baileys is loaded
 * only when this provider is chosen.
 *
 * One socket at a time. Every socket gets a generation number; events of an
 * older socket (one the provider ended itself, for a logout or a stop) are
 * ignored, so a deliberate end never looks like a disconnect.
 */
import makeWASocket, {
  downloadMediaMessage,
  generateMessageIDV2,
  makeCacheableSignalKeyStore,
  proto,
  type BaileysEventMap,
  type CacheStore,
  type WAMessage,
  type WASocket,
} from 'baileys';
import { COMMAND_NAMES, MAX_INLINE_MEDIA_BYTES, type CommandArgs, type CommandName, type SessionState } from '../../../protocol/frames';
import { argsProblem } from '../../args';
import { backoffDelay } from '../../backoff';
import type { BaileysConfig } from '../../config';
import type { Logger } from '../../logger';
import { ProviderError, type Provider, type ProviderContext } from '../types';
import { AuthStoreError, openAuthStore, sentMessages, type AuthStore, type SentMessages } from './auth-store';
import { classifyDisconnect, describeError, DISCONNECT } from './disconnect';
import { loadMedia } from './media';
import { buildSend, isMediaSend, jidPhone, mapReceived, phoneJid, receiptStatus } from './messages';

export interface BaileysOptions extends BaileysConfig {
  /** The worker's LOG_LEVEL: Baileys' own logs are shown from debug down, otherwise warnings only. */
  logLevel: string;
}

const NOT_CONNECTED = 'Client not connected';
/** Baileys shows the first QR for 60 s and each next one for 20 s. */
const FIRST_QR_MS = 60_000;
const NEXT_QR_MS = 20_000;
/** Baileys' own connect timeout is 20 s; this catches whatever slips past it. */
const CONNECT_WATCHDOG_MS = 30_000;
/** How long the provider remembers which receipts it already emitted. */
const RECEIPT_MEMORY_MS = 24 * 60 * 60 * 1000;
const PRUNE_INTERVAL_MS = 60 * 60 * 1000;
/** Retry counters live this long (WhatsApp retries a message a few times within minutes). */
const RETRY_COUNTER_TTL_MS = 60 * 60 * 1000;

/** Baileys' CacheStore over a Map with a time to live and a size bound; lives as long as the provider, not a socket. */
export class MemoryCache implements CacheStore {
  private readonly entries = new Map<string, { value: unknown; expires: number }>();
  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}
  get<T>(key: string): T | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expires < Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value as T;
  }
  set<T>(key: string, value: T): void {
    this.entries.delete(key);
    this.entries.set(key, { value, expires: Date.now() + this.ttlMs });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }
  del(key: string): void {
    this.entries.delete(key);
  }
  flushAll(): void {
    this.entries.clear();
  }
}

/** Which history WhatsApp may push: the initial batch (no full sync), or none. */
export function historyFilter(mode: 'initial' | 'none') {
  const T = proto.HistorySync.HistorySyncType;
  const initial = new Set<number>([T.INITIAL_BOOTSTRAP, T.INITIAL_STATUS_V3, T.PUSH_NAME, T.NON_BLOCKING_DATA]);
  return (msg: proto.Message.IHistorySyncNotification): boolean => mode === 'initial' && initial.has(msg.syncType ?? -1);
}

const HANDLED_EVENTS = new Set<keyof BaileysEventMap>(['connection.update', 'creds.update', 'messages.upsert', 'messages.update']);

export class BaileysProvider implements Provider {
  readonly name = 'baileys';
  private ctx: ProviderContext | undefined;
  private log!: Logger;
  private baileysLog!: Logger;
  private auth: AuthStore | undefined;
  private sent: SentMessages | undefined;
  private sock: WASocket | undefined;
  private generation = 0;
  private state: SessionState = 'starting';
  private open = false;
  private stopped = false;
  private attempt = 0;
  private everOpen = false;
  private qrShown = 0;
  /** A pairing code was requested on this socket: its QRs are no longer shown. */
  private pairingRequested = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private connectWatchdog: ReturnType<typeof setTimeout> | undefined;
  private pruneTimer: ReturnType<typeof setInterval> | undefined;
  private readonly retryCounters = new MemoryCache(RETRY_COUNTER_TTL_MS);
  /** The furthest receipt emitted per WhatsApp id (1 delivered, 2 read). */
  private readonly receipts = new MemoryCache(RECEIPT_MEMORY_MS, 50_000);
  /** Inbound messages are mapped (and their media downloaded) one after another, in arrival order. */
  private inbound: Promise<void> = Promise.resolve();
  /** Credential writes, in order. */
  private credsWrites: Promise<void> = Promise.resolve();

  constructor(private readonly opts: BaileysOptions) {}

  async start(ctx: ProviderContext): Promise<void> {
    if (this.ctx) throw new Error('baileys provider started twice');
    this.ctx = ctx;
    this.log = ctx.log;
    const verbose = this.opts.logLevel === 'debug' || this.opts.logLevel === 'trace';
    this.baileysLog = ctx.log.child({ component: 'baileys' }, { level: verbose ? this.opts.logLevel : 'warn' });
    this.setState('starting');
    try {
      this.auth = await openAuthStore(ctx.store.sql, (name, statements) => ctx.store.migrate(name, statements));
      this.sent = sentMessages(ctx.store.sql);
    } catch (err) {
      const reason = err instanceof AuthStoreError ? err.message : `the Baileys store cannot be opened: ${describeError(err)}`;
      this.log.error({ err: { message: describeError(err) } }, 'baileys auth store unusable; staying failed');
      // Failed, not a crash: a restart would find the same store (the gateway sees why).
      this.setState('failed', reason);
      return;
    }
    if (this.stopped) return;
    this.log.info({ restored: this.auth.restored, me: this.auth.creds.me?.id }, 'baileys auth state loaded');
    this.startPruning();
    this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.connectWatchdog);
    clearInterval(this.pruneTimer);
    this.generation += 1;
    const sock = this.sock;
    this.sock = undefined;
    this.open = false;
    if (sock) await sock.end(undefined).catch(() => {});
    await this.credsWrites.catch(() => {});
  }

  async execute(name: CommandName, args: unknown): Promise<Record<string, unknown>> {
    if (!this.ctx || this.stopped) throw new ProviderError('not_ready', 'baileys provider is not running');
    if (!COMMAND_NAMES.includes(name) || name.startsWith('sandbox.') || name.startsWith('waba.')) {
      throw new ProviderError('unsupported_command', `the baileys provider does not support ${JSON.stringify(name)}`);
    }
    const problem = argsProblem(name, args);
    if (problem) throw new ProviderError('invalid_args', `invalid arguments for ${name}: ${problem}`);
    switch (name) {
      case 'send':
        return this.send(args as CommandArgs<'send'>);
      case 'read':
        return this.read(args as CommandArgs<'read'>);
      case 'pair-code':
        return this.pairCode(args as CommandArgs<'pair-code'>);
      case 'presence':
        return this.presence(args as CommandArgs<'presence'>);
      case 'logout':
        return this.logout();
      default:
        throw new ProviderError('unsupported_command', `the baileys provider does not support ${JSON.stringify(name)}`);
    }
  }

  // ------------------------------------------------------------ the socket

  private connect(): void {
    if (this.stopped || !this.auth) return;
    clearTimeout(this.reconnectTimer);
    const generation = ++this.generation;
    const auth = this.auth;
    this.pairingRequested = false;
    this.qrShown = 0;
    const sock = makeWASocket({
      waWebSocketUrl: this.opts.wsUrl,
      auth: { creds: auth.creds, keys: makeCacheableSignalKeyStore(auth.keys, this.baileysLog as never) },
      logger: this.baileysLog as never,
      markOnlineOnConnect: false,
      syncFullHistory: false,
      shouldSyncHistoryMessage: historyFilter(this.opts.historySync),
      msgRetryCounterCache: this.retryCounters,
      getMessage: async (key) => (key.id && this.sent ? this.sent.message(key.id) : undefined),
    });
    this.sock = sock;
    // Baileys listens for ws's 'unexpected-response' (an HTTP answer other than 101 to the upgrade) but never
    // acts on it, and ws then leaves the request open: the socket would hang forever, neither open nor closed.
    // End it as unavailable, so the close takes the normal backoff path.
    sock.ws.on('unexpected-response', (req: { destroy(): void }, res: { statusCode?: number; resume(): void }) => {
      res.resume();
      req.destroy();
      if (generation !== this.generation) return;
      const error = Object.assign(new Error(`WhatsApp answered the connection with HTTP ${res.statusCode ?? '?'}`), {
        output: { statusCode: DISCONNECT.unavailableService },
      });
      void sock.end(error as never);
    });
    // Never stuck in between: a socket that neither opens, shows a QR nor closes within this long is ended.
    this.armConnectWatchdog(sock, generation);
    sock.ev.process(async (events) => {
      if (generation !== this.generation) return;
      try {
        await this.onEvents(events, sock, generation);
      } catch (err) {
        this.log.error({ err }, 'handling a Baileys event failed');
      }
    });
  }

  private async onEvents(events: Partial<BaileysEventMap>, sock: WASocket, generation: number): Promise<void> {
    for (const name of Object.keys(events) as (keyof BaileysEventMap)[]) {
      if (!HANDLED_EVENTS.has(name)) this.log.debug({ event: name }, 'Baileys event ignored');
    }
    const creds = events['creds.update'];
    if (creds) {
      Object.assign(this.auth!.creds, creds);
      this.credsWrites = this.credsWrites
        .then(() => this.auth!.saveCreds())
        .catch((err: unknown) => this.log.error({ err }, 'saving the Baileys credentials failed'));
    }
    const update = events['connection.update'];
    if (update) await this.onConnectionUpdate(update, sock, generation);
    const upsert = events['messages.upsert'];
    if (upsert) {
      for (const msg of upsert.messages) {
        // Baileys' event buffer folds a receipt that arrives in the same window as the message's own
        // upsert into that upsert (its status) instead of a messages.update: read it from there too.
        const status = msg.key?.fromMe ? receiptStatus(msg.status) : undefined;
        if (status && msg.key.id) void this.emitReceipt(msg.key.id, status);
        this.queueInbound(msg, sock);
      }
    }
    const updates = events['messages.update'];
    if (updates) {
      for (const { key, update: u } of updates) {
        const status = receiptStatus(u.status);
        if (!status || !key.fromMe || !key.id) continue;
        void this.emitReceipt(key.id, status);
      }
    }
  }

  private armConnectWatchdog(sock: WASocket, generation: number): void {
    clearTimeout(this.connectWatchdog);
    this.connectWatchdog = setTimeout(() => {
      // A socket showing QRs or waiting for a pairing code is alive: it waits for the phone, not for WhatsApp.
      if (generation !== this.generation || this.open || this.qrShown > 0 || this.pairingRequested) return;
      this.log.warn({ afterMs: CONNECT_WATCHDOG_MS }, 'no answer from WhatsApp; ending the socket');
      const error = Object.assign(new Error(`no answer from WhatsApp within ${CONNECT_WATCHDOG_MS} ms`), {
        output: { statusCode: DISCONNECT.connectionLost },
      });
      void sock.end(error as never);
    }, CONNECT_WATCHDOG_MS);
  }

  private async onConnectionUpdate(update: BaileysEventMap['connection.update'], sock: WASocket, generation: number): Promise<void> {
    if (update.qr && !this.pairingRequested) {
      const ttl = this.qrShown === 0 ? FIRST_QR_MS : NEXT_QR_MS;
      this.qrShown += 1;
      if (this.state !== 'qr') this.setState('qr', 'waiting for QR scan');
      this.ctx!.setQr(update.qr, new Date(Date.now() + ttl));
    }
    if (update.isNewLogin) {
      this.setState('pairing', this.pairingRequested ? 'pairing code entered' : 'QR code scanned');
    }
    if (update.connection === 'open') {
      clearTimeout(this.connectWatchdog);
      this.open = true;
      this.attempt = 0;
      const reason = !this.everOpen && this.auth!.restored ? 'session restored' : 'connected to WhatsApp';
      this.everOpen = true;
      this.log.info({ me: sock.user?.id }, 'connected to WhatsApp');
      this.setState('connected', reason);
    }
    if (update.connection === 'close') {
      this.open = false;
      if (generation !== this.generation || this.stopped) return;
      const error = update.lastDisconnect?.error;
      const decision = classifyDisconnect(error);
      this.log.warn({ err: { message: describeError(error) }, decision }, 'WhatsApp connection closed');
      if (decision.state) this.setState(decision.state, decision.reason);
      switch (decision.action) {
        case 'restart':
          this.connect();
          return;
        case 'backoff': {
          const delayMs = backoffDelay(this.attempt++);
          this.reconnectTimer = setTimeout(() => this.connect(), delayMs);
          return;
        }
        case 'relogin':
          await this.credsWrites;
          try {
            await this.auth!.reset();
          } catch (err) {
            this.setState('failed', `clearing the logged-out session failed: ${describeError(err)}`);
            return;
          }
          this.everOpen = false;
          this.connect();
          return;
        case 'stop':
          this.generation += 1; // nothing from this socket matters any more
          this.sock = undefined;
          return;
      }
    }
  }

  // ------------------------------------------------------------ inbound

  private queueInbound(msg: WAMessage, sock: WASocket): void {
    this.inbound = this.inbound.then(() => this.receive(msg, sock)).catch((err: unknown) => this.log.error({ err, id: msg.key?.id }, 'mapping a received message failed'));
  }

  private async receive(msg: WAMessage, sock: WASocket): Promise<void> {
    const own = jidPhone(this.auth?.creds.me?.id);
    const mapped = mapReceived(msg, own);
    if (!mapped) return;
    const out = mapped.message;
    // Whether a target or quote is one of ours is known from what this number sent, whatever the key says.
    for (const field of ['target', 'replyTo'] as const) {
      const ref = out[field];
      if (ref && this.sent) out[field] = { ...ref, fromMe: (await this.sent.messageIdFor(ref.id).catch(() => undefined)) !== undefined };
    }
    if (mapped.media && out.media) {
      const size = mapped.media.size;
      if (size === undefined || size <= MAX_INLINE_MEDIA_BYTES) {
        try {
          const data = (await downloadMediaMessage(msg, 'buffer', {}, { logger: this.baileysLog as never, reuploadRequest: sock.updateMediaMessage })) as Buffer;
          if (data.length <= MAX_INLINE_MEDIA_BYTES) out.media = { ...out.media, data: data.toString('base64'), size: data.length };
        } catch (err) {
          this.log.warn({ err: { message: describeError(err) }, id: out.id }, 'downloading received media failed; delivering the message without it');
        }
      }
    }
    this.ctx!.emit({ type: 'message.received', data: out });
  }

  private async emitReceipt(waId: string, status: 'delivered' | 'read'): Promise<void> {
    try {
      const messageId = await this.sent?.messageIdFor(waId);
      if (!messageId) return; // not sent through the gateway
      this.advance(waId, messageId, status);
    } catch (err) {
      this.log.warn({ err, waId }, 'cannot map a receipt');
    }
  }

  /**
   * Reports a sent message's status forward only, once each, and never out
   * of order: the same receipt may reach the provider through two events,
   * and the phone's delivery receipt may arrive before sendMessage returns
   * (then `sent` is reported first, with it).
   */
  private advance(waId: string, messageId: string, status: 'sent' | 'delivered' | 'read'): void {
    const order = ['sent', 'delivered', 'read'] as const;
    const reached = this.receipts.get<number>(waId) ?? 0;
    const target = order.indexOf(status) + 1;
    if (target <= reached) return;
    this.receipts.set(waId, target);
    const timestamp = new Date().toISOString();
    for (const s of order.slice(reached, target)) this.ctx!.emit({ type: 'message.status', data: { messageId, status: s, timestamp } });
  }

  // ------------------------------------------------------------ commands

  private connectedSocket(): WASocket {
    if (!this.sock || !this.open || this.state !== 'connected') throw new ProviderError('not_connected', NOT_CONNECTED);
    return this.sock;
  }

  private async send(args: CommandArgs<'send'>): Promise<Record<string, unknown>> {
    const sock = this.connectedSocket();
    const media = isMediaSend(args) ? await loadMedia(args.media, this.opts.mediaAllowPrivate) : undefined;
    const sent = this.sent!;
    let waId: string | undefined;
    try {
      waId = await sent.waIdFor(args.messageId);
      if (!waId) {
        waId = generateMessageIDV2(sock.user?.id);
        // Recorded before sending, so an early receipt finds it.
        await sent.reserve(waId, args.messageId, args.to);
      }
    } catch (err) {
      throw new ProviderError('send_failed', 'the state store is unavailable', { cause: err });
    }
    const built = buildSend(args, waId, media);
    let result: WAMessage | undefined;
    try {
      result = await sock.sendMessage(built.jid, built.content, built.options);
    } catch (err) {
      const message = describeError(err);
      if (media && /upload|media/i.test(message)) {
        throw new ProviderError('media_failed', `uploading the media to WhatsApp failed: ${message}`, { cause: err });
      }
      // WhatsApp's rate limit (an IQ error 429 `rate-overlimit`): the gateway pauses the number (pacing).
      if ((err as { output?: { statusCode?: number } })?.output?.statusCode === 429 || /rate-overlimit/i.test(message)) {
        throw new ProviderError('rate_limited', `WhatsApp rate-limited the send: ${message}`, { cause: err, details: { providerCode: 429 } });
      }
      throw new ProviderError('send_failed', `sending the message failed: ${message}`, { cause: err });
    }
    const providerMessageId = result?.key.id ?? waId;
    if (result?.message) await sent.keep(providerMessageId, result.message).catch((err: unknown) => this.log.warn({ err }, 'keeping the sent message failed'));
    this.advance(providerMessageId, args.messageId, 'sent');
    return { messageId: args.messageId, providerMessageId, status: 'sent' };
  }

  private async read(args: CommandArgs<'read'>): Promise<Record<string, unknown>> {
    const sock = this.connectedSocket();
    const remoteJid = phoneJid(args.chat);
    try {
      await sock.readMessages(args.messageIds.map((id) => ({ remoteJid, id, fromMe: false })));
    } catch (err) {
      throw new ProviderError('send_failed', `marking the messages read failed: ${describeError(err)}`, { cause: err });
    }
    return {};
  }

  /** The typing indicator in one chat: `composing` shows "typing…", `paused` stops it. */
  private async presence(args: CommandArgs<'presence'>): Promise<Record<string, unknown>> {
    const sock = this.connectedSocket();
    try {
      await sock.sendPresenceUpdate(args.state, phoneJid(args.chat));
    } catch (err) {
      throw new ProviderError('send_failed', `sending the presence failed: ${describeError(err)}`, { cause: err });
    }
    return {};
  }

  private async pairCode(args: CommandArgs<'pair-code'>): Promise<Record<string, unknown>> {
    if (this.auth?.creds.account && this.auth.creds.me?.id) {
      throw new ProviderError('already_connected', 'this instance is already linked to WhatsApp; log out first');
    }
    const own = this.ctx!.phone();
    if (own && args.phone !== own) throw new ProviderError('invalid_args', `phone ${args.phone} is not this instance's number (${own})`);
    const sock = this.sock;
    if (!sock || (this.state !== 'qr' && this.state !== 'pairing')) throw new ProviderError('not_connected', NOT_CONNECTED);
    let code: string;
    try {
      this.pairingRequested = true;
      code = await sock.requestPairingCode(args.phone);
    } catch (err) {
      this.pairingRequested = false;
      throw new ProviderError('not_ready', `requesting a pairing code failed: ${describeError(err)}`, { cause: err });
    }
    this.setState('pairing', 'waiting for the pairing code to be entered on the phone');
    return { code: code.replace(/-/g, '') };
  }

  private async logout(): Promise<Record<string, unknown>> {
    if (!this.auth) return this.logoutUnusableStore();
    clearTimeout(this.reconnectTimer);
    const sock = this.sock;
    const wasOpen = this.open;
    // The socket's own close (401 after a logout) must not be taken for the phone's unlink.
    this.generation += 1;
    this.sock = undefined;
    this.open = false;
    if (sock) {
      if (wasOpen) {
        await sock.logout().catch((err: unknown) => this.log.warn({ err: { message: describeError(err) } }, 'logout request failed; forgetting the session locally'));
      } else {
        await sock.end(undefined).catch(() => {});
      }
    }
    await this.credsWrites;
    try {
      await this.auth.reset();
    } catch (err) {
      throw new ProviderError('internal', `deleting the session failed: ${describeError(err)}`, { cause: err });
    }
    this.everOpen = false;
    this.setState('logged_out', 'logged out via API');
    this.connect();
    return { state: 'logged_out' };
  }

  /**
   * A store that could not be opened (state failed): logging out is the way out. Its rows are deleted
   * (credentials, keys, sent messages, the format version), the store is opened again and a fresh QR follows.
   */
  private async logoutUnusableStore(): Promise<Record<string, unknown>> {
    const { store } = this.ctx!;
    try {
      await store.sql.begin(async (tx) => {
        for (const table of ['baileys_creds', 'baileys_keys', 'baileys_sent_messages', 'baileys_schema']) {
          await tx.unsafe(`delete from ${table}`);
        }
      });
      this.auth = await openAuthStore(store.sql, (name, statements) => store.migrate(name, statements));
      this.sent = sentMessages(store.sql);
    } catch (err) {
      throw new ProviderError('internal', `the Baileys store is unusable and could not be cleared: ${describeError(err)}`, { cause: err });
    }
    this.setState('logged_out', 'logged out via API');
    this.startPruning();
    this.connect();
    return { state: 'logged_out' };
  }

  // ------------------------------------------------------------ helpers

  private startPruning(): void {
    clearInterval(this.pruneTimer);
    this.prune();
    this.pruneTimer = setInterval(() => this.prune(), PRUNE_INTERVAL_MS);
    this.pruneTimer.unref?.();
  }

  private prune(): void {
    this.sent
      ?.prune(this.opts.sentRetentionDays)
      .then((n) => n > 0 && this.log.info({ pruned: n }, 'old sent messages pruned'))
      .catch((err: unknown) => this.log.warn({ err }, 'pruning sent messages failed'));
  }

  private setState(state: SessionState, reason?: string): void {
    this.state = state;
    this.ctx!.setState(state, reason);
  }
}
