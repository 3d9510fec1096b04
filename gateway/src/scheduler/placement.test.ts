import { describe, expect, test } from 'bun:test';
import { place, type NodeLoad } from './placement';

const GiB = 1024 ** 3;
const node = (id: number, name: string, cap: [number | null, number | null], used: [number, number, number] = [0, 0, 0], extra: Partial<NodeLoad> = {}): NodeLoad => ({
  id,
  name,
  engine: 'docker',
  status: 'ready',
  draining: false,
  labels: {},
  capacity: { millicpu: cap[0], memoryBytes: cap[1] },
  used: { millicpu: used[0], memoryBytes: used[1], instances: used[2] },
  ...extra,
});

describe('place', () => {
  test('least loaded first, by the fullest dimension after placement', () => {
    const a = node(1, 'a', [4000, 8 * GiB], [2000, 1 * GiB, 4]); // cpu half full
    const b = node(2, 'b', [2000, 2 * GiB], [0, 1 * GiB, 2]); // memory half full
    const c = node(3, 'c', [8000, 16 * GiB], [1000, 2 * GiB, 3]);
    const r = place([a, b, c], { millicpu: 500, memoryBytes: 512 * 1024 ** 2 });
    expect(r.ok && r.node.name).toBe('c');
  });

  test('capacity spreads instances: a bigger node takes more', () => {
    const nodes = [node(1, 'small', [1000, 1 * GiB]), node(2, 'big', [3000, 3 * GiB])];
    const placed: string[] = [];
    for (let i = 0; i < 8; i++) {
      const r = place(nodes, { millicpu: 500, memoryBytes: 512 * 1024 ** 2 });
      if (!r.ok) break;
      placed.push(r.node.name);
      r.node.used.millicpu += 500;
      r.node.used.memoryBytes += 512 * 1024 ** 2;
      r.node.used.instances++;
    }
    expect(placed.filter((n) => n === 'big')).toHaveLength(6);
    expect(placed.filter((n) => n === 'small')).toHaveLength(2);
    const full = place(nodes, { millicpu: 500 });
    expect(full.ok).toBe(false);
    expect(!full.ok && full.reason).toContain('no node fits: small: cpu 1.5 of 1 cores; big: cpu 3.5 of 3 cores');
  });

  test('overcommit ratio, explicit node, labels, unreachable nodes, unlimited capacity', () => {
    const a = node(1, 'a', [1000, null], [1000, 0, 2]);
    expect(place([a], { millicpu: 500 }).ok).toBe(false);
    expect(place([a], { millicpu: 500 }, 1.5).ok).toBe(true);
    const eu = node(2, 'eu-1', [null, null], [0, 0, 0], { labels: { region: 'eu' } });
    const us = node(3, 'us-1', [null, null], [0, 0, 0], { labels: { region: 'us' }, status: 'unreachable' });
    expect(place([eu, us], { labels: { region: 'us' } })).toEqual({ ok: false, reason: 'no node fits: eu-1: lacks label region=us; us-1: unreachable' });
    const chosen = place([eu, us], { node: 'eu-1' });
    expect(chosen.ok && chosen.node.name).toBe('eu-1');
    expect(place([eu], { node: 'nope' })).toEqual({ ok: false, reason: 'no node named nope', unknownNode: true });
    expect(place([], {})).toEqual({ ok: false, reason: 'no nodes registered' });
  });

  test('draining nodes and the excluded node take nothing', () => {
    const a = node(1, 'a', [null, null]);
    const b = node(2, 'b', [null, null], [0, 0, 0], { draining: true });
    expect(place([a, b], { excludeNodeId: 1 })).toEqual({ ok: false, reason: 'no node fits: b: draining' });
    expect(place([a], { excludeNodeId: 1 })).toEqual({ ok: false, reason: 'no other node registered' });
    const onlyA = place([a, b], {});
    expect(onlyA.ok && onlyA.node.name).toBe('a');
    // Excluded even when named.
    expect(place([a, b], { node: 'a', excludeNodeId: 1 })).toEqual({ ok: false, reason: 'the instance is already on a' });
  });
});
