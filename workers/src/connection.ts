import type { Static } from '@sinclair/typebox';
import {
  CloseCodes,
  GatewayFrame,
  parseFrame,
  PROTOCOL_VERSION,
  type QrFrame,
  type SessionState,
  type WorkerEvent,
  type WorkerFrame,
  type WorkerUsage,
} from '../protocol/frames';
import { DEFAULT_BACKOFF, type BackoffOptions } from './backoff';
import { CommandRunner } from './command-runner';
import { EventBuffer, MAX_BUFFERED_EVENTS } from './event-buffer';
import { GatewayRotation } from './failover';
import type { Logger } from './logger';
import type { Provider, SessionReporter } from './providers/types';
import { MAX_CACHED_RESULTS, ResultCache, type ResultFrameT } from './result-cache';
import { processUsage } from './usage';
import { WORKER_VERSION } from './version';

type Timer = ReturnType<typeof setTimeout>;
type QrFrameT = Static<typeof QrFrame>;

export interface ConnectionOptions {
  /**
   * Full WebSocket URLs (a gateway base URL + WORKER_WS_PATH each), in the
   * order to try them (failover.ts dialOrder): one per gateway replica.
   */
  urls: readonly string[];
  instanceId: number;
  /** Secret: sent in the hello frame only. */
  token: string;
  provider: Provider;
  log: Logger;
  workerVersion?: string;
  /** Called when the gateway says this worker must go (4401, 4426: 1; 4409: 0). Defaults to process.exit. */
  exit?: (code: number) => void;
  /** How often the worker pings (with its usage) after the first ping, which follows each welcome. */
  pingIntervalMs?: number;
  /** What the pings report (default: this process's RSS and CPU time); undefined leaves `usage` out. */
  usage?: () => WorkerUsage | undefined;
  /** With no frame at all for this long (or no open after dialling) the socket counts as dead. */
  idleTimeoutMs?: number;
  /** A dial that has not opened after this long is abandoned for the next URL (default 10 s, as the Go worker's). */
  dialTimeoutMs?: number;
  backoff?: BackoffOptions;
  random?: () => number;
  maxEvents?: number;
  maxResults?: number;
  /** How long stop() waits for the close handshake. */
  closeTimeoutMs?: number;
  /** Queue the gateway's commands until acceptCommands() (the provider starts after the socket). */
  holdCommands?: boolean;
}

const PING_INTERVAL_MS = 15_000;
const IDLE_TIMEOUT_MS = 45_000;
const DIAL_TIMEOUT_MS = 10_000;
const CLOSE_TIMEOUT_MS = 2_000;
/** Warn about dropped events at the first drop and then every this many, not at each one. */
const DROP_WARN_EVERY = 1_000;

/**
 * The worker's one WebSocket to the gateway (protocol v1, see
 * workers/protocol/README.md). It dials, says hello, and after each welcome
 * flushes what the gateway may have missed: the latest state, the pending
 * QR, every unacked event and the results never sent. It reconnects until
 * stopped, moving through the gateway URLs (failover.ts: the next one at once,
 * backoff after a whole round failed); the provider keeps working while
 * disconnected and reports through `context`, which never blocks.
 */
export class GatewayConnection {
  readonly context: SessionReporter;
  readonly events: EventBuffer;
  readonly results: ResultCache;
  private readonly runner: CommandRunner;
  private readonly log: Logger;
  private ws: WebSocket | undefined;
  private welcomed = false;
  private stopped = false;
  private readonly rotation: GatewayRotation;
  private lastFrameAt = 0;
  private reconnectTimer: Timer | undefined;
  private dialTimer: Timer | undefined;
  private pingTimer: Timer | undefined;
  private idleTimer: Timer | undefined;
  private current: { state: SessionState; reason?: string } = { state: 'starting' };
  private qr: { frame: QrFrameT; expiresAtMs: number } | undefined;
  private phoneNumber: string | undefined;

