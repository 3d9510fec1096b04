import { describe, expect, test } from 'bun:test';
import { DisconnectReason } from 'baileys';
import { classifyDisconnect, DISCONNECT, disconnectCode } from './disconnect';

/** What Baileys puts in lastDisconnect.error: a Boom with output.statusCode. */
const boom = (statusCode: number, message = 'x') => Object.assign(new Error(message), { isBoom: true, output: { statusCode } });

describe('classifyDisconnect', () => {
  test("the codes are Baileys' own DisconnectReason values", () => {
    expect(DISCONNECT.restartRequired).toBe(DisconnectReason.restartRequired);
    expect(DISCONNECT.loggedOut).toBe(DisconnectReason.loggedOut);
    expect(DISCONNECT.forbidden).toBe(DisconnectReason.forbidden);
    expect(DISCONNECT.connectionReplaced).toBe(DisconnectReason.connectionReplaced);
    expect(DISCONNECT.connectionClosed).toBe(DisconnectReason.connectionClosed);
    expect(DISCONNECT.connectionLost).toBe(DisconnectReason.connectionLost);
    expect(DISCONNECT.multideviceMismatch).toBe(DisconnectReason.multideviceMismatch);
    expect(DISCONNECT.unavailableService).toBe(DisconnectReason.unavailableService);
  });

  test('515 (restart required, normal after linking): reconnect at once, no state change', () => {
    expect(classifyDisconnect(boom(515, 'Stream Errored (restart required)'))).toEqual({ action: 'restart' });
  });

  test('401: logged_out, the store is cleared and a fresh QR follows', () => {
    expect(classifyDisconnect(boom(401, 'Connection Failure'))).toMatchObject({ state: 'logged_out', action: 'relogin', reason: expect.stringContaining('logged out') });
  });

  test('403: failed, banned; 440: failed, replaced, never a reconnect loop; 405 and outdated: failed with the reason', () => {
    expect(classifyDisconnect(boom(403))).toMatchObject({ state: 'failed', action: 'stop', reason: expect.stringContaining('banned') });
    expect(classifyDisconnect(boom(440, 'Stream Errored (conflict)'))).toMatchObject({ state: 'failed', action: 'stop', reason: expect.stringContaining('replaced') });
    expect(classifyDisconnect(boom(405, 'Connection Failure'))).toMatchObject({ state: 'failed', action: 'stop', reason: expect.stringContaining('405') });
    expect(classifyDisconnect(boom(400, 'client outdated'))).toMatchObject({ state: 'failed', action: 'stop', reason: expect.stringContaining('outdated') });
    expect(classifyDisconnect(boom(411))).toMatchObject({ state: 'failed', action: 'stop' });
  });

  test('anything else: reconnecting with backoff, the reason names the code and the error', () => {
    for (const code of [408, 428, 500, 503, 599]) {
      const d = classifyDisconnect(boom(code, 'Connection Terminated'));
      expect(d).toMatchObject({ state: 'reconnecting', action: 'backoff' });
      expect(d.reason).toContain(String(code));
      expect(d.reason).toContain('Connection Terminated');
    }
    expect(classifyDisconnect(new Error('connect ECONNREFUSED 127.0.0.1:9'))).toMatchObject({
      state: 'reconnecting',
      action: 'backoff',
      reason: 'cannot reach WhatsApp (no code: connect ECONNREFUSED 127.0.0.1:9)',
    });
    expect(classifyDisconnect(undefined)).toMatchObject({ state: 'reconnecting', action: 'backoff' });
  });

  test('disconnectCode reads a Boom status and nothing else', () => {
    expect(disconnectCode(boom(515))).toBe(515);
    expect(disconnectCode(new Error('x'))).toBeUndefined();
    expect(disconnectCode({ output: { statusCode: '401' } })).toBeUndefined();
  });
});
