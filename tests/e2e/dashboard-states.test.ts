/**
 * The dashboard's linking and failure states in a real Chromium (Debian's,
 * driven by playwright-core) against a real gateway process: link a sandbox
 * number by pairing code; send a file and see its row with the type; move it
 * to another process node and see the node change without a reload; log it
 * out and see why, then a new QR; `no_capacity` on a node too small (nothing
 * created); a Docker node whose endpoint is a dead loopback port (unreachable:
 * moving or creating onto it says so); `failed`: a Cloud API number whose
 * token Meta (the in-repo fake Graph API on loopback) stops accepting; a
 * stream token that has expired (refused, renewed, live again); an instance
 * deleted elsewhere (the screen and the list follow). No
 * request may leave the machine; screenshots of each state land in
 * .test-output/screenshots.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { PNG } from 'pngjs';
import type { BrowserContext, Page } from 'playwright-core';
import { issueStreamToken } from '../../gateway/src/auth/stream-tokens';
import { freePort } from '../../gateway/src/lib/net';
import { SecretBox } from '../../gateway/src/lib/secret-box';
import { startFakeGraph, type FakeGraph } from '../../simulator/src/graph/server';
import { ensureDashboardBundle, launchBrowser, type TestBrowser } from '../support/browser';
import { gatewayApi, startGatewayProcess, waitConnected, type GatewayProcess } from '../support/gateway-process';
import { until } from '../support/poll';
import { createTestDatabase } from '../support/postgres';

/** The functions given to page.waitForFunction run in the page, where `document` is the DOM's (this file is type-checked with Bun's types). */
declare const document: any;

/** Assertions on the page wait this long for the UI to catch up. */
const UI_MS = 10_000;
const WABA_ID = '102290129340398';

const cleanup: (() => Promise<unknown>)[] = [];
let g: GatewayProcess;
let graph: FakeGraph;
let browser: TestBrowser;
let ctx: BrowserContext;
let page: Page;
let key: string;
/** The tenant and its key's id: what a stream token names. */
let tenant: { id: number; keyId: number };
/** The gateway's WEBHOOK_SECRET_KEY, so this file can sign a stream token that has already expired. */
const secretKey = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64');
/** The sandbox number linked by code; later sent from, moved, logged out. */
let paired: number;

const api = (method: string, path: string, body?: unknown) => gatewayApi(g, method, path, key, body);

beforeAll(async () => {
  ensureDashboardBundle();
  graph = await startFakeGraph({ port: 0 });
  cleanup.push(() => graph.close());
  const db = await createTestDatabase();
  cleanup.push(() => db.drop());
  g = await startGatewayProcess(
    { DATABASE_URL: db.url, ADMIN_API_SECRET: 's', DATA_DIR: '/tmp', SANDBOX_RECEIPT_DELAYS_MS: '100,300,600', WABA_GRAPH_BASE_URL: graph.url, WEBHOOK_SECRET_KEY: secretKey },
    cleanup,
  );
  // A port nothing listens on: a Docker node there is unreachable at the gateway's first health check after it is added
  // (every 15 s), which this file gives time by adding it first and looking at it late.
  const deadPort = await freePort();
  const admin = (method: string, path: string, body?: unknown) => gatewayApi(g, method, path, undefined, body);
  expect((await admin('POST', '/admin/nodes', { name: 'dead', engine: 'docker', endpoint: `tcp://127.0.0.1:${deadPort}` })).status).toBe(200);
  expect((await admin('POST', '/admin/nodes', { name: 'p2', engine: 'process' })).status).toBe(200);
  expect((await admin('POST', '/admin/nodes', { name: 'tiny', engine: 'process', capacity: { cpu: 0.1, memory: '64m' } })).status).toBe(200);
  const user = (await admin('POST', '/admin/users', { email: 'states@example.com' })).body;
  key = user.apiKey;
  tenant = { id: user.id, keyId: user.keyId };
  browser = await launchBrowser();
  cleanup.push(() => browser.close());
  ctx = await browser.context({ width: 1280, height: 800 });
  page = await ctx.newPage();
  await page.goto(`${g.url}/dashboard/`);
  await page.getByLabel('API key').fill(key);
  await page.getByLabel(/Admin secret/).fill('s');
  await page.getByTestId('signin-submit').click();
  await page.getByTestId('instances-empty').waitFor({ timeout: UI_MS });
}, 60_000);

afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
});

const stateIs = (state: string) =>
  page.waitForFunction((s) => document.querySelector('[data-testid="instance-state"]')?.textContent === s, state, { timeout: UI_MS });

