/**
 * A real Chromium for browser tests: Debian's `chromium` package (installed by
 * .ci/run from apt; never a browser downloaded by Playwright) driven by
 * playwright-core. Every page of a context made here may only talk to
 * loopback: any other request is aborted and recorded, and `offsite()` lists
 * them so a test can assert that nothing left the machine.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Screenshots of the main screens, for a person to look at (not committed: .test-output is ignored). */
export const SCREENSHOT_DIR = join(import.meta.dir, '..', '..', '.test-output', 'screenshots');

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

export interface TestBrowser {
  browser: Browser;
  /** A fresh context (its own session storage) at the given viewport, loopback only. */
  context(viewport?: { width: number; height: number }): Promise<BrowserContext>;
  /** Requests that tried to leave loopback, aborted (`method url`). */
  offsite(): string[];
  /** Console errors and uncaught page errors seen by any page. */
  pageErrors(): string[];
  screenshot(page: Page, name: string): Promise<string>;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`no Chromium at ${CHROMIUM_PATH}: install Debian's chromium package (apt-get install chromium), as .ci/run does, or set CHROMIUM_PATH`);
  }
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  const offsite: string[] = [];
  const errors: string[] = [];
  return {
    browser,
    async context(viewport = { width: 1280, height: 800 }) {
      const ctx = await browser.newContext({ viewport });
      await ctx.route('**/*', (route) => {
        const url = new URL(route.request().url());
        if (url.protocol === 'data:' || url.protocol === 'blob:' || LOOPBACK_HOSTS.has(url.hostname)) return route.continue();
        offsite.push(`${route.request().method()} ${url.href}`);
        return route.abort('blockedbyclient');
      });
      ctx.on('page', (page) => {
        page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
        page.on('console', (msg) => {
          if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
        });
      });
      return ctx;
    },
    offsite: () => [...offsite],
    pageErrors: () => [...errors],
    async screenshot(page, name) {
      await mkdir(SCREENSHOT_DIR, { recursive: true });
      const path = join(SCREENSHOT_DIR, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    },
    close: () => browser.close(),
  };
}

const ROOT = join(import.meta.dir, '..', '..');

/** Newest mtime under a directory. */
function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

/**
 * The dashboard bundle the gateway serves (build/dashboard), built by
 * scripts/build-dashboard when missing or older than dashboard/src, so
 * `bun test` alone works as `make test` does.
 */
export function ensureDashboardBundle(): void {
  const index = join(ROOT, 'build', 'dashboard', 'index.html');
  if (existsSync(index) && statSync(index).mtimeMs >= newest(join(ROOT, 'dashboard', 'src'))) return;
  const build = Bun.spawnSync(['bash', join(ROOT, 'scripts', 'build-dashboard')], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' });
  if (build.exitCode !== 0) throw new Error(`scripts/build-dashboard failed (${build.exitCode}):\n${build.stdout.toString()}${build.stderr.toString()}`);
}
