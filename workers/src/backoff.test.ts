import { expect, test } from 'bun:test';
import { backoffDelay, DEFAULT_BACKOFF } from './backoff';

const noJitter = () => 0.5;

test('grows from 250 ms by doubling and caps at 10 s', () => {
  const delays = Array.from({ length: 10 }, (_, attempt) => backoffDelay(attempt, noJitter));
  expect(delays).toEqual([250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000, 10_000]);
  expect(backoffDelay(10_000, noJitter)).toBe(10_000); // 2 ** 10000 is Infinity: still capped
});

test('jitter stays within ±20% and never exceeds the cap', () => {
  expect(backoffDelay(0, () => 0)).toBe(200);
  expect(backoffDelay(0, () => 1)).toBe(300);
  expect(backoffDelay(3, () => 0)).toBe(1600);
  expect(backoffDelay(3, () => 1)).toBe(2400);
  expect(backoffDelay(20, () => 0)).toBe(8000);
  expect(backoffDelay(20, () => 1)).toBe(10_000);
  for (let attempt = 0; attempt < 12; attempt++) {
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(attempt);
      const nominal = Math.min(DEFAULT_BACKOFF.capMs, DEFAULT_BACKOFF.baseMs * 2 ** attempt);
      expect(d).toBeGreaterThanOrEqual(Math.floor(nominal * 0.8));
      expect(d).toBeLessThanOrEqual(Math.min(DEFAULT_BACKOFF.capMs, Math.ceil(nominal * 1.2)));
    }
  }
});

test('custom options are honoured', () => {
  expect(backoffDelay(2, noJitter, { baseMs: 10, capMs: 25, jitter: 0 })).toBe(25);
  expect(backoffDelay(1, noJitter, { baseMs: 10, capMs: 25, jitter: 0 })).toBe(20);
});
