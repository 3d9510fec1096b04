import { afterAll, expect, test } from 'bun:test';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_SECRET_FILE, resolveAdminSecret } from './admin-secret';

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
