import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { GatewayMetrics } from '../metrics/metrics';
import { Validator } from '@seriousme/openapi-schema-validator';
import { createApp } from './app';
import { connect } from '../db/client';
import { createLogger } from '../logging/logger';
import { createRuntime } from '../instances/setup';
import { SecretBox } from '../lib/secret-box';
import { randomBytes } from 'node:crypto';
import { createTestApp, type TestApp } from '../../../tests/support/app';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

describe('errors', () => {
  test('unknown routes are JSON 404s', async () => {
    for (const [method, path] of [['GET', '/nope'], ['POST', '/healthz/x'], ['DELETE', '/']] as const) {
      const res = await t.call(method, path);
      expect(res.status).toBe(404);
      expect(res.body).toEqual({ error: `no route for ${method} ${path}`, code: 'route_not_found' });
    }
  });
  test('every response carries a request id; a sane given one is echoed', async () => {
    const generated = await t.call('GET', '/healthz');
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const given = await t.call('GET', '/nope', { headers: { 'x-request-id': 'trace-123' } });
    expect(given.headers.get('x-request-id')).toBe('trace-123');
    const hostile = await t.call('GET', '/healthz', { headers: { 'x-request-id': 'a b\tc' } });
    expect(hostile.headers.get('x-request-id')).not.toBe('a b\tc');
  });
  test('wrong content and huge ids never produce a 500', async () => {
    const inputs: [string, string, { raw?: string; body?: unknown }][] = [
      ['POST', '/admin/users', { raw: '[]' }],
      ['POST', '/admin/users', { raw: 'null' }],
      ['POST', '/admin/users', { body: { email: { $gt: '' } } }],
      ['POST', '/admin/nodes', { body: { name: 'x', engine: 'docker', endpoint: 'tcp://h:1', capacity: { cpu: 1e308 } } }],
      ['PUT', '/admin/nodes/1', { body: { capacity: { memory: '99999999999999999t' } } }],
      ['GET', '/admin/nodes/1e3', {}],
      ['DELETE', '/admin/users/-1', {}],
      ['POST', '/admin/users', { body: { email: 'a\u0000b@x.io' } }],
      ['POST', '/admin/nodes', { body: { name: 'nul', engine: 'docker', endpoint: 'tcp://h:1', labels: { a: 'x\u0000' } } }],
    ];
    for (const [method, path, opts] of inputs) {
      const res = await t.call(method, path, opts);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(typeof res.body.error).toBe('string');
      expect(typeof res.body.code).toBe('string');
    }
    const nul = await t.call('POST', '/admin/users', { body: { email: 'nul\u0000@x.io' } });
    expect(nul.body).toEqual({ error: 'a value in the request cannot be stored: a text with a NUL character or an unpaired UTF-16 surrogate, or a number or date out of range', code: 'invalid_value' });
  });
});

describe('health', () => {
  test('healthz and readyz are 200 with a database', async () => {
    expect((await t.call('GET', '/healthz')).body).toEqual({ status: 'ok' });
    expect((await t.call('GET', '/readyz')).body).toEqual({ status: 'ok' });
  });
  test('readyz is 503 when the database is unreachable, healthz stays 200', async () => {
    // A real client pointed at a port where nothing listens.
    const dead = connect('postgres://wgs:x@127.0.0.1:1/wgs', { max: 1 });
    const logger = createLogger('silent');
    const secrets = new SecretBox(randomBytes(32).toString('base64'));
    const { runtime, migrator } = createRuntime(dead, logger, { ownerId: 1, gatewayUrl: 'ws://127.0.0.1:1', databaseUrl: 'postgres://wgs:x@127.0.0.1:1/wgs', secrets });
    const app = createApp({ database: dead, logger, adminSecret: 's', runtime, migrator, secrets, allowPrivateWebhooks: false, overcommit: 1, metrics: new GatewayMetrics({ defaults: false }) });
    const ready = await app.handle(new Request('http://wgs.test/readyz'));
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ error: 'database is not reachable', code: 'database_unavailable' });
    expect((await app.handle(new Request('http://wgs.test/healthz'))).status).toBe(200);
    await dead.close();
  });
});