/** Fills the create form (the node picked, as an operator sees the list) and submits it. */
async function fillCreate(phone: string, node: string, limits: { cpu?: string; memory?: string } = {}) {
  await page.getByLabel('Provider').selectOption('sandbox');
  await page.getByLabel('Phone number').fill(phone);
  await page.getByLabel('Node (optional)').selectOption(node);
  await page.getByLabel(/CPU limit/).fill(limits.cpu ?? '');
  await page.getByLabel(/Memory limit/).fill(limits.memory ?? '');
  await page.getByTestId('create-submit').click();
}

test('link by pairing code: the code appears, the sandbox phone enters it, connected without a reload', async () => {
  await fillCreate('+4915100000301', 'local');
  await page.waitForURL(/#\/instances\/\d+$/, { timeout: UI_MS });
  paired = Number(/#\/instances\/(\d+)$/.exec(page.url())![1]);
  await page.evaluate('window.__sameDocument = true');
  await page.getByTestId('qr-image').waitFor({ timeout: UI_MS });

  expect(await page.getByLabel('Phone number to link').inputValue()).toBe('+4915100000301');
  await page.getByTestId('pair-submit').click();
  const code = page.getByTestId('pair-code').locator('strong');
  await code.waitFor({ timeout: UI_MS });
  const shown = (await code.textContent())!.replace('-', '');
  expect(shown).toMatch(/^[A-Z0-9]{8}$/);
  await stateIs('pairing');
  // The QR stops while a code is pending: the page says so instead of waiting for one.
  await page.getByTestId('qr-paused').waitFor({ timeout: UI_MS });
  expect(await page.getByTestId('qr-image').count()).toBe(0);
  const reason = (await api('GET', `/api/instances/${paired}`)).body.stateReason as string;
  expect(reason.replace('-', '')).toContain(shown);
  await browser.screenshot(page, 'states-pairing-code');

  await page.getByTestId('sandbox-scan').click();
  await stateIs('connected');
  await page.getByTestId('connected-notice').waitFor({ timeout: UI_MS });
  expect(await page.getByTestId('pair-form').count()).toBe(0);
  expect((await api('GET', `/api/instances/${paired}`)).body.stateReason).toBe('paired by sandbox pairing code');
  expect(await page.evaluate('window.__sameDocument')).toBe(true);
});

test('a file sent from the page: its row shows the type and the status advances', async () => {
  const png = PNG.sync.write(Object.assign(new PNG({ width: 2, height: 2 }), { data: Buffer.alloc(16, 200) }));
  await page.getByLabel('To (phone number)').fill('+4915100000999');
  await page.getByLabel(/^Text/).fill('a tiny picture');
  await page.getByLabel(/^File/).setInputFiles({ name: 'dot.png', mimeType: 'image/png', buffer: png });
  await page.getByTestId('send-submit').click();
  const row = page.getByTestId('message-row').first();
  await row.waitFor({ timeout: UI_MS });
  const messageId = (await row.getAttribute('data-message-id'))!;
  expect(await row.locator('td[data-label="Type"]').textContent()).toBe('image');
  await page.waitForFunction(
    (mid) => ['sent', 'delivered', 'read'].includes(document.querySelector(`[data-message-id="${mid}"] [data-testid="message-status"]`)?.textContent),
    messageId,
    { timeout: UI_MS },
  );
  const stored = (await api('GET', `/api/instances/${paired}/messages/${messageId}`)).body;
  expect(stored.type).toBe('image');
  expect(['sent', 'delivered', 'read']).toContain(stored.status);
  // The form is ready for the next one: the file was taken off.
  expect(await page.getByLabel(/^File/).inputValue()).toBe('');
  await browser.screenshot(page, 'states-file-sent');
});

test('migrate from the page to another process node: the node changes on screen, no reload, still connected', async () => {
  await page.getByTestId('migrate').click();
  const picker = page.getByLabel('Target node');
  await picker.selectOption('p2');
  await page.getByTestId('migrate-submit').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="instance-node"]')?.textContent === 'p2', undefined, { timeout: 20_000 });
  await stateIs('connected');
  expect((await api('GET', `/api/instances/${paired}`)).body.node).toBe('p2');
  expect(await page.getByTestId('action-error').count()).toBe(0);
  expect(await page.evaluate('window.__sameDocument')).toBe(true);
  await browser.screenshot(page, 'states-migrated');
}, 30_000);

test('log out from the page: the screen says the number was logged out, then shows a new QR', async () => {
  await page.getByTestId('logout').click();
  const notice = page.getByTestId('problem-logged_out');
  await notice.waitFor({ timeout: UI_MS });
  const problem = page.getByTestId('instance-problem');
  expect(await problem.textContent()).toContain('logged out');
  expect(await problem.getAttribute('role')).toMatch(/alert|status/);
  await page.getByTestId('qr-image').waitFor({ timeout: UI_MS });
  // Still said while the new QR is up: the reason the number needs linking again does not vanish with the next state.
  expect(await notice.isVisible()).toBe(true);
  expect((await api('GET', `/api/instances/${paired}`)).body.state).toBe('qr');
  expect(await page.evaluate('window.__sameDocument')).toBe(true);
  await browser.screenshot(page, 'states-logged-out');
});

test('no_capacity: limits that fit no node give a clear error naming it, and nothing is created', async () => {
  const before = (await api('GET', '/api/instances')).body.length;
  await page.getByTestId('nav-instances').click();
  await page.getByTestId('create-form').waitFor({ timeout: UI_MS });
  await fillCreate('+4915100000302', 'tiny', { cpu: '1', memory: '128m' });
  const error = page.getByTestId('create-error');
  await error.waitFor({ timeout: UI_MS });
  const text = (await error.textContent())!;
  expect(text).toContain('no_capacity');
  expect(text).toContain('nothing was created');
  expect(text).toContain('tiny: cpu 1 of 0.1 cores');
  expect(await error.getAttribute('role')).toBe('alert');
  expect(page.url()).toMatch(/#\/instances$/);
  const after = (await api('GET', '/api/instances')).body as { phone: string }[];
  expect(after.length).toBe(before);
  expect(after.some((i) => i.phone === '4915100000302')).toBe(false);
  await browser.screenshot(page, 'states-no-capacity');
});

test('an unreachable node: the pickers mark it; moving or creating onto it says the node is unreachable', async () => {
  // The gateway's own health check (every 15 s) finds the dead port.
  const dead = await until(
    'node dead reported unreachable',
    async () => ((await gatewayApi(g, 'GET', '/admin/nodes')).body as any[]).find((n) => n.name === 'dead' && n.status === 'unreachable'),
    20_000,
    250,
  );
  expect(dead.statusReason).toContain('ECONNREFUSED');

  // Creating onto it: refused, nothing created, the reason names the node.
  await page.reload(); // the create form's node list is read when the screen opens
  await page.getByTestId('create-form').waitFor({ timeout: UI_MS });
  expect(await page.locator('#create-node option[value="dead"]').textContent()).toBe('dead (unreachable)');
  const before = (await api('GET', '/api/instances')).body.length;
  await fillCreate('+4915100000303', 'dead');
  const createError = page.getByTestId('create-error');
  await createError.waitFor({ timeout: UI_MS });
  expect(await createError.textContent()).toContain('dead: unreachable');
  expect((await api('GET', '/api/instances')).body.length).toBe(before);
  await browser.screenshot(page, 'states-unreachable-create');

  // Moving onto it: refused with the node's reason; the instance stays where it is.
  await page.getByTestId(`instance-row-${paired}`).getByTestId('instance-link').click();
  await page.getByTestId('instance-screen').waitFor({ timeout: UI_MS });
  await page.getByTestId('migrate').click();
  await page.getByLabel('Target node').selectOption('dead');
  await page.getByTestId('migrate-submit').click();
  const error = page.getByTestId('action-error');
  await error.waitFor({ timeout: UI_MS });
  const text = (await error.textContent())!;
  expect(text).toContain('node dead is unreachable');
  expect(text).toContain('ECONNREFUSED');
  expect(text).toContain('node_not_ready');
  expect(await error.getAttribute('role')).toBe('alert');
  expect(await page.getByTestId('instance-node').textContent()).toBe('p2');
  await browser.screenshot(page, 'states-unreachable-migrate');
}, 30_000);

test('failed: a Cloud API number whose token Meta stops accepting shows the failed session and why; sends are refused', async () => {
  const app = graph.addApp({ appSecret: 'a1b2c3d4e5f60718293a4b5c6d7e8f90', verifyToken: 'verify-states' });
  const accessToken = `EAAG${'s'.repeat(40)}`;
  graph.addPhoneNumber({ phoneNumberId: '109876543210001', wabaId: WABA_ID, displayPhoneNumber: '15550009001', verifiedName: 'States Shop', accessToken, app });
  // The create form offers no waba (it needs Cloud API credentials): made with the API, watched on the page.
  const created = await api('POST', '/api/instances', {
    provider: 'waba',
    phone: '15550009001',
    node: 'local',
    waba: { phoneNumberId: '109876543210001', wabaId: WABA_ID, accessToken, appSecret: app.appSecret, verifyToken: 'verify-states' },
  });
  expect(created.status).toBe(200);
  const id = created.body.id as number;
  await waitConnected(g, id, key);
  await page.goto(`${g.url}/dashboard/#/instances/${id}`);
  await stateIs('connected');

  graph.expireToken(accessToken);
  await page.getByTestId('restart').click();
  await stateIs('failed');
  const problem = page.getByTestId('instance-problem');
  await page.getByTestId('problem-session_failed').waitFor({ timeout: UI_MS });
  expect(await problem.textContent()).toContain('expired');
  expect(await problem.textContent()).toContain('The Cloud API refuses this number');
  expect(await problem.getAttribute('role')).toBe('alert');

  await page.getByLabel('To (phone number)').fill('+4915100000998');
  await page.getByLabel(/^Text/).fill('with a dead token');
  await page.getByTestId('send-submit').click();
  const sendError = page.getByTestId('send-error');
  await sendError.waitFor({ timeout: UI_MS });
  expect(await sendError.textContent()).toContain('session_failed');
  await browser.screenshot(page, 'states-failed');
}, 30_000);

test('an expired stream token: the stream is refused, the page asks for a new token and goes live again', async () => {
  // A page kept open past the token's five minutes: its EventSource reconnects with the old token. Here the first
  // token the page gets is one that expired a minute ago (signed with the gateway's key), the rest come as usual.
  const expired = issueStreamToken(new SecretBox(secretKey), tenant.keyId, tenant.id, Date.now() - 6 * 60_000);
  const own = await ctx.newPage();
  let issued = 0;
  await own.route('**/api/stream-tokens', (route) =>
    issued++ === 0 ? route.fulfill({ status: 201, contentType: 'application/json', body: JSON.stringify(expired) }) : route.continue(),
  );
  const streams: { token: string; status: number }[] = [];
  own.on('response', (res) => {
    const url = new URL(res.url());
    if (url.pathname === '/api/events/stream') streams.push({ token: url.searchParams.get('token') ?? '', status: res.status() });
  });
  await own.goto(`${g.url}/dashboard/`);
  await own.getByLabel('API key').fill(key);
  await own.getByTestId('signin-submit').click();
  await own.waitForFunction(() => document.querySelector('[data-testid="live-indicator"]')?.textContent === 'live', undefined, { timeout: UI_MS });
  expect(streams[0]).toEqual({ token: expired.token, status: 401 });
  expect(streams.at(-1)!.status).toBe(200);
  expect(streams.at(-1)!.token).not.toBe(expired.token);
  expect(issued).toBeGreaterThanOrEqual(2);
  // Live for real: a number created elsewhere shows up in the open list without a reload.
  const created = await api('POST', '/api/instances', { provider: 'sandbox', phone: '+4915100000377' });
  expect(created.status).toBe(200);
  await own.getByTestId(`instance-row-${created.body.id}`).waitFor({ timeout: UI_MS });
  await own.close();
});

test('deleted elsewhere: the open instance screen says so, the open list drops the row, both without a reload', async () => {
  const created = await api('POST', '/api/instances', { provider: 'sandbox', phone: '+4915100000378' });
  expect(created.status).toBe(200);
  const id = created.body.id as number;
  await page.goto(`${g.url}/dashboard/#/instances/${id}`);
  await page.getByTestId('instance-screen').waitFor({ timeout: UI_MS });
  await page.waitForFunction(() => document.querySelector('[data-testid="live-indicator"]')?.textContent === 'live', undefined, { timeout: UI_MS });
  await page.evaluate('window.__sameDocument = true');
  const list = await ctx.newPage();
  await list.goto(`${g.url}/dashboard/`);
  await list.getByLabel('API key').fill(key);
  await list.getByTestId('signin-submit').click();
  await list.getByTestId(`instance-row-${id}`).waitFor({ timeout: UI_MS });
  await list.waitForFunction(() => document.querySelector('[data-testid="live-indicator"]')?.textContent === 'live', undefined, { timeout: UI_MS });

  expect((await api('DELETE', `/api/instances/${id}`)).status).toBe(204);
  await page.getByTestId('instance-deleted').waitFor({ timeout: UI_MS });
  expect(await page.getByTestId('instance-deleted').textContent()).toContain(`Instance ${id} was deleted`);
  await list.getByTestId(`instance-row-${id}`).waitFor({ state: 'detached', timeout: UI_MS });
  expect(await page.evaluate('window.__sameDocument')).toBe(true);
  await browser.screenshot(page, 'states-deleted-elsewhere');
  await list.close();
});

test('no request left the machine, and no page error but the refusals the tests asked for', () => {
  expect(browser.offsite()).toEqual([]);
  // The browser reports each refused call as a failed load: 503 no_capacity (twice), 409 node_not_ready, 503 session_failed,
  // 401 for the stream opened with an expired token.
  const unexpected = browser.pageErrors().filter((e) => !/Failed to load resource: the server responded with a status of (401|409|503)/.test(e));
  expect(unexpected).toEqual([]);
});
