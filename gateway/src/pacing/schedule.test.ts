import { describe, expect, test } from 'bun:test';
import { dailyCap, gapAfter, inQuietHours, localDay, nextSlot, nextSlots, quietHoursEnd, type SlotInput } from './schedule';
import { mergePacingPatch, NO_PACING, SAFE_PACING, type Pacing } from './settings';

const at = (iso: string) => Date.parse(iso);
const pacing = (p: Partial<Pacing>): Pacing => ({ ...NO_PACING, ...p });

/** Schedules n sends one after another as the gateway does: slot, then the cursor moves by the gap. */
function scheduleMany(n: number, p: Pacing, start: SlotInput['now'], random = () => 0.5, createdAt = start) {
  const taken: number[] = [];
  let cursor: number | null = null;
  for (let i = 0; i < n; i++) {
    const slot = nextSlot({ now: start, cursor, pausedUntil: null, pacing: p, createdAt, taken });
    taken.push(slot);
    cursor = slot + gapAfter(p, random);
  }
  return taken;
}

describe('nextSlot', () => {
  test('spacing: minIntervalMs plus jitter between sends, the first at once', () => {
    const now = at('2026-03-02T10:00:00Z');
    let i = 0;
    const randoms = [0, 0.99, 0.5, 0.25];
    const slots = scheduleMany(5, pacing({ minIntervalMs: 1000, jitterMs: 500 }), now, () => randoms[i++ % 4]!);
    expect(slots[0]).toBe(now);
    const gaps = slots.slice(1).map((s, n) => s - slots[n]!);
    expect(gaps).toEqual([1000, 1495, 1250, 1125]);
  });

  test('maxPerMinute moves the rest to the next minute', () => {
    const now = at('2026-03-02T10:00:30Z');
    const slots = scheduleMany(5, pacing({ minIntervalMs: 1000, maxPerMinute: 3 }), now);
    expect(slots.slice(0, 3)).toEqual([now, now + 1000, now + 2000]);
    expect(slots[3]).toBe(at('2026-03-02T10:01:00Z'));
    expect(slots[4]).toBe(at('2026-03-02T10:01:01Z'));
  });

  test('maxPerHour and maxPerDay: the next hour, the next day (UTC without quiet hours)', () => {
    const now = at('2026-03-02T23:59:00Z');
    const hourly = scheduleMany(3, pacing({ maxPerHour: 2 }), at('2026-03-02T10:15:00Z'));
    expect(hourly[2]).toBe(at('2026-03-02T11:00:00Z'));
    const daily = scheduleMany(3, pacing({ maxPerDay: 2 }), now);
    expect(daily).toEqual([now, now, at('2026-03-03T00:00:00Z')]);
  });

  test('the daily cap counts the day in the quiet-hours time zone', () => {
    // 23:30 UTC is 00:30 on the next day in Berlin (CET, UTC+1): a new day there.
    const p = pacing({ maxPerDay: 1, quietHours: { start: '03:00', end: '04:00', timezone: 'Europe/Berlin' } });
    const taken = [at('2026-03-02T22:00:00Z')]; // 23:00 Berlin, March 2nd
    expect(nextSlot({ now: at('2026-03-02T22:30:00Z'), cursor: null, pausedUntil: null, pacing: p, createdAt: 0, taken })).toBe(at('2026-03-02T23:00:00Z'));
    expect(localDay(at('2026-03-02T12:00:00Z'), 'Europe/Berlin')).toEqual({ start: at('2026-03-01T23:00:00Z'), end: at('2026-03-02T23:00:00Z') });
  });

  test('quiet hours across midnight in a time zone: a send inside waits for the end', () => {
    const q = { start: '22:00', end: '08:00', timezone: 'America/New_York' };
    // 03:00 UTC on March 3rd is 22:00 on March 2nd in New York (EST, UTC-5).
    expect(inQuietHours(at('2026-03-03T03:00:00Z'), q)).toBe(true);
    expect(inQuietHours(at('2026-03-03T02:59:00Z'), q)).toBe(false);
    expect(quietHoursEnd(at('2026-03-03T03:00:00Z'), q)).toBe(at('2026-03-03T13:00:00Z'));
    expect(quietHoursEnd(at('2026-03-03T09:00:00Z'), q)).toBe(at('2026-03-03T13:00:00Z')); // 04:00 local
    const slot = nextSlot({ now: at('2026-03-03T05:00:00Z'), cursor: null, pausedUntil: null, pacing: pacing({ quietHours: q }), createdAt: 0, taken: [] });
    expect(slot).toBe(at('2026-03-03T13:00:00Z'));
    // Across the spring DST change (March 8th 2026 in New York: EDT, UTC-4).
    expect(quietHoursEnd(at('2026-03-08T05:00:00Z'), q)).toBe(at('2026-03-08T12:00:00Z'));
  });

  test('quiet hours within a day; outside them nothing moves', () => {
    const q = { start: '12:00', end: '13:30', timezone: 'UTC' };
    const p = pacing({ quietHours: q });
    expect(nextSlot({ now: at('2026-03-02T12:10:00Z'), cursor: null, pausedUntil: null, pacing: p, createdAt: 0, taken: [] })).toBe(at('2026-03-02T13:30:00Z'));
    expect(nextSlot({ now: at('2026-03-02T13:30:00Z'), cursor: null, pausedUntil: null, pacing: p, createdAt: 0, taken: [] })).toBe(at('2026-03-02T13:30:00Z'));
  });

  test('a pause holds every slot until it ends', () => {
    const now = at('2026-03-02T10:00:00Z');
    expect(nextSlot({ now, cursor: now + 100, pausedUntil: now + 60_000, pacing: NO_PACING, createdAt: 0, taken: [] })).toBe(now + 60_000);
  });
});

