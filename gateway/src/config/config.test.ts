import { describe, expect, test } from 'bun:test';
import { resolve } from 'node:path';
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
      embeddedPostgresPort: 0,
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
    });
    expect(c).toEqual({
      port: 3111,
      host: '0.0.0.0',
      databaseUrl: 'postgresql://u:p@db:5432/wgs',
      dataDir: '/tmp/x',
      adminApiSecret: 's',
      logLevel: 'debug',
      embeddedPostgresPort: 5999,
    });
  });
  test('empty values count as unset', () => {
    expect(loadConfig({ PORT: '', DATABASE_URL: '' })).toMatchObject({ port: 3000, databaseUrl: undefined });
  });
  test('a bad value names the variable', () => {
    const cases: [Record<string, string>, string][] = [
      [{ PORT: 'abc' }, 'PORT'],
      [{ PORT: '70000' }, 'PORT'],
      [{ PORT: '3.5' }, 'PORT'],
      [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
      [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
      [{ EMBEDDED_POSTGRES_PORT: '-1' }, 'EMBEDDED_POSTGRES_PORT'],
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
    const c = loadConfig({ ADMIN_API_SECRET: 'topsecret', DATABASE_URL: 'postgres://wgs:hunter2@db/wgs' });
    const text = JSON.stringify(redactConfig(c));
    expect(text).not.toContain('topsecret');
    expect(text).not.toContain('hunter2');
    expect(text).toContain('db/wgs');
  });
});
