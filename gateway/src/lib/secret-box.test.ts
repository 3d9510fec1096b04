import { expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { SecretBox } from './secret-box';

const key = () => randomBytes(32).toString('base64');

test('seals and opens; the sealed form hides the secret and differs each time', () => {
  const box = new SecretBox(key());
  const a = box.seal('whsec_abc');
  const b = box.seal('whsec_abc');
  expect(a).not.toContain('whsec_abc');
  expect(a).not.toBe(b);
  expect(box.open(a)).toBe('whsec_abc');
});

test('another key or a tampered value cannot open it', () => {
  const sealed = new SecretBox(key()).seal('whsec_abc');
  expect(() => new SecretBox(key()).open(sealed)).toThrow();
  const box = new SecretBox(key());
  const mine = box.seal('whsec_abc');
  const parts = mine.split('.');
  parts[3] = Buffer.from('whsec_xyz').toString('base64url');
  expect(() => box.open(parts.join('.'))).toThrow();
  expect(() => box.open('garbage')).toThrow('not a sealed secret');
});

test('the key must be 32 bytes', () => {
  expect(() => new SecretBox(randomBytes(16).toString('base64'))).toThrow('32 bytes');
});