  constructor(private readonly opts: ConnectionOptions) {
    this.log = opts.log.child({ component: 'connection' });
    this.rotation = new GatewayRotation(opts.urls, opts.backoff ?? DEFAULT_BACKOFF, opts.random);
    this.events = new EventBuffer(opts.maxEvents ?? MAX_BUFFERED_EVENTS);
    this.results = new ResultCache(opts.maxResults ?? MAX_CACHED_RESULTS);
    this.runner = new CommandRunner(opts.provider, this.results, opts.log.child({ component: 'commands' }), {
      held: opts.holdCommands,
    });
    const providerLog = opts.log.child({ component: 'provider', provider: opts.provider.name });
    this.context = {
      setState: (state, reason) => this.setState(state, reason),
      setQr: (code, expiresAt) => this.setQr(code, expiresAt),
      emit: (event, opts) => this.emit(event, opts?.eventId),
      phone: () => this.phoneNumber,
      log: providerLog,
    };
  }

  /** Dials the gateway; reconnects on its own until stop(). */
  start(): void {
    if (this.stopped) throw new Error('connection already stopped');
    this.connect();
  }

  /** Runs the commands held since the start (holdCommands) and every later one. */
  acceptCommands(): void {
    this.runner.open();
  }

  /** No command starts from now on; resolves when the running one has replied (or been marked unsent). */
  stopCommands(): Promise<void> {
    return this.runner.close();
  }

  /** No more reconnects; closes the socket with 1000 and waits (bounded) for the close. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.clearTimers();
    clearTimeout(this.reconnectTimer);
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        terminate(ws);
        resolve();
      }, this.opts.closeTimeoutMs ?? CLOSE_TIMEOUT_MS);
      ws.addEventListener('close', () => {
        clearTimeout(timer);
        resolve();
      });
      try {
        ws.close(1000, 'worker stopping');
      } catch (err) {
        this.log.warn({ err }, 'closing the gateway socket failed');
        clearTimeout(timer);
        terminate(ws);
        resolve();
      }
    });
    this.log.info('disconnected from gateway');
  }

  /** True between a welcome and the next disconnect. */
  get ready(): boolean {
    return this.welcomed && this.ws?.readyState === WebSocket.OPEN;
  }

  // ------------------------------------------------------------ provider side

  private setState(state: SessionState, reason?: string): void {
    this.current = reason === undefined ? { state } : { state, reason };
    // A QR belongs to the 'qr' state; any other state makes it stale.
    if (state !== 'qr') this.qr = undefined;
    this.log.info({ state, reason }, 'session state');
    this.sendIfReady({ type: 'state', ...this.current });
  }

  private setQr(code: string, expiresAt: Date): void {
    const frame: QrFrameT = { type: 'qr', code, expiresAt: expiresAt.toISOString() };
    this.qr = { frame, expiresAtMs: expiresAt.getTime() };
    if (this.current.state === 'qr') this.sendIfReady(frame);
  }

  private emit(event: WorkerEvent, eventId?: string): void {
    const { frame, dropped } = this.events.push(event, eventId);
    if (dropped && (this.events.dropped === 1 || this.events.dropped % DROP_WARN_EVERY === 0)) {
      this.log.warn(
        { dropped: this.events.dropped, buffered: this.events.size, droppedEventId: dropped.eventId },
        'event buffer full while the gateway is away; dropping the oldest events',
      );
    }
    this.sendIfReady(frame);
  }

  // ------------------------------------------------------------ socket side

