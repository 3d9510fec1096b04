/**
 * Baileys' connection closes → the protocol's session states, each with a
 * reason a person can act on, and what the provider does next. Pure: the
 * provider applies the decision.
 *
 * Status codes are Baileys' DisconnectReason values (Boom status codes on
 * `lastDisconnect.error`), written out so this module loads without Baileys.
 */
import type { SessionState } from '../../../protocol/frames';

export const DISCONNECT = {
  connectionClosed: 428,
  connectionLost: 408,
  loggedOut: 401,
  forbidden: 403,
  methodNotAllowed: 405,
  multideviceMismatch: 411,
  connectionReplaced: 440,
  badSession: 500,
  unavailableService: 503,
  restartRequired: 515,
} as const;

/**
 * - `restart`: open a new socket at once (no state change: normal after linking);
 * - `backoff`: a new socket after the backoff delay;
 * - `relogin`: forget the session (store cleared) and open a new socket for a fresh QR;
 * - `stop`: no new socket; the state stays until the gateway restarts or logs out the worker.
 */
export type DisconnectAction = 'restart' | 'backoff' | 'relogin' | 'stop';

export interface DisconnectDecision {
  /** undefined: keep the current state (a restart is not worth a state change). */
  state?: SessionState;
  reason?: string;
  action: DisconnectAction;
}

/** What Baileys puts in `lastDisconnect.error`: a Boom error, or any Error. */
export function disconnectCode(error: unknown): number | undefined {
  const boom = error as { output?: { statusCode?: unknown }; isBoom?: boolean } | undefined;
  const code = boom?.output?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  if (typeof error === 'string') return error;
  return 'connection closed';
}

export function classifyDisconnect(error: unknown): DisconnectDecision {
  const code = disconnectCode(error);
  const text = describeError(error);
  switch (code) {
    case DISCONNECT.restartRequired:
      return { action: 'restart' };
    case DISCONNECT.loggedOut:
      return { state: 'logged_out', reason: 'logged out from the phone (WhatsApp ended the session: 401)', action: 'relogin' };
    case DISCONNECT.forbidden:
      return { state: 'failed', reason: `banned: WhatsApp refused this number (403: ${text})`, action: 'stop' };
    case DISCONNECT.connectionReplaced:
      return {
        state: 'failed',
        reason: 'replaced: another session took over this device (440); not reconnecting, restart or relink the instance',
        action: 'stop',
      };
    case DISCONNECT.methodNotAllowed:
      return { state: 'failed', reason: `WhatsApp refused this client version (405: ${text}); update the Baileys worker`, action: 'stop' };
    case DISCONNECT.multideviceMismatch:
      return { state: 'failed', reason: `multi-device mismatch (411: ${text}); relink the instance`, action: 'stop' };
  }
  if (/outdated|update required|client version/i.test(text)) {
    return { state: 'failed', reason: `WhatsApp says this client is outdated (${code ?? 'no code'}: ${text}); update the Baileys worker`, action: 'stop' };
  }
  const what =
    code === DISCONNECT.connectionLost
      ? 'connection lost or timed out'
      : code === DISCONNECT.connectionClosed
        ? 'connection closed'
        : code === DISCONNECT.unavailableService
          ? 'WhatsApp unavailable'
          : code === DISCONNECT.badSession
            ? 'bad session'
            : 'cannot reach WhatsApp';
  return { state: 'reconnecting', reason: `${what} (${code ?? 'no code'}: ${text})`, action: 'backoff' };
}
