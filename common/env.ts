/**
 * Environment parsing shared by the gateway and the workers: one TypeBox
 * schema per program, parsed once, failing with the variable's name.
 */
import { Type, type Static, type TObject } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`invalid configuration: ${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LogLevelSchema = Type.Union(
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
);

/**
 * Reads the schema's variables from `env`, applies defaults and checks them.
 * Empty values count as unset; plain decimals become numbers for the
 * `numeric` variables (an integer schema then refuses "3.5"; "1e3" stays text). Values of
 * `secret` variables never appear in the error.
 */
export function parseEnv<S extends TObject>(
  schema: S,
  env: Record<string, string | undefined>,
  opts: { numeric?: readonly string[]; secret?: readonly string[] } = {},
): Static<S> {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(schema.properties)) {
    const value = env[key];
    if (value === undefined || value === '') continue;
    raw[key] = opts.numeric?.includes(key) && /^-?\d+(\.\d+)?$/.test(value.trim()) ? Number(value.trim()) : value;
  }
  const withDefaults = Value.Default(schema, raw);
  const first = Value.Errors(schema, withDefaults).First();
  if (first) {
    const variable = first.path.replace(/^\//, '').split('/')[0] || 'environment';
    const got = variable in raw ? ` (got ${JSON.stringify(opts.secret?.includes(variable) ? '<redacted>' : raw[variable])})` : '';
    throw new ConfigError(variable, `${first.message}${got}`);
  }
  return withDefaults as Static<S>;
}