  private connect(): void {
    if (this.stopped) return;
    // A host name is resolved again at every dial (by the runtime): a DNS name listing the replicas works too.
    const url = this.rotation.url;
    let ws: WebSocket;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      this.log.error({ err, url }, 'cannot open a WebSocket to the gateway');
      this.scheduleReconnect();
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.welcomed = false;
    // The watchdogs also bound the dial itself: a blackholed address would otherwise hang for minutes.
    this.lastFrameAt = Date.now();
    this.armIdleWatchdog();
    const dialTimeoutMs = this.opts.dialTimeoutMs ?? DIAL_TIMEOUT_MS;
    this.dialTimer = setTimeout(() => {
      if (ws === this.ws && ws.readyState === WebSocket.CONNECTING) this.dropSocket(`no open from ${url} after ${dialTimeoutMs} ms`);
    }, dialTimeoutMs);
    // Every handler checks it still owns the current socket: a dropped socket may still fire events.
    ws.addEventListener('open', () => {
      if (ws !== this.ws) return;
      clearTimeout(this.dialTimer);
      this.log.info({ url }, 'connected to gateway; saying hello');
      this.lastFrameAt = Date.now();
      this.sendRaw({
        type: 'hello',
        protocol: PROTOCOL_VERSION,
        instanceId: this.opts.instanceId,
        token: this.opts.token,
        provider: this.opts.provider.name,
        workerVersion: this.opts.workerVersion ?? WORKER_VERSION,
      });
    });
    ws.addEventListener('message', (ev) => {
      if (ws === this.ws) this.onMessage(ev.data);
    });
    ws.addEventListener('error', (ev) => {
      if (ws === this.ws) this.log.debug({ error: (ev as ErrorEvent).message }, 'gateway socket error');
    });
    ws.addEventListener('close', (ev) => {
      if (ws === this.ws) this.onClose(ev.code, ev.reason, url);
    });
  }

  private onClose(code: number, reason: string, url: string): void {
    this.ws = undefined;
    this.welcomed = false;
    this.clearTimers();
    if (this.stopped) return;
    if (code === CloseCodes.unauthorized || code === CloseCodes.unsupportedProtocol) {
      // Retrying cannot help: the token or the protocol is wrong. The gateway restarts workers with a fresh token.
      this.log.error({ code, reason }, 'gateway rejected this worker; exiting');
      this.stopped = true;
      this.exit(1);
      return;
    }
    if (code === CloseCodes.replaced) {
      this.log.warn({ code, reason }, 'a newer worker for this instance replaced this one; exiting');
      this.stopped = true;
      this.exit(0);
      return;
    }
    // A failed dial closes too (1006, before any open).
    this.log.warn({ code, reason, url }, 'gateway connection closed; reconnecting');
    this.scheduleReconnect();
  }

