/**
 * The dashboard's webhook and operator screens in a real Chromium against a
 * real gateway process with two process nodes and sandbox instances:
 * subscribe a local receiver (the signing secret shown once), see a delivery
 * and replay it; as admin, see nodes with reserved CPU/memory bars, drain a
 * node and watch its instances move without a reload, undrain; create a user
 * and API keys. Nothing may leave loopback; screenshots go to
 * .test-output/screenshots/.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import type { BrowserContext, Page } from 'playwright-core';
import { freePort } from '../../gateway/src/lib/net';
import { EVENT_TYPES } from '../../gateway/src/webhooks/subscriptions';
import { ensureDashboardBundle, launchBrowser, type TestBrowser } from '../support/browser';
import { gatewayApi as api, startGatewayProcess, waitConnected, type GatewayProcess } from '../support/gateway-process';
import { until } from '../support/poll';
import { createTestDatabase } from '../support/postgres';
import { webhookReceiver, type Receiver } from '../support/receiver';

/** Assertions on the page wait this long for the UI to catch up (polls, streams). */
const UI_MS = 15_000;

const cleanup: (() => Promise<unknown>)[] = [];
let g: GatewayProcess;
let browser: TestBrowser;
let ctx: BrowserContext;
let page: Page;
let receiver: Receiver;
let key: string;
let ids: number[] = [];

beforeAll(async () => {
  ensureDashboardBundle();
  const db = await createTestDatabase();
  cleanup.push(() => db.drop());
  receiver = webhookReceiver(await freePort(), cleanup);
  g = await startGatewayProcess(
    { DATABASE_URL: db.url, ADMIN_API_SECRET: 's', DATA_DIR: '/tmp', WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true', WEBHOOK_RETRY_SCHEDULE: '0,1,1' },
    cleanup,
  );
  // Two process nodes with a capacity each, so the bars have something to measure and a drain somewhere to go.
  const nodes = (await api(g, 'GET', '/admin/nodes')).body as { id: number; name: string }[];
  const local = nodes.find((n) => n.name === 'local')!;
  expect((await api(g, 'PUT', `/admin/nodes/${local.id}`, undefined, { capacity: { cpu: 2, memory: '1g' } })).status).toBe(200);
  expect((await api(g, 'POST', '/admin/nodes', undefined, { name: 'p2', engine: 'process', capacity: { cpu: 2, memory: '1g' } })).status).toBe(200);

  const user = (await api(g, 'POST', '/admin/users', undefined, { email: 'operator@example.com' })).body;
  key = user.apiKey;
  for (const phone of ['4915100004001', '4915100004002']) {
    const created = await api(g, 'POST', '/api/instances', key, { provider: 'sandbox', phone, node: 'local', resources: { cpu: '0.25', memory: '128m' } });
    expect(created.status).toBe(200);
    ids.push(created.body.id);
    expect((await api(g, 'POST', `/api/instances/${created.body.id}/sandbox/scan`, key)).status).toBe(200);
  }
  await Promise.all(ids.map((id) => waitConnected(g, id, key)));

  browser = await launchBrowser();
  cleanup.push(() => browser.close());
  ctx = await browser.context({ width: 1280, height: 800 });
  page = await ctx.newPage();
}, 60_000);

afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
});

test('sign in with an API key and the admin secret', async () => {
  await page.goto(`${g.url}/dashboard/`);
  await page.getByLabel('API key').fill(key);
  await page.getByLabel(/Admin secret/).fill('s');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('link', { name: 'Nodes' }).waitFor({ timeout: UI_MS });
});

