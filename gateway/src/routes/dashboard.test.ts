import { afterAll, beforeAll, expect, test } from 'bun:test';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dashboardRoutes } from './dashboard';
import { createTestApp, type TestApp } from '../../../tests/support/app';

let dir: string;
let outside: string;
let t: TestApp;

beforeAll(async () => {
  const base = await mkdtemp(join(tmpdir(), 'wgs-dashboard-'));
  dir = join(base, 'dashboard');
  outside = join(base, 'secret.txt');
  await mkdir(dir);
  await mkdir(join(dir, '.build.abc123'));
  await writeFile(join(dir, 'index.html'), '<!doctype html><title>wgs</title><script src="/dashboard/index-abcd1234.js"></script>');
  await writeFile(join(dir, 'index-abcd1234.js'), 'console.log("app")');
  await writeFile(join(dir, 'index-wxyz9876.css'), 'body{}');
  await writeFile(join(dir, 'index-abcd1234.js.map'), '{}');
  await writeFile(join(dir, '.build.abc123', 'index.html'), 'half-built');
  await writeFile(outside, 'not for you');
  t = await createTestApp();
});
afterAll(async () => {
  await t?.close();
  await rm(join(dir, '..'), { recursive: true, force: true });
});

const get = (path: string, root = dir) => dashboardRoutes(root).handle(new Request(`http://localhost${path}`));

test('index.html at /dashboard and /dashboard/, revalidated on every load, with a policy that keeps the page on this gateway', async () => {
  for (const path of ['/dashboard', '/dashboard/', '/dashboard/index.html']) {
    const res = await get(path);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(await res.text()).toContain('<title>wgs</title>');
  }
});

test('hashed assets with their content type, cached for good', async () => {
  const js = await get('/dashboard/index-abcd1234.js');
  expect(js.status).toBe(200);
  expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
  expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
  expect(js.headers.get('x-content-type-options')).toBe('nosniff');
  expect(await js.text()).toBe('console.log("app")');
  const css = await get('/dashboard/index-wxyz9876.css');
  expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
  expect(css.headers.get('cache-control')).toContain('immutable');
  expect((await get('/dashboard/index-abcd1234.js.map')).headers.get('content-type')).toBe('application/json; charset=utf-8');
});

test('a page of the app (no extension) gets index.html; a missing asset is a JSON 404', async () => {
  const page = await get('/dashboard/instances/3');
  expect(page.status).toBe(200);
  expect(await page.text()).toContain('<title>wgs</title>');
  const missing = await get('/dashboard/index-00000000.js');
  expect(missing.status).toBe(404);
  expect(await missing.json()).toMatchObject({ code: 'not_found' });
});

test('no path leaves the directory, and hidden files (a build under way) are not served', async () => {
  const attempts = [
    '/dashboard/../secret.txt',
    '/dashboard/%2e%2e/secret.txt',
    '/dashboard/%2e%2e%2fsecret.txt',
    '/dashboard/..%5csecret.txt',
    '/dashboard/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd',
    '/dashboard/%2fetc%2fpasswd',
    '/dashboard/.build.abc123/index.html',
    '/dashboard/%00index.html',
  ];
  for (const path of attempts) {
    const res = await get(path);
    const text = await res.text();
    expect(text).not.toContain('not for you');
    expect(text).not.toContain('root:');
    expect(text).not.toContain('half-built');
    // Either refused, or the app's own index.html (a URL the browser normalised back into /dashboard/).
    if (res.status === 200) expect(text).toContain('<title>wgs</title>');
    else expect([400, 404]).toContain(res.status);
  }
  expect((await get('/dashboard/%E0%A4%A')).status).toBe(400);
});

test('a missing bundle: 503 naming scripts/build-dashboard, for the page and its client routes', async () => {
  for (const path of ['/dashboard', '/dashboard/', '/dashboard/instances']) {
    const res = await get(path, join(dir, 'nothing-here'));
    expect(res.status).toBe(503);
    const body = (await res.json()) as { code: string; error: string };
    expect(body.code).toBe('dashboard_not_built');
    expect(body.error).toContain('scripts/build-dashboard');
  }
});

test('in the gateway: served without an API key, and absent from the OpenAPI document', async () => {
  const res = await t.call('GET', '/dashboard/');
  // Built or not, the route answers without authentication (200 with the bundle, 503 naming the script without it).
  expect([200, 503]).toContain(res.status);
  if (res.status === 503) expect(res.body.code).toBe('dashboard_not_built');
  const spec = (await t.call('GET', '/openapi.json')).body;
  expect(Object.keys(spec.paths).filter((p) => p.startsWith('/dashboard'))).toEqual([]);
});
