/**
 * The dashboard in a real Chromium (Debian's, driven by playwright-core)
 * against a real gateway process: sign in, create a sandbox number, watch
 * its QR appear and rotate live, scan, see it connect without a reload, send
 * a text and watch it reach `read`; a wrong key; the same at phone width;
 * the keyboard. No request may leave the machine. Screenshots of the main
 * screens land in .test-output/screenshots.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import jsQR from 'jsqr';
import { PNG } from 'pngjs';
import type { Page } from 'playwright-core';
import { ensureDashboardBundle, launchBrowser, type TestBrowser } from '../support/browser';
import { gatewayApi, startGatewayProcess, type GatewayProcess } from '../support/gateway-process';
import { createTestDatabase } from '../support/postgres';
import { until } from '../support/poll';

/** The functions given to page.waitForFunction run in the page, where `document` is the DOM's (this file is type-checked with Bun's types). */
declare const document: any;

const cleanup: (() => Promise<unknown>)[] = [];
let g: GatewayProcess;
let browser: TestBrowser;
let apiKey: string;

beforeAll(async () => {
  ensureDashboardBundle();
  const db = await createTestDatabase();
  cleanup.push(() => db.drop());
  // A QR every 1.5 s, so a rotation is seen within the test; receipts within a second.
  g = await startGatewayProcess(
    { DATABASE_URL: db.url, ADMIN_API_SECRET: 's', DATA_DIR: '/tmp', SANDBOX_QR_INTERVAL_MS: '1500', SANDBOX_RECEIPT_DELAYS_MS: '100,300,600' },
    cleanup,
  );
  apiKey = (await gatewayApi(g, 'POST', '/admin/users', undefined, { email: 'dashboard@example.com' })).body.apiKey;
  browser = await launchBrowser();
  cleanup.push(() => browser.close());
}, 60_000);

afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
});

/** The text of a QR drawn as a data: URL PNG. */
function decodeQr(dataUrl: string): string | null {
  const png = PNG.sync.read(Buffer.from(dataUrl.replace(/^data:image\/png;base64,/, ''), 'base64'));
  return jsQR(new Uint8ClampedArray(png.data), png.width, png.height)?.data ?? null;
}

async function signIn(page: Page, key: string, admin?: string) {
  await page.goto(`${g.url}/dashboard/`);
  await page.getByLabel('API key').fill(key);
  if (admin) await page.getByLabel(/Admin secret/).fill(admin);
  await page.getByTestId('signin-submit').click();
}

