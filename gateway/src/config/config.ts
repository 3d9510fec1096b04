import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { resolve } from 'node:path';

/**
 * Every setting the gateway reads from its environment, with its default.
 * This schema is the one place defaults live; README "Configuration" mirrors it.
 */
const EnvSchema = Type.Object({
  PORT: Type.Integer({ minimum: 1, maximum: 65535, default: 3000, description: 'HTTP port' }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1', description: 'HTTP bind address' }),
  DATABASE_URL: Type.Optional(
    Type.String({
      pattern: '^postgres(ql)?://',
      description: 'PostgreSQL URL; when unset an embedded Postgres runs in DATA_DIR/postgres',
    }),
  ),
  DATA_DIR: Type.String({ minLength: 1, default: './data', description: 'where local state lives' }),
  ADMIN_API_SECRET: Type.Optional(
    Type.String({ minLength: 1, description: 'X-Admin-API-Secret; generated into DATA_DIR when unset' }),
  ),
  LOG_LEVEL: Type.Union(
    [
      Type.Literal('fatal'),
      Type.Literal('error'),
      Type.Literal('warn'),
      Type.Literal('info'),
      Type.Literal('debug'),
      Type.Literal('trace'),
      Type.Literal('silent'),
    ],
    { default: 'info' },
  ),
  EMBEDDED_POSTGRES_PORT: Type.Integer({
    minimum: 0,
    maximum: 65535,
    default: 0,
    description: 'port of the embedded Postgres on 127.0.0.1; 0 picks a free one at each start',
  }),
});

type Env = Static<typeof EnvSchema>;

export interface Config {
  port: number;
  host: string;
  databaseUrl: string | undefined;
  dataDir: string;
  /** Undefined until resolved by ensureAdminSecret (generated or read from DATA_DIR). */
  adminApiSecret: string | undefined;
  logLevel: Env['LOG_LEVEL'];
  embeddedPostgresPort: number;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`invalid configuration: ${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

const NUMERIC = new Set(['PORT', 'EMBEDDED_POSTGRES_PORT']);

/** Parses the environment once; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = env[key];
    if (value === undefined || value === '') continue;
    raw[key] = NUMERIC.has(key) && /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : value;
  }
  const withDefaults = Value.Default(EnvSchema, raw) as Record<string, unknown>;
  const first = Value.Errors(EnvSchema, withDefaults).First();
  if (first) {
    const variable = first.path.replace(/^\//, '').split('/')[0] || 'environment';
    const got = raw[variable];
    throw new ConfigError(variable, `${first.message} (got ${JSON.stringify(variable.includes('SECRET') ? '<redacted>' : got)})`);
  }
  const e = withDefaults as Env;
  return {
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    dataDir: resolve(e.DATA_DIR),
    adminApiSecret: e.ADMIN_API_SECRET,
    logLevel: e.LOG_LEVEL,
    embeddedPostgresPort: e.EMBEDDED_POSTGRES_PORT,
  };
}

/** The config as it may be logged: secrets and passwords removed. */
export function redactConfig(config: Config): Record<string, unknown> {
  return {
    ...config,
    adminApiSecret: config.adminApiSecret ? '<redacted>' : undefined,
    databaseUrl: config.databaseUrl ? redactUrl(config.databaseUrl) : undefined,
  };
}

export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '<redacted>';
    return u.toString();
  } catch {
    return '<unparseable url>';
  }
}
