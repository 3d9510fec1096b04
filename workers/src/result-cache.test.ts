import { expect, test } from 'bun:test';
import { ResultCache, type ResultFrameT } from './result-cache';

const ok = (commandId: number): ResultFrameT => ({ type: 'result', commandId, ok: true, data: { n: commandId } });

test('remembers results by commandId', () => {
  const cache = new ResultCache();
  cache.set(ok(1));
  expect(cache.get(1)).toEqual(ok(1));
  expect(cache.get(2)).toBeUndefined();
});

test('bounded: the oldest result is dropped', () => {
  const cache = new ResultCache(3);
  for (const id of [1, 2, 3, 4]) cache.set(ok(id));
  expect(cache.size).toBe(3);
  expect(cache.get(1)).toBeUndefined();
  expect(cache.get(4)).toEqual(ok(4));
});

test('unsent results are handed out once, oldest first, and only while cached', () => {
  const cache = new ResultCache(3);
  for (const id of [1, 2, 3]) cache.set(ok(id));
  cache.markUnsent(3);
  cache.markUnsent(1);
  cache.markUnsent(99); // never cached: ignored
  expect(cache.takeUnsent().map((r) => r.commandId)).toEqual([1, 3]);
  expect(cache.takeUnsent()).toEqual([]);
  cache.markUnsent(1);
  cache.set(ok(4)); // evicts 1
  expect(cache.takeUnsent()).toEqual([]);
});