/** Creates a sandbox number from the form; returns its id once the app shows its screen. */
async function createFromUi(page: Page, phone: string): Promise<number> {
  await page.getByLabel('Provider').selectOption('sandbox');
  await page.getByLabel('Phone number').fill(phone);
  await page.getByTestId('create-submit').click();
  await page.waitForURL(/#\/instances\/\d+$/, { timeout: 30_000 });
  return Number(/#\/instances\/(\d+)$/.exec(page.url())![1]);
}

test('sign-in is keyboard reachable with a visible focus; a wrong key shows an error, not a blank page', async () => {
  const ctx = await browser.context();
  const page = await ctx.newPage();
  await page.goto(`${g.url}/dashboard/`);
  await page.keyboard.press('Tab');
  expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('api-key');
  await page.keyboard.press('Tab');
  expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('admin-secret');
  await page.keyboard.press('Tab');
  expect(await page.evaluate('document.activeElement && document.activeElement.getAttribute("data-testid")')).toBe('signin-submit');
  // The focused button shows where the focus is.
  expect(await page.evaluate('getComputedStyle(document.activeElement).outlineStyle')).not.toBe('none');

  await page.getByLabel('API key').fill('wgs_not_a_real_key');
  await page.keyboard.press('Enter');
  const error = page.getByTestId('signin-error');
  await error.waitFor({ timeout: 5_000 });
  expect(await error.textContent()).toContain('refused this API key');
  expect(await page.getByTestId('signin-form').isVisible()).toBe(true);
  await browser.screenshot(page, 'sign-in-wrong-key');

  // Nothing of the key reached the URL or survived the failed sign-in.
  expect(page.url()).not.toContain('wgs_not_a_real_key');
  expect(await page.evaluate('sessionStorage.getItem("wgs.apiKey")')).toBeNull();
  await ctx.close();
});

test('create a sandbox number, its QR live and rotating, scan, connected without a reload, a text sent reaches read', async () => {
  const ctx = await browser.context({ width: 1280, height: 800 });
  const page = await ctx.newPage();
  await signIn(page, apiKey, 's');
  await page.getByTestId('instances-empty').waitFor({ timeout: 10_000 });
  expect(await page.getByTestId('nav-admin-nodes').isVisible()).toBe(true);
  expect(await page.evaluate('sessionStorage.getItem("wgs.apiKey")')).toBe(apiKey);
  expect(page.url()).not.toContain(apiKey);
  await browser.screenshot(page, 'instances-empty');

  const id = await createFromUi(page, '+4915100000101');
  // Marks this document: a reload would lose it.
  await page.evaluate('window.__sameDocument = true');
  const shown = Date.now();
  const qr = page.getByTestId('qr-image');
  // The 2 s is a target, measured and printed here, not a bound a loaded CI machine can promise:
  // create waits at most 2 s for the worker's first report, and a later one brings the QR over the stream.
  await qr.waitFor({ timeout: 10_000 });
  console.log(`QR shown ${Date.now() - shown} ms after the instance screen opened (target: under 2000 ms)`);
  expect(await page.getByTestId('qr-countdown').textContent()).toMatch(/expires in \d+ s/);

  // The drawn QR is the gateway's (both sampled together: it rotates every 1.5 s).
  await until('the drawn QR carries the gateway code', async () => {
    const src = (await qr.getAttribute('src'))!;
    const current = await gatewayApi(g, 'GET', `/api/instances/${id}/qr?format=json`, apiKey);
    return decodeQr(src) === current.body?.qr;
  }, 6_000);

  // The gateway rotates it: the page draws the new one without being asked.
  const first = (await qr.getAttribute('src'))!;
  const firstText = decodeQr(first);
  await page.waitForFunction((before) => {
    const img = document.querySelector('[data-testid="qr-image"]');
    return img !== null && img.getAttribute('src') !== before;
  }, first, { timeout: 5_000 });
  const second = (await qr.getAttribute('src'))!;
  expect(decodeQr(second)).not.toBe(firstText);
  await browser.screenshot(page, 'instance-linking');

  await page.getByTestId('sandbox-scan').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="instance-state"]')?.textContent === 'connected', undefined, { timeout: 10_000 });
  await page.getByTestId('connected-notice').waitFor({ timeout: 5_000 });
  expect(await qr.count()).toBe(0);
  expect(await page.evaluate('window.__sameDocument')).toBe(true);

  await page.getByLabel('To (phone number)').fill('+4915100000999');
  await page.getByLabel(/^Text/).fill('hello from the dashboard');
  await page.getByTestId('send-submit').click();
  const row = page.getByTestId('message-row').first();
  await row.waitFor({ timeout: 10_000 });
  const messageId = await row.getAttribute('data-message-id');
  expect(messageId).toMatch(/^msg_/);
  await page.waitForFunction(
    (mid) => document.querySelector(`[data-message-id="${mid}"] [data-testid="message-status"]`)?.textContent === 'read',
    messageId,
    { timeout: 10_000 },
  );
  expect((await gatewayApi(g, 'GET', `/api/instances/${id}/messages/${messageId}`, apiKey)).body.status).toBe('read');
  expect(await page.evaluate('window.__sameDocument')).toBe(true);
  await browser.screenshot(page, 'instance-connected-messages');

  // A message received before the page (re)opens shows from the event log; one received live joins it; each once.
  const inbound = (text: string) => gatewayApi(g, 'POST', `/api/instances/${id}/sandbox/inbound`, apiKey, { from: '+4915100000777', text });
  expect((await inbound('sent before the reload')).status).toBe(200);
  await until('the received message in the log', async () => (await gatewayApi(g, 'GET', `/api/instances/${id}/events?types=message.received`, apiKey)).body.events.length === 1);
  await page.reload();
  const received = page.getByTestId('received-list').locator('li');
  await received.first().waitFor({ timeout: 10_000 });
  expect(await received.allTextContents()).toEqual([expect.stringMatching(/\+4915100000777 \(text\): sent before the reload$/)]);
  await page.getByTestId('live-indicator').getByText('live').waitFor({ timeout: 5_000 });
  expect((await inbound('sent live')).status).toBe(200);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="received-list"] li').length >= 2, undefined, { timeout: 10_000 });
  const texts = await received.allTextContents();
  expect(texts.map((s) => s.replace(/^.*: /, ''))).toEqual(['sent live', 'sent before the reload']);

  // The list: provider, node, status and state, and a change made elsewhere shows up live.
  await page.getByTestId('nav-instances').click();
  const listRow = page.getByTestId(`instance-row-${id}`);
  await listRow.waitFor({ timeout: 5_000 });
  expect(await listRow.getByTestId('instance-node').textContent()).toBe('local');
  expect(await listRow.getByTestId('instance-state').textContent()).toBe('connected');
  await page.getByTestId('live-indicator').getByText('live').waitFor({ timeout: 5_000 });
  expect((await gatewayApi(g, 'POST', `/api/instances/${id}/logout`, apiKey)).status).toBe(200);
  await page.waitForFunction(
    (rid) => ['logged_out', 'qr'].includes(document.querySelector(`[data-testid="instance-row-${rid}"] [data-testid="instance-state"]`)?.textContent ?? ''),
    id,
    { timeout: 10_000 },
  );
  await browser.screenshot(page, 'instances');

  await page.getByTestId('sign-out').click();
  await page.getByTestId('signin-form').waitFor({ timeout: 5_000 });
  expect(await page.evaluate('sessionStorage.getItem("wgs.apiKey")')).toBeNull();
  await ctx.close();
}, 45_000);

test('at phone width (390×844): sign in, create, QR, scan, connected; nothing wider than the screen', async () => {
  const ctx = await browser.context({ width: 390, height: 844 });
  const page = await ctx.newPage();
  await signIn(page, apiKey);
  await page.getByTestId('create-form').waitFor({ timeout: 10_000 });
  // No admin secret: no admin links.
  expect(await page.getByTestId('nav-admin-nodes').count()).toBe(0);
  const id = await createFromUi(page, '+4915100000102');
  await page.getByTestId('qr-image').waitFor({ timeout: 10_000 }); // the 2 s target is measured in the test above
  expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
  await browser.screenshot(page, 'phone-instance-linking');
  await page.getByTestId('sandbox-scan').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="instance-state"]')?.textContent === 'connected', undefined, { timeout: 10_000 });
  await page.getByTestId('nav-instances').click();
  await page.getByTestId(`instance-row-${id}`).waitFor({ timeout: 5_000 });
  expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
  await browser.screenshot(page, 'phone-instances');
  await ctx.close();
}, 30_000);

test('no request left the machine, and no page error', () => {
  expect(browser.offsite()).toEqual([]);
  // The wrong-key sign-in's refused /api/me is the one failed load the browser reports.
  const unexpected = browser.pageErrors().filter((e) => !/Failed to load resource: the server responded with a status of 401/.test(e));
  expect(unexpected).toEqual([]);
});
