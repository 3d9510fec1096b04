import { afterEach, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { healthProblem, writeHealth } from './health';

const dir = mkdtempSync(join(tmpdir(), 'wgs-health-'));
afterEach(() => rmSync(join(dir, 'h'), { force: true }));

test('healthy only while the file was written recently', () => {
  const file = join(dir, 'h');
  expect(healthProblem(undefined)).toContain('WGS_HEALTH_FILE');
  expect(healthProblem(file)).toBe('never connected to the gateway');
  const stop = writeHealth(file, () => true, 60_000);
  stop();
  expect(healthProblem(file)).toBeUndefined();
  expect(healthProblem(file, Date.now() + 31_000)).toMatch(/last connected to the gateway 3\d s ago/);
  writeFileSync(file, 'junk');
  expect(healthProblem(file)).toContain('holds no time');
});

test('nothing is written while unhealthy', () => {
  const file = join(dir, 'h');
  writeHealth(file, () => false, 60_000)();
  expect(healthProblem(file)).toBe('never connected to the gateway');
});

test('`worker --health` exits 0 when healthy, 1 with the reason when not', () => {
  const file = join(dir, 'h');
  const run = () => Bun.spawnSync([process.execPath, join(import.meta.dir, 'main.ts'), '--health'], { env: { WGS_HEALTH_FILE: file }, stderr: 'pipe' });
  const unhealthy = run();
  expect(unhealthy.exitCode).toBe(1);
  expect(unhealthy.stderr.toString()).toContain('never connected to the gateway');
  writeFileSync(file, String(Date.now()));
  expect(run().exitCode).toBe(0);
});