describe('OpenAPI', () => {
  let spec: any;
  beforeAll(async () => {
    const res = await t.call('GET', '/openapi.json');
    expect(res.status).toBe(200);
    spec = res.body;
  });

  test('is a valid OpenAPI 3 document', async () => {
    const result = await new Validator().validate(spec);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(spec.openapi).toMatch(/^3\./);
    expect(spec.paths['/admin/nodes/{id}'].delete.responses['204'].description).toBe('No Content');
  });

  test('documents every route with its auth scheme', () => {
    const expected: [string, string, string | null][] = [
      ['get', '/healthz', null],
      ['get', '/readyz', null],
      ['post', '/admin/users', 'adminSecret'],
      ['get', '/admin/users', 'adminSecret'],
      ['delete', '/admin/users/{id}', 'adminSecret'],
      ['post', '/admin/users/{id}/keys', 'adminSecret'],
      ['delete', '/admin/users/{id}/keys/{keyId}', 'adminSecret'],
      ['post', '/admin/nodes', 'adminSecret'],
      ['get', '/admin/nodes', 'adminSecret'],
      ['get', '/admin/nodes/{id}', 'adminSecret'],
      ['put', '/admin/nodes/{id}', 'adminSecret'],
      ['delete', '/admin/nodes/{id}', 'adminSecret'],
      ['get', '/admin/billing-events', 'adminSecret'],
      ['post', '/admin/billing-events/{id}/replay', 'adminSecret'],
      ['get', '/api/me', 'apiKey'],
      ['post', '/api/instances', 'apiKey'],
      ['get', '/api/instances', 'apiKey'],
      ['get', '/api/instances/{id}', 'apiKey'],
      ['delete', '/api/instances/{id}', 'apiKey'],
      ['post', '/api/instances/{id}/restart', 'apiKey'],
      ['post', '/api/instances/{id}/logout', 'apiKey'],
      ['get', '/api/instances/{id}/qr', 'apiKey'],
      ['post', '/api/instances/{id}/send', 'apiKey'],
      ['get', '/api/instances/{id}/messages/{messageId}', 'apiKey'],
      ['post', '/api/instances/{id}/sandbox/scan', 'apiKey'],
      ['post', '/api/instances/{id}/sandbox/inbound', 'apiKey'],
      ['post', '/api/instances/{id}/webhooks', 'apiKey'],
      ['get', '/api/instances/{id}/webhooks', 'apiKey'],
      ['get', '/api/instances/{id}/webhooks/{wid}', 'apiKey'],
      ['patch', '/api/instances/{id}/webhooks/{wid}', 'apiKey'],
      ['delete', '/api/instances/{id}/webhooks/{wid}', 'apiKey'],
      ['post', '/api/instances/{id}/webhooks/{wid}/rotate-secret', 'apiKey'],
      ['get', '/api/instances/{id}/webhooks/{wid}/deliveries', 'apiKey'],
      ['post', '/api/instances/{id}/webhooks/{wid}/deliveries/{deliveryId}/replay', 'apiKey'],
    ];
    // The worker socket is internal: not part of the public API document.
    expect(Object.keys(spec.paths).some((p) => p.startsWith('/internal'))).toBe(false);
    for (const [method, path, scheme] of expected) {
      const op = spec.paths[path]?.[method];
      expect(op, `${method.toUpperCase()} ${path}`).toBeDefined();
      if (scheme) expect(op.security).toEqual([{ [scheme]: [] }]);
      else expect(op.security).toBeUndefined();
    }
    expect(spec.components.securitySchemes.adminSecret).toEqual({ type: 'apiKey', in: 'header', name: 'X-Admin-API-Secret' });
    expect(spec.components.securitySchemes.apiKey).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  test('rendered docs are served at /docs', async () => {
    const res = await t.app.handle(new Request('http://wgs.test/docs'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/html');
    expect(await res.text()).toContain('openapi.json');
  });
});
