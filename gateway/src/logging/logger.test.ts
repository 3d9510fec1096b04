import { afterAll, describe, expect, test } from 'bun:test';
import { createTestApp, type TestApp } from '../../../tests/support/app';
import { until } from '../../../tests/support/poll';
import { createLogger } from './logger';

/** A pino destination that keeps every line. */
function capture() {
  const lines: string[] = [];
  return { lines, stream: { write: (line: string) => void lines.push(line) }, records: () => lines.map((l) => JSON.parse(l) as Record<string, any>) };
}

describe('createLogger', () => {
  test('json by default: one object per line, secrets redacted', () => {
    const out = capture();
    const log = createLogger('info', out.stream);
    log.info({ instanceId: 7, tenantId: 3, headers: { authorization: 'Bearer wgs_secret' }, secret: 'whsec_x' }, 'hello');
    expect(out.lines).toHaveLength(1);
    const [record] = out.records();
    expect(record).toMatchObject({ level: 30, msg: 'hello', instanceId: 7, tenantId: 3, service: 'wgs-gateway', secret: '<redacted>' });
    expect(out.lines[0]).not.toContain('wgs_secret');
    expect(out.lines[0]).not.toContain('whsec_x');
  });

  test('LOG_FORMAT=pretty: human-readable lines, written synchronously, secrets still redacted', () => {
    const out = capture();
    const log = createLogger('info', out.stream, 'pretty');
    log.info({ instanceId: 7, tenantId: 3, password: 'hunter2', apiKey: 'wgs_abc' }, 'worker connected');
    // Synchronous: the line is there as soon as the call returns (no worker thread, no flush).
    expect(out.lines).toHaveLength(1);
    const line = out.lines[0]!;
    expect(() => JSON.parse(line)).toThrow();
    expect(line).toContain('INFO');
    expect(line).toContain('worker connected');
    expect(line).toContain('instanceId: 7');
    expect(line).toContain('tenantId: 3');
    expect(line).not.toContain('hunter2');
    expect(line).not.toContain('wgs_abc');
    expect(line).not.toContain('\u001b['); // no colours when writing anywhere but a terminal
  });
});

describe('log lines about an instance', () => {
  let t: TestApp;
  afterAll(async () => {
    await t?.close();
  });

  test('carry instanceId and tenantId through create, forwarded worker logs and delete', async () => {
    const out = capture();
    t = await createTestApp({ listen: true, logger: createLogger('info', out.stream), workerEnv: { LOG_LEVEL: 'info' } });
    const user = await t.createUser();
    const res = await t.call('POST', '/api/instances', { key: user.apiKey, body: { provider: 'sandbox', phone: '4917100000901' } });
    expect(res.status).toBe(200);
    const id: number = res.body.id;
    const about = () => out.records().filter((r) => r.instanceId === id);
    const seen = (msg: string) => about().some((r) => r.msg === msg);

    await until('the worker connected and its own log lines forwarded', () => seen('worker started') && seen('worker connected') && seen('worker log'));
    expect((await t.call('DELETE', `/api/instances/${id}`, { key: user.apiKey })).status).toBeLessThan(300);
    await until('the worker exited', () => seen('worker exited'));

    const lines = about();
    expect(lines.length).toBeGreaterThanOrEqual(4);
    const missing = lines.filter((r) => r.tenantId !== user.id);
    expect(missing.map((r) => r.msg)).toEqual([]);
    // The forwarded line is the worker's own record, nested, under the gateway's fields.
    const forwarded = lines.find((r) => r.msg === 'worker log')!;
    expect(forwarded.worker).toBeObject();
    expect(forwarded.component).toBe('worker');
  });
});
