import { afterAll, expect, test } from 'bun:test';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { ADMIN_SECRET_FILE, BILLING_SECRET_FILE, resolveAdminSecret, resolveBillingSecret } from './admin-secret';

const dirs: string[] = [];
const tempDir = async () => {
  const d = await mkdtemp(join(tmpdir(), 'wgs-secret-'));
  dirs.push(d);
  return d;
};
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

test('generated once into DATA_DIR with mode 0600, then read back', async () => {
  const dir = join(await tempDir(), 'nested');
  const first = await resolveAdminSecret(dir, undefined);
  expect(first.source).toBe('generated');
  expect(first.value.length).toBeGreaterThanOrEqual(40);
  const path = join(dir, ADMIN_SECRET_FILE);
  expect((await stat(path)).mode & 0o777).toBe(0o600);
  expect((await readFile(path, 'utf8')).trim()).toBe(first.value);
  const second = await resolveAdminSecret(dir, undefined);
  expect(second).toEqual({ value: first.value, source: 'file', path });
});

test('ADMIN_API_SECRET wins and writes nothing', async () => {
  const dir = await tempDir();
  expect(await resolveAdminSecret(dir, 's')).toEqual({ value: 's', source: 'env' });
  expect(await Bun.file(join(dir, ADMIN_SECRET_FILE)).exists()).toBe(false);
});

test('concurrent first starts agree on one secret', async () => {
  const dir = await tempDir();
  const results = await Promise.all(Array.from({ length: 5 }, () => resolveAdminSecret(dir, undefined)));
  expect(new Set(results.map((r) => r.value)).size).toBe(1);
});

test('the billing webhook secret: BILLING_WEBHOOK_SECRET, else a whsec_ secret generated once that signs and verifies', async () => {
  const dir = await tempDir();
  expect(await resolveBillingSecret(dir, 'whsec_fromenv')).toEqual({ value: 'whsec_fromenv', source: 'env' });
  const first = await resolveBillingSecret(dir, undefined);
  expect(first).toMatchObject({ source: 'generated', path: join(dir, BILLING_SECRET_FILE) });
  expect(first.value).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
  expect((await resolveBillingSecret(dir, undefined)).value).toBe(first.value);
  const signer = new Webhook(first.value);
  const at = new Date();
  const headers = { 'webhook-id': 'bill_1', 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': signer.sign('bill_1', at, '{}') };
  expect(signer.verify('{}', headers)).toEqual({});
});
