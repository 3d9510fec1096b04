/**
 * Per-instance pacing settings (anti-ban): what `PATCH /api/instances/:id`
 * accepts under `pacing`, the defaults, and the effective settings a send is
 * scheduled with. See docs/architecture.md, "Paced sending".
 */
import { ApiError } from '../http/errors';

export interface QuietHours {
  /** Local time `HH:MM` the quiet period starts (inclusive). */
  start: string;
  /** Local time `HH:MM` it ends (exclusive); before `start`: the period spans midnight. */
  end: string;
  /** IANA time zone, e.g. Europe/Berlin; also the zone of the daily cap's day. */
  timezone: string;
}

export interface Warmup {
  /** Days after the instance's creation over which the daily cap grows to maxPerDay. */
  days: number;
  /** The daily cap on the instance's first day. */
  startPerDay: number;
}

export interface Pacing {
  /** At least this long between two sends. */
  minIntervalMs: number;
  /** Plus a random 0..jitterMs. */
  jitterMs: number;
  /** Caps per fixed window (minute and hour in UTC, day in the quiet-hours time zone or UTC); null: none. */
  maxPerMinute: number | null;
  maxPerHour: number | null;
  maxPerDay: number | null;
  quietHours: QuietHours | null;
  warmup: Warmup | null;
  /** Show "typing…" shortly before each paced send (whatsmeow, baileys, sandbox). */
  typing: boolean;
}

/** No pacing at all: sends leave as they come (sandbox and waba by default, and every provider with PACING_DEFAULTS=off). */
export const NO_PACING: Pacing = {
  minIntervalMs: 0,
  jitterMs: 0,
  maxPerMinute: null,
  maxPerHour: null,
  maxPerDay: null,
  quietHours: null,
  warmup: null,
  typing: false,
};

/**
 * Safe defaults for numbers linked to WhatsApp through an unofficial client
 * (whatsmeow, baileys, wawebjs): 2–5 s between messages like a fast human,
 * at most 20 a minute, 400 an hour and 1000 a day, with a warm-up from 50 a
 * day over the first 10 days of a new number, typing shown before each send.
 */
export const SAFE_PACING: Pacing = {
  minIntervalMs: 2000,
  jitterMs: 3000,
  maxPerMinute: 20,
  maxPerHour: 400,
  maxPerDay: 1000,
  quietHours: null,
  warmup: { days: 10, startPerDay: 50 },
  typing: true,
};

/** Providers that talk to WhatsApp as a linked device: the safe defaults apply to them. */
export const PACED_PROVIDERS: ReadonlySet<string> = new Set(['whatsmeow', 'baileys', 'wawebjs']);

/** PACING_DEFAULTS: `safe` (production) or `off` (development and test suites that send bursts). */
export type PacingDefaults = 'safe' | 'off';

/** The defaults an instance's own settings are laid over. */
export function basePacing(provider: string, defaults: PacingDefaults): Pacing {
  return defaults === 'safe' && PACED_PROVIDERS.has(provider) ? SAFE_PACING : NO_PACING;
}

/** The settings sends are scheduled with: the instance's own (stored) fields over its defaults. */
export function effectivePacing(stored: Record<string, unknown> | null | undefined, provider: string, defaults: PacingDefaults): Pacing {
  return { ...basePacing(provider, defaults), ...((stored ?? {}) as Partial<Pacing>) };
}

/** Whether the settings hold anything back: otherwise a send takes the unpaced path. */
export function isPaced(p: Pacing): boolean {
  return (
    p.minIntervalMs > 0 ||
    p.jitterMs > 0 ||
    p.maxPerMinute !== null ||
    p.maxPerHour !== null ||
    p.maxPerDay !== null ||
    p.quietHours !== null ||
    p.warmup !== null ||
    p.typing
  );
}

const MAX_INTERVAL_MS = 3_600_000;
const HHMM = /^([01]\d|2[0-3]):[0-5]\d$/;
const KEYS = ['minIntervalMs', 'jitterMs', 'maxPerMinute', 'maxPerHour', 'maxPerDay', 'quietHours', 'warmup', 'typing'] as const;

