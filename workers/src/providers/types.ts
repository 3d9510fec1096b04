import type { CommandName, SessionState, WorkerEvent } from '../../protocol/frames';
import type { Logger } from '../logger';
import type { StateStore } from '../state/store';

/**
 * How an engine reports the WhatsApp session to the gateway (the gateway
 * connection implements it). Calls never block or fail; while the gateway is
 * unreachable the connection buffers them (latest state and QR, every event
 * in order).
 */
export interface SessionReporter {
  setState(state: SessionState, reason?: string): void;
  /** A new QR code replaces the previous one. */
  setQr(code: string, expiresAt: Date): void;
  /**
   * An event the gateway must store; the connection resends it until acked.
   * `eventId`: a stable id the provider derives from the upstream's own ids
   * (waba: `waba:m:<wamid>`), so the same upstream event emitted twice (a
   * redelivered webhook) is stored once; without it the connection makes one.
   */
  emit(event: WorkerEvent, opts?: { eventId?: string }): void;
  /** The instance's own phone number from the welcome frame; undefined before the first welcome. */
  phone(): string | undefined;
  log: Logger;
}

/**
 * What the worker gives an engine: the reporter, plus the instance's state
 * store, where the engine keeps whatever must survive a restart (a pairing,
 * credentials and signal keys, pending work) in tables of its own. The worker
 * holds the instance's lock for as long as the store is open, so no other
 * worker writes there meanwhile.
 */
export interface ProviderContext extends SessionReporter {
  store: StateStore;
}

/**
 * One WhatsApp engine (sandbox now; Baileys, whatsmeow, wwebjs later). The
 * connection serialises commands, so execute is never called concurrently.
 */
export interface Provider {
  readonly name: string;
  start(ctx: ProviderContext): Promise<void>;
  /** Stops every timer and socket of the engine; no context calls afterwards. */
  stop(): Promise<void>;
  /** Runs one command; failures are thrown as ProviderError. */
  execute(name: CommandName, args: unknown): Promise<Record<string, unknown>>;
}

/** Error codes the gateway may see in `result.error.code`. */
export type ProviderErrorCode =
  | 'not_connected'
  | 'already_connected'
  | 'not_ready'
  | 'invalid_args'
  | 'unsupported_command'
  | (string & {});

/** What a provider may add to an error: the upstream's own code, and when a retry may work. */
export interface ProviderErrorDetails {
  /** The provider's own error code (waba: Meta's, e.g. 131047). */
  providerCode?: number;
  /** Seconds after which a retry may succeed. */
  retryAfter?: number;
}

/** A failure the gateway reports to the API caller: code is machine-readable, message is for people. */
export class ProviderError extends Error {
  constructor(
    readonly code: ProviderErrorCode,
    message: string,
    options?: { cause?: unknown; details?: ProviderErrorDetails },
  ) {
    super(message, options);
    this.name = 'ProviderError';
    this.details = options?.details;
  }

  readonly details?: ProviderErrorDetails;
}