test('webhooks: subscribe with a filter, the secret shown once; a delivery with its status and response; replay it', async () => {
  const id = ids[0]!;
  await page.evaluate(`location.hash = '#/instances/${id}/webhooks'`);
  const form = page.getByRole('form', { name: 'Add a subscription' });
  await form.waitFor({ timeout: UI_MS });
  // Every event type the gateway filters on, each a labelled checkbox.
  const labels = await form.getByRole('checkbox').evaluateAll((boxes: any[]) => boxes.map((b) => b.labels[0].textContent.trim()));
  expect(labels).toEqual([...EVENT_TYPES]);

  await form.getByLabel('Receiver URL').fill(receiver.url('/hook'));
  await form.getByRole('checkbox', { name: 'message.received', exact: true }).check();
  await form.getByRole('button', { name: 'Add subscription' }).click();

  const shown = page.getByRole('region', { name: /Signing secret of subscription/ });
  await shown.waitFor({ timeout: UI_MS });
  await expect(shown.innerText()).resolves.toContain("you won't see it again");
  const secret = (await shown.getByTestId('shown-once-value').innerText()).trim();
  expect(secret).toMatch(/^whsec_/);
  expect(await shown.getByRole('button', { name: 'Copy' }).count()).toBe(1);
  receiver.secrets.set('/hook', secret);
  const hooks = (await api(g, 'GET', `/api/instances/${id}/webhooks`, key)).body;
  expect(hooks).toHaveLength(1);
  expect(hooks[0]).toMatchObject({ url: receiver.url('/hook'), events: ['message.received'], enabled: true });
  await shown.getByRole('button', { name: 'I have stored it' }).click();
  await until('the secret gone from the page', async () => !(await page.content()).includes(secret), UI_MS);
  await expect(page.getByText('events: message.received').count()).resolves.toBe(1);

  // An inbound message: one delivery, shown with its status, attempts, code and the receiver's answer.
  expect((await api(g, 'POST', `/api/instances/${id}/sandbox/inbound`, key, { from: '4477000001', text: 'hello hooks' })).status).toBe(200);
  const row = page.locator('tr[data-delivery-id]');
  await until('a succeeded delivery on the page', async () => (await row.count()) === 1 && (await row.getAttribute('data-status')) === 'succeeded', UI_MS);
  await expect(row.locator('[data-col=event]').innerText()).resolves.toMatch(/^message\.received #\d+$/);
  await expect(row.locator('[data-col=attempts]').innerText()).resolves.toBe('1');
  await expect(row.locator('[data-col=code]').innerText()).resolves.toBe('200');
  await expect(row.locator('[data-col=response]').innerText()).resolves.toBe('ok');
  expect(receiver.answered).toHaveLength(1);
  expect(receiver.delivered[0]).toMatchObject({ type: 'message.received', instance: id });
  await browser.screenshot(page, 'webhooks');

  // Replay, from the keyboard: the receiver gets the same delivery again and the row shows the new attempt.
  const replay = row.getByRole('button', { name: /^Replay delivery/ });
  await replay.focus();
  await page.keyboard.press('Enter');
  await until('the replay received', () => receiver.answered.length === 2, UI_MS);
  expect(receiver.answered[1]).toBe(receiver.answered[0]!);
  await until(
    'the replayed delivery succeeded on the page',
    async () => (await row.getAttribute('data-status')) === 'succeeded' && (await row.innerText()).includes('replayed ×1'),
    UI_MS,
  );

  // Rotating shows a new secret, once.
  await page.getByRole('button', { name: /Rotate the signing secret of subscription/ }).click();
  const rotated = page.getByRole('region', { name: /Signing secret of subscription/ });
  await rotated.waitFor({ timeout: UI_MS });
  const next = (await rotated.getByTestId('shown-once-value').innerText()).trim();
  expect(next).toMatch(/^whsec_/);
  expect(next).not.toBe(secret);
  await rotated.getByRole('button', { name: 'I have stored it' }).click();
});

/** The node's card on the nodes screen. */
const nodeCard = (name: string) => page.locator(`article[data-node="${name}"]`);
/** Instance ids listed on a node's card (those on it, and those arriving). */
const listed = async (name: string) =>
  (await nodeCard(name).locator('li[data-instance-id]').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-instance-id'))))).sort();

test('admin nodes: health and bars; drain a node, its instances move without a reload; undrain', async () => {
  await page.getByRole('link', { name: 'Nodes' }).click();
  await nodeCard('p2').waitFor({ timeout: UI_MS });
  expect(await page.locator('article[data-node]').count()).toBe(2);

  // Reserved CPU and memory against capacity: labelled meters with the numbers in text too.
  const local = nodeCard('local');
  const cpu = local.getByRole('meter', { name: 'CPU reserved' });
  await until('local reserves two instances', async () => (await cpu.getAttribute('aria-valuetext'))?.startsWith('0.5 cores of 2 cores'), UI_MS);
  expect(await cpu.evaluate((m: any) => [m.value, m.max])).toEqual([0.5, 2]);
  await expect(local.getByRole('meter', { name: 'Memory reserved' }).getAttribute('aria-valuetext')).resolves.toBe('256 MiB of 1 GiB (25%)');
  await expect(local.innerText()).resolves.toContain('0.5 cores of 2 cores (25%)');
  const p2Cpu = nodeCard('p2').getByRole('meter', { name: 'CPU reserved' });
  expect(await p2Cpu.evaluate((m: any) => m.value)).toBe(0);
  expect(await listed('local')).toEqual([...ids].sort());
  expect(await listed('p2')).toEqual([]);
  await until('local reported healthy', async () => (await local.locator('.adm-badge').first().innerText()) === 'ready', UI_MS);
  await browser.screenshot(page, 'admin-nodes');

  // Drain from the keyboard; the page follows the moves by itself.
  const loadsBefore = page.url();
  await local.getByRole('button', { name: 'Drain node local', exact: true }).focus();
  await page.keyboard.press('Enter');
  await local.getByTestId('drain-progress').waitFor({ timeout: UI_MS });
  await until('both instances listed on p2 and none on local', async () => (await listed('local')).length === 0 && (await listed('p2')).join() === [...ids].sort().join(), 30_000, 100);
  await until('the drain done', async () => (await local.getByTestId('drain-progress').innerText()).includes('Done: 2 of 2 moved'), UI_MS);
  expect(await local.getByRole('progressbar', { name: 'Drain of local' }).evaluate((p: any) => [p.value, p.max])).toEqual([2, 2]);
  await until('p2 reserves them now', async () => (await p2Cpu.evaluate((m: any) => m.value)) === 0.5, UI_MS);
  expect(page.url()).toBe(loadsBefore);
  for (const id of ids) expect((await api(g, 'GET', `/api/instances/${id}`, key)).body.node).toBe('p2');
  await browser.screenshot(page, 'admin-nodes-drained');

  await local.getByRole('button', { name: 'Undrain node local', exact: true }).click();
  await local.getByRole('button', { name: 'Drain node local', exact: true }).waitFor({ timeout: UI_MS });
  expect(await local.locator('.adm-badge.draining').count()).toBe(0);
  expect((await api(g, 'GET', '/admin/nodes')).body.find((n: { name: string }) => n.name === 'local').draining).toBe(false);
});

test('admin users: create a user (its key shown once and working), issue and revoke keys', async () => {
  await page.getByRole('link', { name: 'Users' }).click();
  await page.getByLabel('Email of the new user').fill('new-tenant@example.com');
  await page.getByRole('button', { name: 'Create user' }).click();
  const shown = page.getByRole('region', { name: 'API key of new-tenant@example.com' });
  await shown.waitFor({ timeout: UI_MS });
  const first = (await shown.getByTestId('shown-once-value').innerText()).trim();
  expect(first).toMatch(/^wgs_/);
  expect((await fetch(`${g.url}/api/me`, { headers: { authorization: `Bearer ${first}` } })).status).toBe(200);
  await shown.getByRole('button', { name: 'I have stored it' }).click();

  const card = page.locator('article[data-user="new-tenant@example.com"]');
  await card.getByRole('button', { name: 'New API key for new-tenant@example.com' }).click();
  const again = page.getByRole('region', { name: 'New API key of new-tenant@example.com' });
  await again.waitFor({ timeout: UI_MS });
  const second = (await again.getByTestId('shown-once-value').innerText()).trim();
  expect(second).toMatch(/^wgs_/);
  expect(second).not.toBe(first);
  await until('two keys listed', async () => (await card.locator('tr[data-key-id]').count()) === 2, UI_MS);
  await browser.screenshot(page, 'admin-users');
  await again.getByRole('button', { name: 'I have stored it' }).click();

  // Revoking asks once more; the first key then stops working.
  const revoke = card.locator('tr[data-key-id]').first().getByRole('button', { name: /^Revoke key/ });
  await revoke.click();
  await card.getByRole('button', { name: /^Really revoke\?/ }).click();
  await until('one key left', async () => (await card.locator('tr[data-key-id]').count()) === 1, UI_MS);
  expect((await fetch(`${g.url}/api/me`, { headers: { authorization: `Bearer ${first}` } })).status).toBe(401);
  expect((await fetch(`${g.url}/api/me`, { headers: { authorization: `Bearer ${second}` } })).status).toBe(200);
});

test('phone width: the admin and webhook screens fit 390 px without sideways scrolling', async () => {
  const phone = await browser.context({ width: 390, height: 844 });
  const p = await phone.newPage();
  await p.goto(`${g.url}/dashboard/`);
  await p.getByLabel('API key').fill(key);
  await p.getByLabel(/Admin secret/).fill('s');
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.getByRole('link', { name: 'Nodes' }).waitFor({ timeout: UI_MS });
  for (const [hash, ready, name] of [
    ['#/admin/nodes', 'article[data-node="p2"]', 'admin-nodes-phone'],
    ['#/admin/users', 'article[data-user]', 'admin-users-phone'],
    [`#/instances/${ids[0]}/webhooks`, 'article[data-webhook-id]', 'webhooks-phone'],
  ] as const) {
    await p.evaluate(`location.hash = '${hash}'`);
    await p.locator(ready).first().waitFor({ timeout: UI_MS });
    const overflow = (await p.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth')) as number;
    expect(overflow, `${hash} scrolls sideways by ${overflow} px`).toBeLessThanOrEqual(0);
    await browser.screenshot(p, name);
  }
  await phone.close();
});

test('nothing left the machine and no page errored', () => {
  expect(browser.offsite()).toEqual([]);
  expect(browser.pageErrors()).toEqual([]);
});
