import { describe, expect, test } from 'bun:test';
import { backoffDelay } from './backoff';
import { dialOrder, GatewayRotation } from './failover';

const FIVE = ['a', 'b', 'c', 'd', 'e'];

describe('dialOrder', () => {
  test('one URL (or none): unchanged', () => {
    expect(dialOrder(['ws://gw'], 7)).toEqual(['ws://gw']);
    expect(dialOrder([], 7)).toEqual([]);
  });

  test('a permutation of the list, the same for an instance every time, starting at entry id mod n', () => {
    for (let id = 1; id <= 200; id++) {
      for (const n of [2, 3, 4, 5]) {
        const urls = FIVE.slice(0, n);
        const order = dialOrder(urls, id);
        expect(order.toSorted()).toEqual(urls);
        expect(order[0]).toBe(urls[id % n]!);
        expect(dialOrder(urls, id)).toEqual(order);
      }
    }
    expect(FIVE).toEqual(['a', 'b', 'c', 'd', 'e']); // the input is not reordered
  });

  test('the same orders as the Go worker (internal/gateway/failover_test.go holds the same vectors)', () => {
    expect(dialOrder(FIVE, 1)).toEqual(['b', 'd', 'c', 'a', 'e']);
    expect(dialOrder(FIVE, 7)).toEqual(['c', 'a', 'e', 'd', 'b']);
    expect(dialOrder(FIVE, 101)).toEqual(['b', 'd', 'e', 'a', 'c']);
    expect(dialOrder(FIVE, 2_147_483_647)).toEqual(['c', 'b', 'd', 'e', 'a']);
    expect(dialOrder(['a', 'b', 'c'], 7)).toEqual(['b', 'c', 'a']);
    expect(dialOrder(['a', 'b', 'c'], 12)).toEqual(['a', 'c', 'b']);
  });

  test('workers spread evenly over the replicas, and the workers of one replica spread over the others when it is lost', () => {
    const first = new Map<string, number>();
    const next = new Map<string, number>();
    for (let id = 1; id <= 3_000; id++) {
      const [a, b] = dialOrder(['a', 'b', 'c'], id) as [string, string, string];
      first.set(a, (first.get(a) ?? 0) + 1);
      if (a === 'a') next.set(b, (next.get(b) ?? 0) + 1);
    }
    expect(Object.fromEntries(first)).toEqual({ a: 1000, b: 1000, c: 1000 });
    // Replica a lost: its 1000 workers move to b and to c, about half each (not all to its neighbour b).
    expect(next.get('b')! + next.get('c')!).toBe(1000);
    expect(Math.abs(next.get('b')! - 500)).toBeLessThan(100);
  });
});

describe('GatewayRotation', () => {
  const backoff = { baseMs: 100, capMs: 1_000, jitter: 0 };

  test('a failure moves to the next URL at once; only a whole failed round waits, with a growing backoff', () => {
    const r = new GatewayRotation(['A', 'B', 'C'], backoff);
    expect(r.url).toBe('A');
    const steps = Array.from({ length: 9 }, () => r.failed());
    expect(steps.map((s) => [s.url, s.delayMs])).toEqual([
      ['B', 0],
      ['C', 0],
      ['A', 100],
      ['B', 0],
      ['C', 0],
      ['A', 200],
      ['B', 0],
      ['C', 0],
      ['A', 400],
    ]);
    expect(steps.map((s) => s.failedRounds)).toEqual([0, 0, 1, 1, 1, 2, 2, 2, 3]);
  });

  test('a connected worker stays; when that connection drops it tries the next URL at once, and the backoff starts over', () => {
    const r = new GatewayRotation(['A', 'B', 'C'], backoff);
    for (let i = 0; i < 6; i++) r.failed(); // two failed rounds: the next wait would be 400 ms
    expect(r.failed()).toMatchObject({ url: 'B', delayMs: 0 });
    r.connected(); // welcomed by B
    expect(r.url).toBe('B');
    expect(r.failed()).toEqual({ url: 'C', delayMs: 0, failedRounds: 0 }); // B dropped
    expect(r.failed()).toEqual({ url: 'A', delayMs: 0, failedRounds: 0 });
    expect(r.failed()).toEqual({ url: 'B', delayMs: 100, failedRounds: 1 }); // C, A and B failed: a round
  });

  test('one URL: every failure is a round, exactly the single-gateway backoff of before', () => {
    const random = () => 0.3;
    const opts = { baseMs: 250, capMs: 10_000, jitter: 0.2 };
    const r = new GatewayRotation(['A'], opts, random);
    const delays = Array.from({ length: 8 }, () => r.failed());
    expect(delays.map((d) => d.url)).toEqual(Array(8).fill('A'));
    expect(delays.map((d) => d.delayMs)).toEqual(Array.from({ length: 8 }, (_, attempt) => backoffDelay(attempt, random, opts)));
    r.connected();
    expect(r.failed().delayMs).toBe(backoffDelay(0, random, opts));
  });

  test('no URL is refused', () => {
    expect(() => new GatewayRotation([])).toThrow('at least one gateway URL');
  });
});
