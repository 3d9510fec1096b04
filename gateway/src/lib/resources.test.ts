import { describe, expect, test } from 'bun:test';
import { formatCpu, formatMemory, parseCpu, parseMemory } from './resources';

describe('memory sizes', () => {
  test('parses units case-insensitively', () => {
    expect(parseMemory('512m')).toBe(512 * 1024 * 1024);
    expect(parseMemory('4G')).toBe(4 * 1024 ** 3);
    expect(parseMemory('1k')).toBe(1024);
    expect(parseMemory('100')).toBe(100);
    expect(parseMemory('100b')).toBe(100);
  });
  test('rejects malformed sizes', () => {
    for (const bad of ['', 'm', '0m', '-1g', '1.5g', '12x', '1 g', '99999999999999999t']) {
      expect(parseMemory(bad)).toBeNull();
    }
  });
  test('formats the shortest exact unit and round-trips', () => {
    expect(formatMemory(512 * 1024 * 1024)).toBe('512m');
    expect(formatMemory(1536 * 1024 * 1024)).toBe('1536m');
    expect(formatMemory(4 * 1024 ** 3)).toBe('4g');
    expect(formatMemory(1000)).toBe('1000b');
    for (const s of ['1t', '3g', '700m', '5k', '7b']) expect(formatMemory(parseMemory(s)!)).toBe(s);
  });
});

describe('cpu', () => {
  test('millicores', () => {
    expect(parseCpu(0.5)).toBe(500);
    expect(parseCpu(2)).toBe(2000);
    expect(parseCpu(0.001)).toBe(1);
    expect(formatCpu(1500)).toBe(1.5);
  });
  test('rejects zero, negative, too fine', () => {
    for (const bad of [0, -1, 0.0001, Number.NaN, Number.POSITIVE_INFINITY]) expect(parseCpu(bad)).toBeNull();
  });
});
