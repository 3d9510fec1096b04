import { expect, test } from 'bun:test';
import { displayPrefix, generateApiKey, hashApiKey, secretsEqual } from './api-keys';

test('keys are wgs_ plus 256 random bits, all different', () => {
  const keys = Array.from({ length: 200 }, generateApiKey);
  for (const key of keys) expect(key).toMatch(/^wgs_[A-Za-z0-9_-]{43}$/);
  expect(new Set(keys).size).toBe(keys.length);
  expect(Buffer.from(keys[0]!.slice(4), 'base64url')).toHaveLength(32);
});

test('the hash is SHA-256 hex and the display prefix is short', () => {
  const key = generateApiKey();
  expect(hashApiKey(key)).toMatch(/^[0-9a-f]{64}$/);
  expect(hashApiKey(key)).not.toContain(key.slice(4));
  expect(displayPrefix(key)).toBe(key.slice(0, 12));
});

test('secretsEqual compares any lengths', () => {
  expect(secretsEqual('abc', 'abc')).toBe(true);
  expect(secretsEqual('abc', 'abd')).toBe(false);
  expect(secretsEqual('abc', 'abcd')).toBe(false);
  expect(secretsEqual('', 'x')).toBe(false);
});
