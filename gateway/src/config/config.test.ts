import { describe, expect, test } from 'bun:test';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError, loadConfig, redactConfig } from './config';

describe('loadConfig', () => {
  test('defaults', () => {
    expect(loadConfig({})).toEqual({
      port: 3000,
      host: '127.0.0.1',
      databaseUrl: undefined,
      dataDir: resolve('./data'),
      adminApiSecret: undefined,
      logLevel: 'info',
      logFormat: 'json',
      embeddedPostgresPort: 0,
      workerGatewayUrl: 'ws://127.0.0.1:3000',
      replicaId: expect.stringMatching(/^[A-Za-z0-9_.-]+-[0-9a-f]{6}$/),
      sandbox: { qrIntervalMs: 20_000, receiptDelaysMs: '100,500,1000' },
      waba: {},
      metrics: { perInstance: false },
      pacingDefaults: 'safe',
      webhooks: { secretKey: undefined, retryScheduleS: [0, 5, 300, 1800, 7200, 18000, 36000, 36000], allowPrivateNetworks: false, timeoutMs: 15_000 },
      docker: { images: { typescript: 'wgs-worker-ts:local', whatsmeow: 'wgs-worker-whatsmeow:local', node: 'wgs-worker-node:local' }, gatewayId: 'wgs' },
      overcommit: 1,
      retention: { eventsDays: 30, deliveriesDays: 14, mediaDays: 30 },
      billing: {},
    });
  });
  test('reads every variable', () => {
    const c = loadConfig({
      PORT: '3111',
      HOST: '0.0.0.0',
      DATABASE_URL: 'postgresql://u:p@db:5432/wgs',
      DATA_DIR: '/tmp/x',
      ADMIN_API_SECRET: 's',
      LOG_LEVEL: 'debug',
      EMBEDDED_POSTGRES_PORT: '5999',
      WORKER_GATEWAY_URL: 'ws://gw-a.internal:3111,wss://gw-b.internal/wgs',
      GATEWAY_REPLICA_ID: 'gw-a',
      SANDBOX_QR_INTERVAL_MS: '500',
      SANDBOX_RECEIPT_DELAYS_MS: '0,10,20',
      WEBHOOK_RETRY_SCHEDULE: '0,1,1,2',
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
      WEBHOOK_TIMEOUT_MS: '2000',
      WHATSMEOW_WS_URL: 'ws://127.0.0.1:3100/ws/chat',
      WHATSMEOW_ROOT_PUBLIC_KEY: 'AB'.repeat(32),
      WABA_GRAPH_BASE_URL: 'http://127.0.0.1:3200/',
      WABA_GRAPH_VERSION: 'v23.0',
      METRICS_TOKEN: 'a-metrics-token-of-32-characters',
      METRICS_PER_INSTANCE: 'true',
      LOG_FORMAT: 'pretty',
      RETENTION_EVENTS_DAYS: '90',
      RETENTION_DELIVERIES_DAYS: '0',
      RETENTION_MEDIA_DAYS: '7',
      BILLING_WEBHOOK_URL: 'https://billing.example.com/wgs',
      BILLING_WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    });
    expect(c).toEqual({
      port: 3111,
      host: '0.0.0.0',
      databaseUrl: 'postgresql://u:p@db:5432/wgs',
      dataDir: '/tmp/x',
      adminApiSecret: 's',
      logLevel: 'debug',
      logFormat: 'pretty',
      embeddedPostgresPort: 5999,
      workerGatewayUrl: 'ws://gw-a.internal:3111,wss://gw-b.internal/wgs',
      replicaId: 'gw-a',
      sandbox: { qrIntervalMs: 500, receiptDelaysMs: '0,10,20' },
      whatsmeowWsUrl: 'ws://127.0.0.1:3100/ws/chat',
      whatsmeowRootPublicKey: 'ab'.repeat(32),
      waba: { graphBaseUrl: 'http://127.0.0.1:3200', graphVersion: 'v23.0' },
      metrics: { token: 'a-metrics-token-of-32-characters', perInstance: true },
      pacingDefaults: 'safe',
      webhooks: { secretKey: undefined, retryScheduleS: [0, 1, 1, 2], allowPrivateNetworks: true, timeoutMs: 2000 },
      docker: { images: { typescript: 'wgs-worker-ts:local', whatsmeow: 'wgs-worker-whatsmeow:local', node: 'wgs-worker-node:local' }, gatewayId: 'wgs' },
      overcommit: 1,
      retention: { eventsDays: 90, deliveriesDays: 0, mediaDays: 7 },
      billing: { url: 'https://billing.example.com/wgs', secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' },
    });
    expect(loadConfig({ SCHEDULER_OVERCOMMIT: '1.5' }).overcommit).toBe(1.5);
    expect(loadConfig({ HOST: '0.0.0.0', PORT: '4000' }).workerGatewayUrl).toBe('ws://127.0.0.1:4000');
    expect(loadConfig({ HOST: '10.1.2.3' }).workerGatewayUrl).toBe('ws://10.1.2.3:3000');
  });
  test('empty values count as unset', () => {
    expect(loadConfig({ PORT: '', DATABASE_URL: '' })).toMatchObject({ port: 3000, databaseUrl: undefined });
  });
  test('WORKER_CA_FILE: an absolute path to a file holding a PEM certificate', () => {
    const pem = join(tmpdir(), `wgs-ca-${process.pid}.pem`);
    writeFileSync(pem, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    expect(loadConfig({ WORKER_CA_FILE: pem }).workerCaFile).toBe(pem);
    expect(loadConfig({}).workerCaFile).toBeUndefined();
  });
  test('a bad value names the variable', () => {
    const notPem = join(tmpdir(), `wgs-not-a-ca-${process.pid}.txt`);
    writeFileSync(notPem, 'hello');
    const cases: [Record<string, string>, string][] = [
      [{ PORT: 'abc' }, 'PORT'],
      [{ PORT: '70000' }, 'PORT'],
      [{ PORT: '3.5' }, 'PORT'],
      [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
      [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
      [{ EMBEDDED_POSTGRES_PORT: '-1' }, 'EMBEDDED_POSTGRES_PORT'],
      [{ WORKER_GATEWAY_URL: 'http://x' }, 'WORKER_GATEWAY_URL'],
      [{ WORKER_GATEWAY_URL: 'ws://a,http://b' }, 'WORKER_GATEWAY_URL'],
      [{ WORKER_GATEWAY_URL: 'ws://a,' }, 'WORKER_GATEWAY_URL'],
      // Lists every worker would refuse (a query, credentials, a fragment): refused at the gateway's start instead.
      [{ WORKER_GATEWAY_URL: 'ws://a/?x=1,ws://b' }, 'WORKER_GATEWAY_URL'],
      [{ WORKER_GATEWAY_URL: 'ws://u:pw@a,ws://b' }, 'WORKER_GATEWAY_URL'],
      [{ WORKER_GATEWAY_URL: 'ws://a#f' }, 'WORKER_GATEWAY_URL'],
      [{ GATEWAY_REPLICA_ID: 'has space' }, 'GATEWAY_REPLICA_ID'],
      [{ SANDBOX_QR_INTERVAL_MS: '10' }, 'SANDBOX_QR_INTERVAL_MS'],
      [{ SANDBOX_RECEIPT_DELAYS_MS: '1,2' }, 'SANDBOX_RECEIPT_DELAYS_MS'],
      [{ SANDBOX_RECEIPT_DELAYS_MS: '500,100,900' }, 'SANDBOX_RECEIPT_DELAYS_MS'],
      [{ WEBHOOK_RETRY_SCHEDULE: '0,5,x' }, 'WEBHOOK_RETRY_SCHEDULE'],
      [{ WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'yes' }, 'WEBHOOK_ALLOW_PRIVATE_NETWORKS'],
      [{ WEBHOOK_SECRET_KEY: 'short' }, 'WEBHOOK_SECRET_KEY'],
      [{ SCHEDULER_OVERCOMMIT: '0' }, 'SCHEDULER_OVERCOMMIT'],
      [{ GATEWAY_ID: 'has space' }, 'GATEWAY_ID'],
      [{ WHATSMEOW_WS_URL: 'http://x' }, 'WHATSMEOW_WS_URL'],
      [{ WORKER_CA_FILE: '/nonexistent/ca.pem' }, 'WORKER_CA_FILE'],
      [{ WORKER_CA_FILE: notPem }, 'WORKER_CA_FILE'],
      [{ WHATSMEOW_ROOT_PUBLIC_KEY: 'ab'.repeat(31) }, 'WHATSMEOW_ROOT_PUBLIC_KEY'],
      [{ WHATSMEOW_ROOT_PUBLIC_KEY: 'zz'.repeat(32) }, 'WHATSMEOW_ROOT_PUBLIC_KEY'],
      [{ WABA_GRAPH_BASE_URL: 'https://graph.facebook.com/v23.0' }, 'WABA_GRAPH_BASE_URL'],
      [{ WABA_GRAPH_BASE_URL: 'https://user:pw@graph.facebook.com' }, 'WABA_GRAPH_BASE_URL'],
      [{ WABA_GRAPH_VERSION: '23.0' }, 'WABA_GRAPH_VERSION'],
      [{ METRICS_TOKEN: 'short' }, 'METRICS_TOKEN'],
      [{ METRICS_PER_INSTANCE: 'yes' }, 'METRICS_PER_INSTANCE'],
      [{ LOG_FORMAT: 'text' }, 'LOG_FORMAT'],
      [{ RETENTION_EVENTS_DAYS: '-1' }, 'RETENTION_EVENTS_DAYS'],
      [{ RETENTION_EVENTS_DAYS: '1.5' }, 'RETENTION_EVENTS_DAYS'],
      [{ RETENTION_DELIVERIES_DAYS: 'two weeks' }, 'RETENTION_DELIVERIES_DAYS'],
      [{ RETENTION_MEDIA_DAYS: '100000' }, 'RETENTION_MEDIA_DAYS'],
      [{ BILLING_WEBHOOK_URL: 'ftp://billing.example.com' }, 'BILLING_WEBHOOK_URL'],
      [{ BILLING_WEBHOOK_URL: 'https://user:pw@billing.example.com' }, 'BILLING_WEBHOOK_URL'],
      [{ BILLING_WEBHOOK_URL: 'https://exa mple.com' }, 'BILLING_WEBHOOK_URL'],
      [{ BILLING_WEBHOOK_SECRET: 'not-a-whsec-secret' }, 'BILLING_WEBHOOK_SECRET'],
    ];
    for (const [env, variable] of cases) {
      let err: unknown;
      try {
        loadConfig(env);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe(variable);
      expect((err as Error).message).toStartWith(`invalid configuration: ${variable}:`);
    }
  });
  test('redaction hides the admin secret and the database password', () => {
    const c = loadConfig({
      ADMIN_API_SECRET: 'topsecret',
      DATABASE_URL: 'postgres://wgs:hunter2@db/wgs',
      METRICS_TOKEN: 'metrics-token-secret-123',
      BILLING_WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    });
    const text = JSON.stringify(redactConfig(c));
    expect(text).not.toContain('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
    expect(text).not.toContain('metrics-token-secret-123');
    expect(text).not.toContain('topsecret');
    expect(text).not.toContain('hunter2');
    expect(text).toContain('db/wgs');
  });
});