describe('nextSlots (a campaign)', () => {
  test('gives the slots n calls of nextSlot would, caps, quiet hours and warm-up included', () => {
    const now = at('2026-03-02T21:59:00Z');
    const p = { ...SAFE_PACING, quietHours: { start: '23:00', end: '07:00', timezone: 'Europe/Berlin' } };
    const earlier = [now - 30_000, now - 10_000, now + 600_000];
    const one = (() => {
      const taken = [...earlier];
      let cursor: number | null = null;
      const out: number[] = [];
      for (let i = 0; i < 300; i++) {
        const slot = nextSlot({ now, cursor, pausedUntil: null, pacing: p, createdAt: now - 86_400_000 * 3, taken });
        taken.push(slot);
        out.push(slot);
        cursor = slot + gapAfter(p, () => 0.5);
      }
      return out;
    })();
    const { slots, cursor } = nextSlots({ now, cursor: null, pausedUntil: null, pacing: p, createdAt: now - 86_400_000 * 3, taken: earlier }, 300, { random: () => 0.5 });
    expect(slots).toEqual(one);
    expect(cursor).toBe(one[299]! + gapAfter(p, () => 0.5));
  });

  test('minGapMs is a floor under minIntervalMs, also without pacing; 10 000 slots with caps are quick', () => {
    const now = at('2026-03-02T10:00:00Z');
    const { slots } = nextSlots({ now, cursor: null, pausedUntil: now + 5000, pacing: NO_PACING, createdAt: now, taken: [] }, 4, { minGapMs: 50 });
    expect(slots).toEqual([now + 5000, now + 5050, now + 5100, now + 5150]);
    const started = performance.now();
    const many = nextSlots({ now, cursor: null, pausedUntil: null, pacing: pacing({ maxPerMinute: 600, maxPerHour: 5000 }), createdAt: now, taken: [] }, 10_000, { minGapMs: 50 });
    expect(many.slots.length).toBe(10_000);
    const hours = new Map<number, number>();
    for (const t of many.slots) hours.set(Math.floor(t / 3_600_000), (hours.get(Math.floor(t / 3_600_000)) ?? 0) + 1);
    expect(Math.max(...hours.values())).toBeLessThanOrEqual(5000);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe('warm-up', () => {
  const p = pacing({ maxPerDay: 1000, warmup: { days: 10, startPerDay: 50 } });
  const created = at('2026-03-01T09:00:00Z');
  test('the daily cap grows linearly from startPerDay to maxPerDay over the days', () => {
    expect(dailyCap(p, created, created)).toBe(50);
    expect(dailyCap(p, created, created + 86_400_000)).toBe(145);
    expect(dailyCap(p, created, created + 5 * 86_400_000)).toBe(525);
    expect(dailyCap(p, created, created + 10 * 86_400_000)).toBe(1000);
    expect(dailyCap(SAFE_PACING, created, created + 365 * 86_400_000)).toBe(SAFE_PACING.maxPerDay);
  });
  test('a new number reaches its first-day cap and continues the next day', () => {
    const small = pacing({ maxPerDay: 10, warmup: { days: 5, startPerDay: 2 } });
    const now = at('2026-03-01T09:00:00Z');
    const slots = scheduleMany(3, small, now, () => 0, now);
    expect(slots).toEqual([now, now, at('2026-03-02T00:00:00Z')]);
  });
});

describe('settings', () => {
  test('a patch is checked field by field and merged over the stored settings', () => {
    expect(mergePacingPatch({ minIntervalMs: 100 }, { jitterMs: 50 }, NO_PACING)).toEqual({ minIntervalMs: 100, jitterMs: 50 });
    expect(mergePacingPatch({ minIntervalMs: 100 }, null, NO_PACING)).toBeNull();
    const bad: [unknown, string][] = [
      [{ maxPerMinute: 0 }, 'pacing.maxPerMinute'],
      [{ minIntervalMs: 3_600_001 }, 'pacing.minIntervalMs'],
      [{ quietHours: { start: '24:00', end: '08:00', timezone: 'UTC' } }, 'pacing.quietHours.start'],
      [{ quietHours: { start: '22:00', end: '08:00', timezone: 'Mars/Olympus' } }, 'pacing.quietHours.timezone'],
      [{ warmup: { days: 3, startPerDay: 5 } }, 'pacing.warmup'],
      [{ typing: 'yes' }, 'pacing.typing'],
      [{ speed: 1 }, 'pacing.speed'],
    ];
    for (const [patch, field] of bad) expect(() => mergePacingPatch(null, patch, NO_PACING)).toThrow(`'${field}'`);
  });
});
