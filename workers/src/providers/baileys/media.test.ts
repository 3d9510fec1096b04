import { describe, expect, test } from 'bun:test';
import { isPublicAddress, loadMedia } from './media';

describe('isPublicAddress', () => {
  test('refuses loopback, private, CGNAT, link-local, unique-local, multicast, unspecified, IPv4-mapped ones', () => {
    for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '100.64.0.1', '169.254.169.254', '0.0.0.0', '224.0.0.1', '::1', '::', 'fc00::1', 'fd12::1', 'fe80::1', 'ff02::1', '::ffff:127.0.0.1', '::ffff:10.0.0.1', 'not-an-ip']) {
      expect({ a, public: isPublicAddress(a) }).toEqual({ a, public: false });
    }
  });
  test('accepts public ones', () => {
    for (const a of ['1.1.1.1', '8.8.8.8', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8']) {
      expect({ a, public: isPublicAddress(a) }).toEqual({ a, public: true });
    }
  });
});

describe('loadMedia', () => {
  test('base64 data: decoded; invalid or empty is invalid_args', async () => {
    expect((await loadMedia({ data: Buffer.from('abc').toString('base64'), mimetype: 'text/plain' }, false)).toString()).toBe('abc');
    await expect(loadMedia({ data: '***', mimetype: 'text/plain' }, false)).rejects.toMatchObject({ code: 'invalid_args' });
    await expect(loadMedia({ data: '', mimetype: 'text/plain' }, false)).rejects.toMatchObject({ code: 'invalid_args' });
  });
  test('urls: https only (invalid_args); a loopback or private host is refused before any connection (media_failed)', async () => {
    await expect(loadMedia({ url: 'http://example.com/a.png', mimetype: 'image/png' }, false)).rejects.toMatchObject({ code: 'invalid_args' });
    await expect(loadMedia({ url: 'https://127.0.0.1:1/a.png', mimetype: 'image/png' }, false)).rejects.toMatchObject({
      code: 'media_failed',
      message: expect.stringContaining('not a public address'),
    });
    await expect(loadMedia({ url: 'https://localhost:1/a.png', mimetype: 'image/png' }, false)).rejects.toMatchObject({
      code: 'media_failed',
      message: expect.stringContaining('no public address'),
    });
    // Allowed: the connection is attempted (and refused by the closed port).
    await expect(loadMedia({ url: 'https://127.0.0.1:1/a.png', mimetype: 'image/png' }, true)).rejects.toMatchObject({
      code: 'media_failed',
      message: expect.stringContaining('ECONNREFUSED'),
    });
  });
});
