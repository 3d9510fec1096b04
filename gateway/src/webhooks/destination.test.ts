import { expect, test } from 'bun:test';
import { isPrivateAddress, refuseDestination } from './destination';

test('private, loopback, link-local and metadata addresses are refused', () => {
  for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '0.0.0.0', '100.64.0.1', '::1', '::', 'fe80::1', 'fd12::1', '::ffff:127.0.0.1', '::ffff:10.0.0.1']) {
    expect(isPrivateAddress(a)).toBe(true);
  }
  for (const a of ['93.184.216.34', '1.1.1.1', '172.32.0.1', '2606:4700::1111', '::ffff:8.8.8.8']) {
    expect(isPrivateAddress(a)).toBe(false);
  }
});

test('URLs: scheme, credentials, literal private hosts; allowed when private networks are', async () => {
  expect(await refuseDestination('ftp://example.com/x', false)).toBe('must be an http:// or https:// URL');
  expect(await refuseDestination('not a url', false)).toBe('is not a URL');
  expect(await refuseDestination('https://u:p@example.com/', false)).toBe('must not contain credentials');
  expect(await refuseDestination('http://127.0.0.1:8080/hook', false)).toContain('resolves to 127.0.0.1');
  expect(await refuseDestination('http://[::1]:8080/hook', false)).toContain('resolves to ::1');
  expect(await refuseDestination('http://169.254.169.254/latest/meta-data', false)).toContain('169.254.169.254');
  expect(await refuseDestination('http://localhost:8080/hook', false)).toContain('resolves to');
  expect(await refuseDestination('http://127.0.0.1:8080/hook', true)).toBeNull();
  expect(await refuseDestination('https://93.184.216.34/hook', false)).toBeNull();
});
