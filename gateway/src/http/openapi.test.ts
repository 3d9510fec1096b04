import { describe, expect, test } from 'bun:test';
import { gunzipSync } from 'node:zlib';
import { Elysia } from 'elysia';
import { apiDocs, SCALAR_SCRIPT_PATH, SPEC_PATH } from './openapi';

const app = new Elysia().use(apiDocs('1.2.3')).get('/ping', () => 'pong', { detail: { summary: 'Ping' } });
const get = (path: string, headers: Record<string, string> = {}) => app.handle(new Request(`http://wgs.test${path}`, { headers }));

describe('/docs works offline', () => {
  test('the page loads no script or stylesheet from outside the gateway', async () => {
    const res = await get('/docs');
    expect(res.status).toBe(200);
    const html = await res.text();
    const scripts = [...html.matchAll(/<script\b[^>]*\bsrc\s*=\s*["']?([^"'\s>]+)/gi)].map((m) => m[1]!);
    const stylesheets = [...html.matchAll(/<link\b[^>]*\bhref\s*=\s*["']?([^"'\s>]+)/gi)].map((m) => m[1]!);
    expect(scripts).toEqual([expect.stringMatching(new RegExp(`^${SCALAR_SCRIPT_PATH}\\?v=\\d+\\.\\d+\\.\\d+$`))]);
    for (const url of [...scripts, ...stylesheets]) {
      expect(url).not.toMatch(/^(https?:)?\/\//i);
    }
    expect(html).not.toMatch(/(src|href)\s*=\s*["']?(https?:)?\/\//i);
    expect(html).not.toMatch(/@import/i);

    // Scalar's configuration: the document from the gateway, the features that reach Scalar's services off.
    const config = JSON.parse(html.match(/data-configuration='([^']*)'/)![1]!);
    expect(config).toMatchObject({
      url: 'openapi.json',
      withDefaultFonts: false,
      telemetry: false,
      agent: { disabled: true },
      mcp: { disabled: true },
      showDeveloperTools: 'never',
      hideClientButton: true,
    });
    expect(config.proxyUrl).toBeUndefined();
    expect(JSON.stringify(config)).not.toMatch(/https?:\/\//);
  });

  test('the gateway serves the Scalar script, cacheable, gzipped when accepted', async () => {
    const plain = await get(`${SCALAR_SCRIPT_PATH}?v=1`);
    expect(plain.status).toBe(200);
    expect(plain.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(plain.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(plain.headers.get('content-encoding')).toBeNull();
    const source = await plain.text();
    expect(source.length).toBeGreaterThan(1_000_000);
    expect(source).toContain('createApiReference');
    expect(source).not.toContain('sourceMappingURL=');

    const gzipped = await get(SCALAR_SCRIPT_PATH, { 'accept-encoding': 'gzip, deflate, br' });
    expect(gzipped.status).toBe(200);
    expect(gzipped.headers.get('content-encoding')).toBe('gzip');
    expect(gzipped.headers.get('vary')).toBe('accept-encoding');
    const body = new Uint8Array(await gzipped.arrayBuffer());
    expect(body.length).toBeLessThan(source.length / 2);
    expect(gunzipSync(body).toString('utf8')).toBe(source);
  });

  test('the script route is not in the OpenAPI document', async () => {
    const spec = (await (await get(SPEC_PATH)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(spec.paths)).toEqual(['/ping']);
  });
});
