import { Type } from '@sinclair/typebox';
import { ConfigError, LogLevelSchema, parseEnv, type LogLevel } from '../../common/env';
import { WORKER_WS_PATH } from '../protocol/frames';
import { IMPLEMENTED_PROVIDERS, type ProviderName } from './providers/names';

/**
 * Every setting the worker reads from its environment, with its default.
 * The gateway (or whoever runs the worker) sets the WGS_* variables; the
 * token only ever travels through the environment, never argv or logs.
 */
const EnvSchema = Type.Object({
  WGS_GATEWAY_URL: Type.String({ pattern: '^wss?://\\S+$', description: 'ws:// or wss:// base URL of the gateway' }),
  WGS_INSTANCE_ID: Type.Integer({ minimum: 1, description: 'the instance this worker serves' }),
  WGS_WORKER_TOKEN: Type.String({ minLength: 1, description: 'per-instance token for the hello frame' }),
  WGS_PROVIDER: Type.String({ minLength: 1, description: 'WhatsApp engine' }),
  LOG_LEVEL: LogLevelSchema,
  SANDBOX_QR_INTERVAL_MS: Type.Integer({ minimum: 50, default: 20_000, description: 'sandbox: QR rotation period' }),
  SANDBOX_RECEIPT_DELAYS_MS: Type.String({
    pattern: '^\\s*\\d+\\s*,\\s*\\d+\\s*,\\s*\\d+\\s*$',
    default: '100,500,1000',
    description: 'sandbox: ms after a send when the sent, delivered and read receipts are emitted',
  }),
});

const NUMERIC = ['WGS_INSTANCE_ID', 'SANDBOX_QR_INTERVAL_MS'];
/** Values never echoed back in error messages. */
const SECRET = ['WGS_WORKER_TOKEN'];
/** The read receipt must come within this long of the send. */
const MAX_RECEIPT_DELAY_MS = 60_000;

export { ConfigError, type LogLevel };

export interface SandboxConfig {
  qrIntervalMs: number;
  /** [sent, delivered, read]: ms after the send, non-decreasing. */
  receiptDelaysMs: readonly [number, number, number];
}

export interface Config {
  /** The base URL as given, without a trailing slash. */
  gatewayUrl: string;
  /** What the worker dials: gatewayUrl + WORKER_WS_PATH. */
  workerUrl: string;
  instanceId: number;
  /** Secret: goes into the hello frame and nowhere else. */
  token: string;
  provider: ProviderName;
  logLevel: LogLevel;
  sandbox: SandboxConfig;
}

/** Parses the environment once; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const e = parseEnv(EnvSchema, env, { numeric: NUMERIC, secret: SECRET });
  const gatewayUrl = parseGatewayUrl(e.WGS_GATEWAY_URL);
  return {
    gatewayUrl,
    workerUrl: `${gatewayUrl}${WORKER_WS_PATH}`,
    instanceId: e.WGS_INSTANCE_ID,
    token: e.WGS_WORKER_TOKEN,
    provider: parseProvider(e.WGS_PROVIDER),
    logLevel: e.LOG_LEVEL as LogLevel,
    sandbox: {
      qrIntervalMs: e.SANDBOX_QR_INTERVAL_MS,
      receiptDelaysMs: parseReceiptDelays(e.SANDBOX_RECEIPT_DELAYS_MS),
    },
  };
}

function parseGatewayUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError('WGS_GATEWAY_URL', `not a URL (got ${JSON.stringify(value)})`);
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new ConfigError('WGS_GATEWAY_URL', `must start with ws:// or wss:// (got ${JSON.stringify(value)})`);
  }
  // The worker authenticates with its token; credentials in the URL would end up in logs.
  if (url.username || url.password) throw new ConfigError('WGS_GATEWAY_URL', 'must not contain credentials');
  if (url.search || url.hash) {
    throw new ConfigError('WGS_GATEWAY_URL', `must be a base URL without query or fragment (got ${JSON.stringify(value)})`);
  }
  return `${url.protocol}//${url.host}${url.pathname}`.replace(/\/+$/, '');
}

function parseProvider(value: string): ProviderName {
  const found = IMPLEMENTED_PROVIDERS.find((p) => p === value);
  if (!found) {
    throw new ConfigError(
      'WGS_PROVIDER',
      `provider ${JSON.stringify(value)} is not implemented by this worker; implemented: ${IMPLEMENTED_PROVIDERS.join(', ')}`,
    );
  }
  return found;
}

/** Shared with the gateway, which checks the value it passes to workers at its own start. */
export function parseReceiptDelays(value: string): [number, number, number] {
  const [sent, delivered, read] = value.split(',').map((part) => Number(part.trim())) as [number, number, number];
  if (!(sent <= delivered && delivered <= read)) {
    throw new ConfigError('SANDBOX_RECEIPT_DELAYS_MS', `delays must be non-decreasing (got ${JSON.stringify(value)})`);
  }
  if (read >= MAX_RECEIPT_DELAY_MS) {
    throw new ConfigError(
      'SANDBOX_RECEIPT_DELAYS_MS',
      `the read receipt must come within ${MAX_RECEIPT_DELAY_MS} ms of the send (got ${JSON.stringify(value)})`,
    );
  }
  return [sent, delivered, read];
}
