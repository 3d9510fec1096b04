/**
 * When a paced send may leave: pure functions of the settings, the clock and
 * the times of the instance's earlier paced sends (unit-tested with a fake
 * clock). The caller holds the instance's row lock (pacing/reserve.ts).
 */
import type { Pacing, QuietHours } from './settings';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

export interface SlotInput {
  /** The database's clock, ms. */
  now: number;
  /** The instance's pace cursor: the earliest time the next send may leave (null: none yet). */
  cursor: number | null;
  /** Sending paused until then (null: not paused). */
  pausedUntil: number | null;
  pacing: Pacing;
  /** When the instance was created: the warm-up counts days from then. */
  createdAt: number;
  /** not_before of the instance's paced sends from at least two days back, any order. */
  taken: number[];
}

/** The earliest time at or after the cursor that no quiet period, pause or cap forbids. */
export function nextSlot(input: SlotInput): number {
  const { taken } = input;
  const count = (from: number, to: number) => taken.reduce((n, x) => (x >= from && x < to ? n + 1 : n), 0);
  return slotFrom(Math.max(input.now, input.cursor ?? 0, input.pausedUntil ?? 0), input, count);
}

/**
 * `n` consecutive slots, as `n` calls of nextSlot would give them, each taken
 * and followed by its gap (minIntervalMs at least `minGapMs`, plus jitter)
 * before the next: for a campaign, reserved in one go under one row lock.
 * The taken times are kept sorted and counted by binary search, so 10 000
 * slots with caps cost O(n log n), not O(n²). Returns the slots and the cursor
 * after the last.
 */
export function nextSlots(input: SlotInput, n: number, opts: { minGapMs?: number; random?: () => number } = {}): { slots: number[]; cursor: number } {
  const sorted = [...input.taken].sort((a, b) => a - b);
  const lowerBound = (x: number) => {
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const count = (from: number, to: number) => lowerBound(to) - lowerBound(from);
  const pacing = { ...input.pacing, minIntervalMs: Math.max(input.pacing.minIntervalMs, opts.minGapMs ?? 0) };
  const slots: number[] = [];
  let cursor = Math.max(input.now, input.cursor ?? 0, input.pausedUntil ?? 0);
  for (let i = 0; i < n; i++) {
    const slot = slotFrom(cursor, { ...input, pacing }, count);
    slots.push(slot);
    sorted.splice(lowerBound(slot + 1), 0, slot);
    cursor = slot + gapAfter(pacing, opts.random);
  }
  return { slots, cursor };
}

function slotFrom(start: number, input: SlotInput, count: (from: number, to: number) => number): number {
  const { pacing } = input;
  let t = start;
  const dayZone = pacing.quietHours?.timezone ?? 'UTC';
  // Each step moves t forward to the start of a window or the end of a quiet period; a bounded loop.
  for (let guard = 0; guard < 10_000; guard++) {
    if (pacing.quietHours && inQuietHours(t, pacing.quietHours)) {
      t = quietHoursEnd(t, pacing.quietHours);
      continue;
    }
    if (pacing.maxPerMinute !== null) {
      const start = Math.floor(t / MINUTE) * MINUTE;
      if (count(start, start + MINUTE) >= pacing.maxPerMinute) {
        t = start + MINUTE;
        continue;
      }
    }
    if (pacing.maxPerHour !== null) {
      const start = Math.floor(t / HOUR) * HOUR;
      if (count(start, start + HOUR) >= pacing.maxPerHour) {
        t = start + HOUR;
        continue;
      }
    }
    const cap = dailyCap(pacing, input.createdAt, t);
    if (cap !== null) {
      const { start, end } = localDay(t, dayZone);
      if (count(start, end) >= cap) {
        t = end;
        continue;
      }
    }
    return t;
  }
  throw new Error('pacing: no slot found within 10000 steps');
}

/** The gap after a send: minIntervalMs plus a random 0..jitterMs. */
export function gapAfter(pacing: Pacing, random: () => number = Math.random): number {
  return pacing.minIntervalMs + Math.floor(random() * (pacing.jitterMs + 1));
}

/**
 * The daily cap on the day of `t`: maxPerDay, or during the warm-up (the
 * first `days` days after creation) startPerDay growing linearly towards it.
 */
export function dailyCap(pacing: Pacing, createdAt: number, t: number): number | null {
  if (pacing.maxPerDay === null) return null;
  if (!pacing.warmup) return pacing.maxPerDay;
  const age = Math.max(0, Math.floor((t - createdAt) / DAY));
  if (age >= pacing.warmup.days) return pacing.maxPerDay;
  const { startPerDay, days } = pacing.warmup;
  return Math.min(pacing.maxPerDay, Math.floor(startPerDay + ((pacing.maxPerDay - startPerDay) * age) / days));
}

// ---------------------------------------------------------------- time zones (Intl)

interface Wall {
  year: number;
  month: number;
  day: number;
  minutes: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The wall clock in `zone` at instant `t`. */
function wallAt(t: number, zone: string): Wall {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric' });
    formatters.set(zone, f);
  }
  const parts = Object.fromEntries(f.formatToParts(new Date(t)).map((p) => [p.type, p.value]));
  return { year: Number(parts.year), month: Number(parts.month), day: Number(parts.day), minutes: Number(parts.hour) * 60 + Number(parts.minute) };
}

/** The instant the wall clock in `zone` shows this date and minute of day (the later one across a DST gap). */
function instantOf(year: number, month: number, day: number, minutes: number, zone: string): number {
  const asUtc = Date.UTC(year, month - 1, day, 0, minutes);
  const offsetAt = (t: number) => {
    const w = wallAt(t, zone);
    return Date.UTC(w.year, w.month - 1, w.day, 0, w.minutes) - Math.floor(t / MINUTE) * MINUTE;
  };
  let t = asUtc - offsetAt(asUtc);
  t = asUtc - offsetAt(t);
  return t;
}

const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

export function inQuietHours(t: number, q: QuietHours): boolean {
  const m = wallAt(t, q.timezone).minutes;
  const start = minutesOf(q.start);
  const end = minutesOf(q.end);
  return start < end ? m >= start && m < end : m >= start || m < end;
}

/** The end of the quiet period `t` is in: the next local `end` time after t. */
export function quietHoursEnd(t: number, q: QuietHours): number {
  const w = wallAt(t, q.timezone);
  const end = minutesOf(q.end);
  const onDay = w.minutes < end ? 0 : 1;
  const date = new Date(Date.UTC(w.year, w.month - 1, w.day + onDay));
  return instantOf(date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate(), end, q.timezone);
}

/** The local calendar day of `t` in `zone`, as instants [start, end). */
export function localDay(t: number, zone: string): { start: number; end: number } {
  if (zone === 'UTC') {
    const start = Math.floor(t / DAY) * DAY;
    return { start, end: start + DAY };
  }
  const w = wallAt(t, zone);
  const next = new Date(Date.UTC(w.year, w.month - 1, w.day + 1));
  return { start: instantOf(w.year, w.month, w.day, 0, zone), end: instantOf(next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate(), 0, zone) };
}