const invalid = (field: string, message: string) => new ApiError(400, 'validation_failed', `invalid field 'pacing.${field}': ${message}`);

export function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function positiveIntOrNull(field: string, v: unknown, max = 1_000_000): number | null {
  if (v === null) return null;
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > max) throw invalid(field, `must be a positive integer (at most ${max}) or null`);
  return v as number;
}

/**
 * Checks a PATCH's `pacing` (every field optional; a null cap, quietHours or
 * warmup turns it off) and returns the instance's new stored settings: the
 * change laid over what it had. `null` resets to the defaults.
 */
export function mergePacingPatch(current: Record<string, unknown> | null, patch: unknown, base: Pacing): Record<string, unknown> | null {
  if (patch === null) return null;
  if (!isObject(patch)) throw new ApiError(400, 'validation_failed', "invalid field 'pacing': must be an object or null");
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(patch)) {
    if (!(KEYS as readonly string[]).includes(key)) throw invalid(key, `unknown field; one of ${KEYS.join(', ')}`);
  }
  for (const key of ['minIntervalMs', 'jitterMs'] as const) {
    if (!(key in patch)) continue;
    const v = patch[key];
    if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > MAX_INTERVAL_MS) throw invalid(key, `must be an integer from 0 to ${MAX_INTERVAL_MS} (1 h)`);
    out[key] = v;
  }
  for (const key of ['maxPerMinute', 'maxPerHour', 'maxPerDay'] as const) if (key in patch) out[key] = positiveIntOrNull(key, patch[key]);
  if ('typing' in patch) {
    if (typeof patch.typing !== 'boolean') throw invalid('typing', 'must be true or false');
    out.typing = patch.typing;
  }
  if ('quietHours' in patch) {
    const q = patch.quietHours;
    if (q === null) out.quietHours = null;
    else {
      if (!isObject(q)) throw invalid('quietHours', 'must be {start, end, timezone} or null');
      for (const k of Object.keys(q)) if (!['start', 'end', 'timezone'].includes(k)) throw invalid(`quietHours.${k}`, 'unknown field; one of start, end, timezone');
      for (const k of ['start', 'end'] as const) {
        if (typeof q[k] !== 'string' || !HHMM.test(q[k] as string)) throw invalid(`quietHours.${k}`, 'must be a time HH:MM (00:00 to 23:59)');
      }
      if (q.start === q.end) throw invalid('quietHours.end', 'must differ from start');
      if (typeof q.timezone !== 'string' || !validTimeZone(q.timezone)) throw invalid('quietHours.timezone', 'must be an IANA time zone, e.g. Europe/Berlin');
      out.quietHours = { start: q.start, end: q.end, timezone: q.timezone };
    }
  }
  if ('warmup' in patch) {
    const w = patch.warmup;
    if (w === null) out.warmup = null;
    else {
      if (!isObject(w)) throw invalid('warmup', 'must be {days, startPerDay} or null');
      for (const k of Object.keys(w)) if (!['days', 'startPerDay'].includes(k)) throw invalid(`warmup.${k}`, 'unknown field; one of days, startPerDay');
      if (!Number.isInteger(w.days) || (w.days as number) < 1 || (w.days as number) > 365) throw invalid('warmup.days', 'must be an integer from 1 to 365');
      if (!Number.isInteger(w.startPerDay) || (w.startPerDay as number) < 1) throw invalid('warmup.startPerDay', 'must be a positive integer');
      out.warmup = { days: w.days, startPerDay: w.startPerDay };
    }
  }
  const merged = { ...(current ?? {}), ...out };
  const effective = { ...base, ...merged } as Pacing;
  if (effective.warmup && effective.maxPerDay === null) throw invalid('warmup', 'needs pacing.maxPerDay (the cap it grows to)');
  if (effective.warmup && effective.maxPerDay !== null && effective.warmup.startPerDay > effective.maxPerDay) {
    throw invalid('warmup.startPerDay', `must be at most pacing.maxPerDay (${effective.maxPerDay})`);
  }
  return merged;
}
