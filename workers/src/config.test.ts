import { describe, expect, test } from 'bun:test';
import { ConfigError, loadConfig } from './config';

const REQUIRED = {
  WGS_GATEWAY_URL: 'ws://127.0.0.1:3000',
  WGS_INSTANCE_ID: '7',
  WGS_WORKER_TOKEN: 'tok-secret-123',
  WGS_PROVIDER: 'sandbox',
  WGS_STATE_DSN: 'postgres://wgs_i_7:state-pw-secret@127.0.0.1:5432/wgs',
  WGS_STATE_SCHEMA: 'wgs_i_7',
};

function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  test('defaults', () => {
    expect(loadConfig(REQUIRED)).toEqual({
      gatewayUrl: 'ws://127.0.0.1:3000',
      workerUrl: 'ws://127.0.0.1:3000/internal/workers/ws',
      instanceId: 7,
      token: 'tok-secret-123',
      exitWithParent: false,
      provider: 'sandbox',
      logLevel: 'info',
      state: { dsn: 'postgres://wgs_i_7:state-pw-secret@127.0.0.1:5432/wgs', schema: 'wgs_i_7' },
      sandbox: { qrIntervalMs: 20_000, receiptDelaysMs: [100, 500, 1000] },
      baileys: { wsUrl: 'wss://web.whatsapp.com/ws/chat', historySync: 'initial', sentRetentionDays: 7, mediaAllowPrivate: false },
    });
  });

  test('baileys: WhatsApp URL, history, retention and private media; a malformed BAILEYS_WS_URL is named', () => {
    const c = loadConfig({
      ...REQUIRED,
      WGS_PROVIDER: 'baileys',
      BAILEYS_WS_URL: 'ws://127.0.0.1:3100/ws/chat',
      BAILEYS_HISTORY_SYNC: 'none',
      BAILEYS_SENT_RETENTION_DAYS: '2',
      WGS_MEDIA_ALLOW_PRIVATE: '1',
    });
    expect(c.provider).toBe('baileys');
    expect(c.baileys).toEqual({ wsUrl: 'ws://127.0.0.1:3100/ws/chat', historySync: 'none', sentRetentionDays: 2, mediaAllowPrivate: true });
    for (const bad of ['not a url', 'http://127.0.0.1:3100/ws/chat', 'wss://user:pw@example.com/ws']) {
      const err = configError({ ...REQUIRED, WGS_PROVIDER: 'baileys', BAILEYS_WS_URL: bad });
      expect(err.variable).toBe('BAILEYS_WS_URL');
    }
    expect(configError({ ...REQUIRED, BAILEYS_HISTORY_SYNC: 'full' }).variable).toBe('BAILEYS_HISTORY_SYNC');
    expect(configError({ ...REQUIRED, WGS_MEDIA_ALLOW_PRIVATE: 'yes' }).variable).toBe('WGS_MEDIA_ALLOW_PRIVATE');
  });

  test('waba: required ids and token only with WGS_PROVIDER=waba; defaults; bad values named', () => {
    const WABA = { ...REQUIRED, WGS_PROVIDER: 'waba', WABA_PHONE_NUMBER_ID: '106540352242922', WABA_ID: '102290129340398', WABA_ACCESS_TOKEN: 'EAAG-secret-token' };
    expect(loadConfig(REQUIRED).waba).toBeUndefined();
    expect(loadConfig(WABA).waba).toEqual({
      graphBaseUrl: 'https://graph.facebook.com',
      graphVersion: 'v26.0',
      phoneNumberId: '106540352242922',
      wabaId: '102290129340398',
      accessToken: 'EAAG-secret-token',
      timeoutMs: 15_000,
      maxRetries: 3,
      checkIntervalMs: 300_000,
      mediaAllowPrivate: false,
    });
    const c = loadConfig({
      ...WABA,
      WABA_GRAPH_BASE_URL: 'http://127.0.0.1:4100/',
      WABA_GRAPH_VERSION: 'v25.0',
      WABA_TIMEOUT_MS: '2000',
      WABA_MAX_RETRIES: '0',
      WABA_CHECK_INTERVAL_MS: '5000',
      WGS_MEDIA_ALLOW_PRIVATE: '1',
    });
    expect(c.waba).toMatchObject({ graphBaseUrl: 'http://127.0.0.1:4100', graphVersion: 'v25.0', timeoutMs: 2000, maxRetries: 0, checkIntervalMs: 5000, mediaAllowPrivate: true });
    for (const key of ['WABA_PHONE_NUMBER_ID', 'WABA_ID', 'WABA_ACCESS_TOKEN']) {
      const err = configError({ ...WABA, [key]: undefined });
      expect(err.message).toBe(`invalid configuration: ${key}: required when WGS_PROVIDER is waba`);
    }
    const cases: [Record<string, string>, string][] = [
      [{ WABA_GRAPH_BASE_URL: 'http://graph.facebook.com' }, 'WABA_GRAPH_BASE_URL'],
      [{ WABA_GRAPH_BASE_URL: 'https://u:p@graph.facebook.com' }, 'WABA_GRAPH_BASE_URL'],
      [{ WABA_GRAPH_BASE_URL: 'https://graph.facebook.com/?x=1' }, 'WABA_GRAPH_BASE_URL'],
      [{ WABA_GRAPH_BASE_URL: 'ftp://graph.facebook.com' }, 'WABA_GRAPH_BASE_URL'],
      [{ WABA_GRAPH_VERSION: '26.0' }, 'WABA_GRAPH_VERSION'],
      [{ WABA_GRAPH_VERSION: 'v26' }, 'WABA_GRAPH_VERSION'],
      [{ WABA_PHONE_NUMBER_ID: '+1555' }, 'WABA_PHONE_NUMBER_ID'],
      [{ WABA_ID: 'abc' }, 'WABA_ID'],
      [{ WABA_TIMEOUT_MS: '10' }, 'WABA_TIMEOUT_MS'],
      [{ WABA_MAX_RETRIES: '11' }, 'WABA_MAX_RETRIES'],
    ];
    for (const [bad, variable] of cases) expect({ bad, variable: configError({ ...WABA, ...bad }).variable }).toEqual({ bad, variable });
  });

  test('reads every variable', () => {
    const c = loadConfig({
      ...REQUIRED,
      WGS_GATEWAY_URL: 'wss://gw.example.com/base/',
      LOG_LEVEL: 'debug',
      WGS_EXIT_WITH_PARENT: '1',
      SANDBOX_QR_INTERVAL_MS: '50',
      SANDBOX_RECEIPT_DELAYS_MS: '0, 0 ,59999',
    });
    expect(c.gatewayUrl).toBe('wss://gw.example.com/base');
    expect(c.exitWithParent).toBe(true);
    expect(configError({ ...REQUIRED, WGS_EXIT_WITH_PARENT: 'yes' }).variable).toBe('WGS_EXIT_WITH_PARENT');
    expect(c.workerUrl).toBe('wss://gw.example.com/base/internal/workers/ws');
    expect(c.logLevel).toBe('debug');
    expect(c.sandbox).toEqual({ qrIntervalMs: 50, receiptDelaysMs: [0, 0, 59_999] });
  });

  test('empty values count as unset', () => {
    expect(loadConfig({ ...REQUIRED, LOG_LEVEL: '', SANDBOX_QR_INTERVAL_MS: '' })).toMatchObject({
      logLevel: 'info',
      sandbox: { qrIntervalMs: 20_000 },
    });
    expect(configError({ ...REQUIRED, WGS_WORKER_TOKEN: '' }).variable).toBe('WGS_WORKER_TOKEN');
  });

  test('every missing required variable is named', () => {
    for (const key of Object.keys(REQUIRED)) {
      const err = configError({ ...REQUIRED, [key]: undefined });
      expect(err.variable).toBe(key);
      expect(err.message).toStartWith(`invalid configuration: ${key}:`);
    }
  });

  test('every bad value names its variable', () => {
    const cases: [Record<string, string>, string][] = [
      [{ WGS_GATEWAY_URL: 'http://127.0.0.1:3000' }, 'WGS_GATEWAY_URL'],
      [{ WGS_GATEWAY_URL: 'ws://' }, 'WGS_GATEWAY_URL'],
      [{ WGS_GATEWAY_URL: 'ws://127.0.0.1:3000/?a=1' }, 'WGS_GATEWAY_URL'],
      [{ WGS_GATEWAY_URL: 'ws://user:pw@127.0.0.1:3000' }, 'WGS_GATEWAY_URL'],
      [{ WGS_INSTANCE_ID: '0' }, 'WGS_INSTANCE_ID'],
      [{ WGS_INSTANCE_ID: '-3' }, 'WGS_INSTANCE_ID'],
      [{ WGS_INSTANCE_ID: '1.5' }, 'WGS_INSTANCE_ID'],
      [{ WGS_INSTANCE_ID: 'abc' }, 'WGS_INSTANCE_ID'],
      [{ WGS_PROVIDER: 'wawebjs' }, 'WGS_PROVIDER'],
      [{ BAILEYS_WS_URL: 'ftp://x' }, 'BAILEYS_WS_URL'],
      [{ BAILEYS_SENT_RETENTION_DAYS: '0' }, 'BAILEYS_SENT_RETENTION_DAYS'],
      [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
      [{ SANDBOX_QR_INTERVAL_MS: '49' }, 'SANDBOX_QR_INTERVAL_MS'],
      [{ SANDBOX_QR_INTERVAL_MS: '1e3' }, 'SANDBOX_QR_INTERVAL_MS'],
      [{ SANDBOX_RECEIPT_DELAYS_MS: '100,500' }, 'SANDBOX_RECEIPT_DELAYS_MS'],
      [{ SANDBOX_RECEIPT_DELAYS_MS: '100,50,1000' }, 'SANDBOX_RECEIPT_DELAYS_MS'],
      [{ SANDBOX_RECEIPT_DELAYS_MS: '100,500,60000' }, 'SANDBOX_RECEIPT_DELAYS_MS'],
      [{ SANDBOX_RECEIPT_DELAYS_MS: '-1,5,10' }, 'SANDBOX_RECEIPT_DELAYS_MS'],
      [{ SANDBOX_RECEIPT_DELAYS_MS: 'a,b,c' }, 'SANDBOX_RECEIPT_DELAYS_MS'],
      [{ WGS_STATE_DSN: 'mysql://u:p@127.0.0.1/wgs' }, 'WGS_STATE_DSN'],
      [{ WGS_STATE_DSN: 'not a url' }, 'WGS_STATE_DSN'],
      [{ WGS_STATE_DSN: 'postgres://127.0.0.1/wgs' }, 'WGS_STATE_DSN'],
      [{ WGS_STATE_DSN: 'postgres://u:p@127.0.0.1' }, 'WGS_STATE_DSN'],
      [{ WGS_STATE_SCHEMA: 'Wgs_I_7' }, 'WGS_STATE_SCHEMA'],
      [{ WGS_STATE_SCHEMA: 'wgs_i_7,public' }, 'WGS_STATE_SCHEMA'],
      [{ WGS_STATE_SCHEMA: '7wgs' }, 'WGS_STATE_SCHEMA'],
    ];
    for (const [bad, variable] of cases) {
      const err = configError({ ...REQUIRED, ...bad });
      expect({ bad, variable: err.variable }).toEqual({ bad, variable });
      expect(err.message).toStartWith(`invalid configuration: ${variable}:`);
    }
  });

  test('an unimplemented provider is rejected with the implemented list', () => {
    const err = configError({ ...REQUIRED, WGS_PROVIDER: 'whatsmeow' });
    expect(err.message).toContain('WGS_PROVIDER');
    expect(err.message).toContain('"whatsmeow"');
    expect(err.message).toContain('implemented: sandbox');
  });

  test('the state variables are required with the sandbox, naming the provider', () => {
    for (const key of ['WGS_STATE_DSN', 'WGS_STATE_SCHEMA']) {
      const err = configError({ ...REQUIRED, [key]: undefined });
      expect(err.variable).toBe(key);
      expect(err.message).toBe(`invalid configuration: ${key}: required when WGS_PROVIDER is sandbox`);
    }
  });

  test('the state DSN is secret: never in an error, whatever is wrong with it', () => {
    for (const dsn of ['mysql://u:pw-zz9@127.0.0.1/wgs', 'postgres://u:pw-zz9@127.0.0.1', 'pw-zz9', 'postgres://:pw-zz9@127.0.0.1/wgs']) {
      const err = configError({ ...REQUIRED, WGS_STATE_DSN: dsn });
      expect(err.variable).toBe('WGS_STATE_DSN');
      expect(err.message).not.toContain('pw-zz9');
    }
  });

  test('an error shows the bad value', () => {
    const err = configError({ ...REQUIRED, WGS_INSTANCE_ID: 'x' });
    expect(err.message).toContain('"x"');
    expect(err.message).not.toContain(REQUIRED.WGS_WORKER_TOKEN);
    expect(err.message).not.toContain('state-pw-secret');
  });
});
