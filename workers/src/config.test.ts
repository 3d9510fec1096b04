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
      gatewayUrls: ['ws://127.0.0.1:3000'],
      workerUrls: ['ws://127.0.0.1:3000/internal/workers/ws'],
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
    expect(c.gatewayUrls).toEqual(['wss://gw.example.com/base']);
    expect(c.exitWithParent).toBe(true);
    expect(configError({ ...REQUIRED, WGS_EXIT_WITH_PARENT: 'yes' }).variable).toBe('WGS_EXIT_WITH_PARENT');
    expect(c.workerUrls).toEqual(['wss://gw.example.com/base/internal/workers/ws']);
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

describe('WGS_GATEWAY_URL: one gateway or a list of replicas', () => {
  test('one URL: as before, a list of one', () => {
    const c = loadConfig({ ...REQUIRED, WGS_GATEWAY_URL: 'wss://gw.example.com/' });
    expect(c.gatewayUrls).toEqual(['wss://gw.example.com']);
    expect(c.workerUrls).toEqual(['wss://gw.example.com/internal/workers/ws']);
  });

  test('a comma-separated list: each entry normalised, blanks around commas allowed, order kept', () => {
    const c = loadConfig({ ...REQUIRED, WGS_GATEWAY_URL: 'ws://10.0.0.1:3000/, wss://gw-b.example.com/base ,ws://[::1]:3001' });
    expect(c.gatewayUrls).toEqual(['ws://10.0.0.1:3000', 'wss://gw-b.example.com/base', 'ws://[::1]:3001']);
    expect(c.workerUrls).toEqual([
      'ws://10.0.0.1:3000/internal/workers/ws',
      'wss://gw-b.example.com/base/internal/workers/ws',
      'ws://[::1]:3001/internal/workers/ws',
    ]);
  });

  test('duplicates are dropped (the same URL written differently counts once), the first kept', () => {
    const c = loadConfig({ ...REQUIRED, WGS_GATEWAY_URL: 'ws://gw-a:3000,ws://GW-A:3000/,ws://gw-b:3000,wss://gw-c:443,wss://gw-c,ws://gw-b:3000' });
    expect(c.gatewayUrls).toEqual(['ws://gw-a:3000', 'ws://gw-b:3000', 'wss://gw-c']);
  });

  test('a bad entry is named by its position and value; the whole variable is refused', () => {
    const cases: [string, string][] = [
      ['ws://a:3000,http://b:3000', 'entry 2 of 2: must start with ws:// or wss:// (got "http://b:3000")'],
      ['ws://a:3000,,ws://c:3000', 'entry 2 of 3: empty (expected a ws:// or wss:// URL)'],
      ['ws://a:3000,', 'entry 2 of 2: empty (expected a ws:// or wss:// URL)'],
      ['not a url,ws://b:3000', 'entry 1 of 2: not a URL (got "not a url")'],
      ['ws://a:3000,ws://b:3000/?replica=2', 'entry 2 of 2: must be a base URL without query or fragment (got "ws://b:3000/?replica=2")'],
      ['ws://a:3000,ws://user:pw-zz9@b:3000', 'entry 2 of 2: must not contain credentials'],
      [' ', 'empty (expected a ws:// or wss:// URL)'],
    ];
    for (const [value, problem] of cases) {
      const err = configError({ ...REQUIRED, WGS_GATEWAY_URL: value });
      expect({ value, message: err.message }).toEqual({ value, message: `invalid configuration: WGS_GATEWAY_URL: ${problem}` });
    }
  });
});
