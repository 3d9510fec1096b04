/** Small pieces every screen uses. */
import type { ComponentChildren } from 'preact';
import { ApiError } from './api';

/** An error as a person reads it: the gateway's message and its code. */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) return err.status === 0 ? err.message : `${err.message} (${err.code})`;
  return err instanceof Error ? err.message : String(err);
}

/**
 * An error in an alert. `hints` give, by the gateway's error code, a first
 * sentence saying what it means for the person (what happened to what they
 * asked for); the gateway's message and code follow.
 */
export function ErrorBox({ error, testid = 'error', hints }: { error: unknown; testid?: string; hints?: Record<string, string> }) {
  if (!error) return null;
  const hint = error instanceof ApiError ? hints?.[error.code] : undefined;
  return (
    <p class="notice error" role="alert" data-testid={testid}>
      {hint && <strong>{hint} </strong>}
      {describeError(error)}
    </p>
  );
}

export function Notice({ kind = 'info', children, testid }: { kind?: 'info' | 'warn' | 'error' | 'ok'; children: ComponentChildren; testid?: string }) {
  return (
    <div class={`notice ${kind}`} role={kind === 'error' ? 'alert' : 'status'} data-testid={testid}>
      {children}
    </div>
  );
}

const TONE: Record<string, string> = {
  running: 'ok',
  connected: 'ok',
  read: 'ok',
  delivered: 'ok',
  sent: 'info',
  qr: 'warn',
  pairing: 'warn',
  starting: 'info',
  creating: 'info',
  reconnecting: 'warn',
  migrating: 'warn',
  queued: 'info',
  scheduled: 'info',
  stopped: 'muted',
  logged_out: 'bad',
  failed: 'bad',
  error: 'bad',
};

/** A status or state as a coloured word (the word itself carries the meaning, not the colour). */
export function Badge({ value, testid }: { value: string; testid?: string }) {
  return (
    <span class={`badge ${TONE[value] ?? 'muted'}`} data-testid={testid}>
      {value}
    </span>
  );
}

export const fmtTime = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleTimeString() : '');