  /** The current URL failed: the next one at once, or (after a whole round failed) the backoff first. */
  private scheduleReconnect(): void {
    if (this.stopped) return;
    const { url, delayMs, failedRounds } = this.rotation.failed();
    if (delayMs === 0) this.log.info({ url }, 'trying the next gateway URL');
    else this.log.info({ attempt: failedRounds, delayMs, url }, 'reconnecting to gateway');
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), delayMs);
  }

  /** Gives up on a socket that went silent, without waiting for a close handshake it may never finish. */
  private dropSocket(reason: string): void {
    const ws = this.ws;
    this.ws = undefined;
    this.welcomed = false;
    this.clearTimers();
    if (ws) terminate(ws);
    this.log.warn({ reason, url: this.rotation.url }, 'dropped the gateway connection; reconnecting');
    this.scheduleReconnect();
  }

  private onMessage(data: unknown): void {
    this.lastFrameAt = Date.now();
    const frame = parseFrame(GatewayFrame, data instanceof ArrayBuffer ? new Uint8Array(data) : data);
    if (!frame) {
      this.log.warn({ bytes: frameSize(data) }, 'ignoring a frame from the gateway that matches no schema');
      return;
    }
    switch (frame.type) {
      case 'welcome':
        return this.onWelcome(frame);
      case 'command':
        void this.runner.run(frame, (result) => this.sendResult(result));
        return;
      case 'ack':
        if (!this.events.ack(frame.eventId)) this.log.debug({ eventId: frame.eventId }, 'ack for an event not pending');
        return;
      case 'ping':
        this.sendRaw({ type: 'pong', t: frame.t });
        return;
      case 'pong':
        return; // lastFrameAt is all a pong is for
    }
  }

  private onWelcome(frame: Extract<GatewayFrame, { type: 'welcome' }>): void {
    if (this.welcomed) {
      this.log.warn('second welcome on one connection ignored');
      return;
    }
    if (frame.instanceId !== this.opts.instanceId || frame.protocol !== PROTOCOL_VERSION) {
      this.log.error(
        { welcomeInstanceId: frame.instanceId, welcomeProtocol: frame.protocol, protocol: PROTOCOL_VERSION },
        'welcome does not match this worker; continuing',
      );
    }
    this.welcomed = true;
    this.rotation.connected();
    this.phoneNumber = frame.phone;
    this.flush();
    // One ping (with the usage report) right away, then one per interval.
    this.ping();
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.ping(), this.opts.pingIntervalMs ?? PING_INTERVAL_MS);
  }

  /** A ping carrying this process's usage; a failing measurement only leaves the usage out. */
  private ping(): void {
    let usage: WorkerUsage | undefined;
    try {
      usage = (this.opts.usage ?? processUsage)();
    } catch (err) {
      this.log.debug({ err }, 'cannot measure the usage for the ping');
    }
    this.sendIfReady(usage ? { type: 'ping', t: Date.now(), usage } : { type: 'ping', t: Date.now() });
  }

  /** README step 4: state, pending QR, unacked events, unsent results, in that order. */
  private flush(): void {
    this.sendRaw({ type: 'state', ...this.current });
    const qr = this.current.state === 'qr' && this.qr && this.qr.expiresAtMs > Date.now() ? this.qr.frame : undefined;
    if (qr) this.sendRaw(qr);
    const events = this.events.unacked();
    for (const frame of events) this.sendRaw(frame);
    const results = this.results.takeUnsent();
    for (const result of results) this.sendRaw(result);
    this.log.info(
      { url: this.rotation.url, state: this.current.state, qr: Boolean(qr), events: events.length, results: results.length },
      'welcomed by gateway; flushed',
    );
  }

  private sendResult(result: ResultFrameT): void {
    if (!this.sendIfReady(result)) this.results.markUnsent(result.commandId);
  }

  /** Frames other than hello and pong wait for the welcome; until then they are buffered or dropped as documented. */
  private sendIfReady(frame: WorkerFrame): boolean {
    return this.welcomed ? this.sendRaw(frame) : false;
  }

  private sendRaw(frame: WorkerFrame): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch (err) {
      this.log.warn({ err, frameType: frame.type }, 'sending a frame to the gateway failed');
      return false;
    }
  }

  private armIdleWatchdog(): void {
    const idleTimeoutMs = this.opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
    clearTimeout(this.idleTimer);
    // Re-armed lazily for the remaining time rather than reset at every frame.
    const check = () => {
      const silentMs = Date.now() - this.lastFrameAt;
      if (silentMs >= idleTimeoutMs) this.dropSocket(`no frame from the gateway (or no open) for ${silentMs} ms`);
      else this.idleTimer = setTimeout(check, idleTimeoutMs - silentMs);
    };
    this.idleTimer = setTimeout(check, idleTimeoutMs);
  }

  private clearTimers(): void {
    clearInterval(this.pingTimer);
    clearTimeout(this.idleTimer);
    clearTimeout(this.dialTimer);
    this.pingTimer = undefined;
    this.idleTimer = undefined;
    this.dialTimer = undefined;
  }

  private exit(code: number): void {
    (this.opts.exit ?? ((c: number) => process.exit(c)))(code);
  }
}

function frameSize(data: unknown): number | undefined {
  if (typeof data === 'string') return data.length;
  if (data instanceof ArrayBuffer) return data.byteLength;
  return undefined;
}

/**
 * Drops a socket without the close handshake. Bun's WebSocket has
 * terminate(); Node's (undici) has not, and there close() is the nearest:
 * every handler already ignores a socket that is no longer the current one.
 */
function terminate(ws: WebSocket): void {
  const bunTerminate = (ws as WebSocket & { terminate?: () => void }).terminate;
  try {
    if (typeof bunTerminate === 'function') bunTerminate.call(ws);
    else ws.close();
  } catch {
    // already closed
  }
}
