import { Elysia } from 'elysia';
import { stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';

/** The built dashboard (scripts/build-dashboard); the gateway image says where its copy is. */
export const DASHBOARD_DIR = process.env.WGS_DASHBOARD_DIR || join(import.meta.dir, '..', '..', '..', 'build', 'dashboard');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** `index-djkym45j.js`: the bundler put a content hash in the name, so the file never changes. */
const HASHED_RE = /-[a-z0-9]{8}\.[a-z0-9]+(\.map)?$/;

/**
 * The page may load and call only this gateway: no script, style, font or
 * connection elsewhere. QR images are data: URLs drawn in the page.
 */
const CSP = "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

const json = (status: number, code: string, error: string) =>
  new Response(JSON.stringify({ error, code }), { status, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' } });

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

/**
 * The browser dashboard as static files at /dashboard: hashed assets cached
 * for good, index.html revalidated on every load and served for every other
 * path under /dashboard/ (the app routes by the URL's hash). No
 * authentication here: the app signs its API calls with the key the person
 * types in. A 503 names the build script while the bundle is missing.
 */
export function dashboardRoutes(dir: string = DASHBOARD_DIR) {
  const root = resolve(dir);

  async function index(): Promise<Response> {
    const file = join(root, 'index.html');
    if (!(await isFile(file))) {
      return json(503, 'dashboard_not_built', `the dashboard is not built: run scripts/build-dashboard (make run and make test do), expected ${file}`);
    }
    return new Response(Bun.file(file), {
      headers: {
        'content-type': TYPES['.html']!,
        'cache-control': 'no-cache',
        'content-security-policy': CSP,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
        'x-frame-options': 'DENY',
      },
    });
  }

  async function serve(request: Request): Promise<Response> {
    const pathname = new URL(request.url).pathname;
    let rel: string;
    try {
      rel = decodeURIComponent(pathname.slice('/dashboard/'.length));
    } catch {
      return json(400, 'invalid_path', 'the path is not valid percent-encoding');
    }
    if (rel === '' || rel === 'index.html') return index();
    const segments = rel.split(/[/\\]/);
    // No way out of the directory (.., an absolute path, a NUL) and no hidden files (a build in progress).
    if (rel.includes('\0') || segments.some((s) => s.startsWith('.'))) return json(404, 'not_found', `no dashboard file ${pathname}`);
    const file = resolve(root, rel);
    if (!file.startsWith(root + sep)) return json(404, 'not_found', `no dashboard file ${pathname}`);
    if (await isFile(file)) {
      const ext = extname(file).toLowerCase();
      return new Response(Bun.file(file), {
        headers: {
          'content-type': TYPES[ext] ?? (Bun.file(file).type || 'application/octet-stream'),
          'cache-control': HASHED_RE.test(file) ? 'public, max-age=31536000, immutable' : 'no-cache',
          'x-content-type-options': 'nosniff',
        },
      });
    }
    // A missing file is a 404; any other path is a page of the app.
    if (extname(rel) !== '') return json(404, 'not_found', `no dashboard file ${pathname}`);
    return index();
  }

  return new Elysia({ name: 'dashboard', detail: { hide: true } })
    .get('/dashboard', () => index(), { detail: { hide: true } })
    .get('/dashboard/*', ({ request }) => serve(request), { detail: { hide: true } });
}
