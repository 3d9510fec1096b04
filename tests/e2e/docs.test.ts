/**
 * /docs in a real Chromium against a real gateway process: the Scalar API
 * reference renders the gateway's OpenAPI document with nothing fetched from
 * outside loopback (its script comes from the gateway, not a CDN; no web
 * fonts, no "Ask AI", no telemetry). The screenshot goes to
 * .test-output/screenshots/docs.png.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import type { Page } from 'playwright-core';
import { launchBrowser, type TestBrowser } from '../support/browser';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process';
import { until } from '../support/poll';
import { createTestDatabase } from '../support/postgres';

/** Summaries of routes in the document (gateway/src/routes/health.ts), which the reference shows as operation titles. */
const OPERATIONS = ['The process is alive', 'The database is reachable'];

const cleanup: (() => Promise<unknown>)[] = [];
let g: GatewayProcess;
let browser: TestBrowser;

beforeAll(async () => {
  const db = await createTestDatabase();
  cleanup.push(() => db.drop());
  g = await startGatewayProcess({ DATABASE_URL: db.url, ADMIN_API_SECRET: 's', DATA_DIR: '/tmp' }, cleanup);
  browser = await launchBrowser();
  cleanup.push(() => browser.close());
});

afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
});

test('/docs renders the API reference with nothing fetched from outside the gateway', async () => {
  const ctx = await browser.context();
  const page: Page = await ctx.newPage();
  const fetched: string[] = [];
  page.on('requestfinished', (req) => fetched.push(new URL(req.url()).pathname));

  const res = await page.goto(`${g.url}/docs`);
  expect(res?.status()).toBe(200);
  // The reference has loaded the document and rendered its operations.
  for (const title of OPERATIONS) {
    await until(`"${title}" visible`, () => page.getByText(title, { exact: true }).first().isVisible(), 20_000);
  }
  await until('the document title visible', () => page.getByText('wgs — WhatsApp gateway API').first().isVisible());

  expect(fetched).toContain('/docs/scalar.js');
  expect(fetched).toContain('/openapi.json');
  expect(browser.offsite()).toEqual([]);
  expect(browser.pageErrors()).toEqual([]);
  // The features that talk to Scalar's services are off.
  expect(await page.getByText('Ask AI').count()).toBe(0);

  await browser.screenshot(page, 'docs');
  await ctx.close();
});
