import { Type } from '@sinclair/typebox';
import { ConfigError, LogLevelSchema, parseEnv, type LogLevel } from '../../common/env';
import { WORKER_WS_PATH } from '../protocol/frames';
import { IMPLEMENTED_PROVIDERS, type ProviderName } from './providers/names';

/** Baileys' own default (WhatsApp's web socket); kept here so the config does not load Baileys. */
export const BAILEYS_DEFAULT_WS_URL = 'wss://web.whatsapp.com/ws/chat';

/**
 * The Graph API version the waba provider calls: the newest one whose number
 * Meta's changelog shows (v26.0, introduced 29 July 2026;
 * https://developers.facebook.com/docs/graph-api/changelog). Pin a newer one
 * with WABA_GRAPH_VERSION.
 */
export const WABA_DEFAULT_GRAPH_VERSION = 'v26.0';
export const WABA_DEFAULT_GRAPH_BASE_URL = 'https://graph.facebook.com';

/** A plain lower-case Postgres identifier: it goes into search_path unquoted. */
const SCHEMA_PATTERN = '^[a-z_][a-z0-9_]{0,62}$';

/**
 * Every setting the worker reads from its environment, with its default.
 * The gateway (or whoever runs the worker) sets the WGS_* variables; the
 * token only ever travels through the environment, never argv or logs.
 */
const EnvSchema = Type.Object({
  WGS_GATEWAY_URL: Type.String({
    minLength: 1,
    description: 'ws:// or wss:// base URL of the gateway, or a comma-separated list of them (one per gateway replica)',
  }),
  WGS_INSTANCE_ID: Type.Integer({ minimum: 1, description: 'the instance this worker serves' }),
  WGS_WORKER_TOKEN: Type.String({ minLength: 1, description: 'per-instance token for the hello frame' }),
  WGS_PROVIDER: Type.String({ minLength: 1, description: 'WhatsApp engine' }),
  WGS_EXIT_WITH_PARENT: Type.Union([Type.Literal('0'), Type.Literal('1')], {
    default: '0',
    description: '1: stop when the parent process goes away (the process engine sets it: workers die with their gateway)',
  }),
  WGS_STATE_DSN: Type.Optional(Type.String({ minLength: 1, description: "postgres:// URL of the instance's state role (secret)" })),
  WGS_STATE_SCHEMA: Type.Optional(
    Type.String({ pattern: SCHEMA_PATTERN, description: "the instance's Postgres schema, owned by the state role" }),
  ),
  WGS_HEALTH_FILE: Type.Optional(Type.String({ minLength: 1, description: 'file the worker touches while connected; `worker --health` checks it (container HEALTHCHECK)' })),
  LOG_LEVEL: LogLevelSchema,
  SANDBOX_QR_INTERVAL_MS: Type.Integer({ minimum: 50, default: 20_000, description: 'sandbox: QR rotation period' }),
  BAILEYS_WS_URL: Type.String({
    minLength: 1,
    default: BAILEYS_DEFAULT_WS_URL,
    description: "baileys: WhatsApp's WebSocket URL (the simulator's ws://127.0.0.1:…/ws/chat in tests)",
  }),
  BAILEYS_HISTORY_SYNC: Type.Union([Type.Literal('initial'), Type.Literal('none')], {
    default: 'initial',
    description: 'baileys: which history WhatsApp may push after linking: the initial batch only, or none',
  }),
  BAILEYS_SENT_RETENTION_DAYS: Type.Integer({
    minimum: 1,
    maximum: 90,
    default: 7,
    description: "baileys: days the messages this number sent are kept for WhatsApp's retry requests (getMessage)",
  }),
  WGS_MEDIA_ALLOW_PRIVATE: Type.Union([Type.Literal('0'), Type.Literal('1')], {
    default: '0',
    description: '1: media URLs may point at loopback and private addresses (tests only)',
  }),
  WABA_GRAPH_BASE_URL: Type.String({
    minLength: 1,
    default: WABA_DEFAULT_GRAPH_BASE_URL,
    description: "waba: the Graph API's base URL (http:// only for loopback hosts: the fake Graph in tests)",
  }),
  WABA_GRAPH_VERSION: Type.String({ pattern: '^v[0-9]{1,3}\\.[0-9]$', default: WABA_DEFAULT_GRAPH_VERSION, description: 'waba: Graph API version, e.g. v26.0' }),
  WABA_PHONE_NUMBER_ID: Type.Optional(Type.String({ pattern: '^[0-9]{1,32}$', description: "waba: the business phone number's id in the Cloud API" })),
  WABA_ID: Type.Optional(Type.String({ pattern: '^[0-9]{1,32}$', description: 'waba: the WhatsApp Business Account id (templates)' })),
  WABA_ACCESS_TOKEN: Type.Optional(Type.String({ minLength: 1, description: 'waba: system user access token (secret)' })),
  WABA_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 300_000, default: 15_000, description: 'waba: timeout of one Graph API call' }),
  WABA_MAX_RETRIES: Type.Integer({ minimum: 0, maximum: 10, default: 3, description: "waba: retries of a Graph call after Meta's transient errors" }),
  WABA_CHECK_INTERVAL_MS: Type.Integer({
    minimum: 1_000,
    default: 300_000,
    description: 'waba: how often the phone number lookup re-checks the token (while connected, and while failed)',
  }),
  SANDBOX_RECEIPT_DELAYS_MS: Type.String({
    pattern: '^\\s*\\d+\\s*,\\s*\\d+\\s*,\\s*\\d+\\s*$',
    default: '100,500,1000',
    description: 'sandbox: ms after a send when the sent, delivered and read receipts are emitted',
  }),
});

const NUMERIC = [
  'WGS_INSTANCE_ID',
  'SANDBOX_QR_INTERVAL_MS',
  'BAILEYS_SENT_RETENTION_DAYS',
  'WABA_TIMEOUT_MS',
  'WABA_MAX_RETRIES',
  'WABA_CHECK_INTERVAL_MS',
];
/** Values never echoed back in error messages. */
const SECRET = ['WGS_WORKER_TOKEN', 'WGS_STATE_DSN', 'WABA_ACCESS_TOKEN'];
/** The read receipt must come within this long of the send. */
const MAX_RECEIPT_DELAY_MS = 60_000;

export { ConfigError, type LogLevel };

export interface SandboxConfig {
  qrIntervalMs: number;
  /** [sent, delivered, read]: ms after the send, non-decreasing. */
  receiptDelaysMs: readonly [number, number, number];
}

/** Where the engine keeps its session: the instance's own schema, reached as the instance's own role. */
export interface StateConfig {
  /** Secret (it holds the role's password): handed to the store and never logged. */
  dsn: string;
  schema: string;
}

export interface BaileysConfig {
  /** ws:// or wss:// URL of WhatsApp's chat socket. */
  wsUrl: string;
  /** 'initial': the history batch WhatsApp sends right after linking; 'none': no history at all. */
  historySync: 'initial' | 'none';
  /** How long sent messages are kept for retry requests. */
  sentRetentionDays: number;
  /** Media URLs may resolve to non-public addresses (tests). */
  mediaAllowPrivate: boolean;
}

export interface WabaConfig {
  /** Origin (and optional path) of the Graph API, without a trailing slash. */
  graphBaseUrl: string;
  graphVersion: string;
  phoneNumberId: string;
  wabaId: string;
  /** Secret: only ever sent in the Authorization header, never logged. */
  accessToken: string;
  timeoutMs: number;
  maxRetries: number;
  checkIntervalMs: number;
  /** Media URLs may resolve to non-public addresses (tests). */
  mediaAllowPrivate: boolean;
}

export interface Config {
  /** The base URLs as given (one or more, duplicates removed), each without a trailing slash. */
  gatewayUrls: string[];
  /** What the worker dials: each gateway URL + WORKER_WS_PATH, in the same order. */
  workerUrls: string[];
  instanceId: number;
  /** Secret: goes into the hello frame and nowhere else. */
  token: string;
  /** Stop when the parent (the gateway, on the process engine) is gone. */
  exitWithParent: boolean;
  /** WGS_HEALTH_FILE: touched while connected, for the container HEALTHCHECK. */
  healthFile?: string;
  provider: ProviderName;
  logLevel: LogLevel;
  state: StateConfig;
  sandbox: SandboxConfig;
  baileys: BaileysConfig;
  /** Only with WGS_PROVIDER=waba. */
  waba?: WabaConfig;
}

/** Parses the environment once; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const e = parseEnv(EnvSchema, env, { numeric: NUMERIC, secret: SECRET });
  const gatewayUrls = parseGatewayUrls(e.WGS_GATEWAY_URL);
  const provider = parseProvider(e.WGS_PROVIDER);
  return {
    gatewayUrls,
    workerUrls: gatewayUrls.map((url) => `${url}${WORKER_WS_PATH}`),
    instanceId: e.WGS_INSTANCE_ID,
    token: e.WGS_WORKER_TOKEN,
    exitWithParent: e.WGS_EXIT_WITH_PARENT === '1',
    ...(e.WGS_HEALTH_FILE && { healthFile: e.WGS_HEALTH_FILE }),
    provider,
    logLevel: e.LOG_LEVEL as LogLevel,
    state: parseState(provider, e.WGS_STATE_DSN, e.WGS_STATE_SCHEMA),
    sandbox: {
      qrIntervalMs: e.SANDBOX_QR_INTERVAL_MS,
      receiptDelaysMs: parseReceiptDelays(e.SANDBOX_RECEIPT_DELAYS_MS),
    },
    baileys: {
      wsUrl: parseBaileysWsUrl(e.BAILEYS_WS_URL),
      historySync: e.BAILEYS_HISTORY_SYNC as 'initial' | 'none',
      sentRetentionDays: e.BAILEYS_SENT_RETENTION_DAYS,
      mediaAllowPrivate: e.WGS_MEDIA_ALLOW_PRIVATE === '1',
    },
    ...(provider === 'waba' && {
      waba: {
        graphBaseUrl: parseGraphBaseUrl(e.WABA_GRAPH_BASE_URL),
        graphVersion: e.WABA_GRAPH_VERSION,
        phoneNumberId: requiredFor(provider, 'WABA_PHONE_NUMBER_ID', e.WABA_PHONE_NUMBER_ID),
        wabaId: requiredFor(provider, 'WABA_ID', e.WABA_ID),
        accessToken: requiredFor(provider, 'WABA_ACCESS_TOKEN', e.WABA_ACCESS_TOKEN),
        timeoutMs: e.WABA_TIMEOUT_MS,
        maxRetries: e.WABA_MAX_RETRIES,
        checkIntervalMs: e.WABA_CHECK_INTERVAL_MS,
        mediaAllowPrivate: e.WGS_MEDIA_ALLOW_PRIVATE === '1',
      },
    }),
  };
}

function requiredFor(provider: ProviderName, variable: string, value: string | undefined): string {
  if (value === undefined) throw new ConfigError(variable, `required when WGS_PROVIDER is ${provider}`);
  return value;
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/**
 * A URL setting: parsed, of one of `protocols`, never with credentials (they
 * would end up in logs). `base`: no query or fragment, returned without a
 * trailing slash. `loopbackOnly`: protocols allowed for loopback hosts only
 * (plain http to a local stand-in in tests).
 */
function parseUrlSetting(
  variable: string,
  value: string,
  opts: { protocols: string[]; base?: boolean; loopbackOnly?: string[] },
): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(variable, `not a URL (got ${JSON.stringify(value)})`);
  }
  const schemes = opts.protocols.map((p) => `${p}//`).join(' or ');
  if (!opts.protocols.includes(url.protocol)) throw new ConfigError(variable, `must start with ${schemes} (got ${JSON.stringify(value)})`);
  if (opts.loopbackOnly?.includes(url.protocol) && !LOOPBACK_HOSTS.has(url.hostname) && !/^127\./.test(url.hostname)) {
    throw new ConfigError(variable, `${url.protocol}// is allowed for loopback hosts only (got ${JSON.stringify(value)})`);
  }
  if (url.username || url.password) throw new ConfigError(variable, 'must not contain credentials');
  if (!opts.base) return url.toString();
  if (url.search || url.hash) throw new ConfigError(variable, `must be a base URL without query or fragment (got ${JSON.stringify(value)})`);
  return `${url.protocol}//${url.host}${url.pathname}`.replace(/\/+$/, '');
}

/** https:// anywhere; http:// only on loopback (the fake Graph in tests). */
const parseGraphBaseUrl = (value: string) =>
  parseUrlSetting('WABA_GRAPH_BASE_URL', value, { protocols: ['https:', 'http:'], base: true, loopbackOnly: ['http:'] });

/**
 * WGS_GATEWAY_URL: one ws:// or wss:// base URL, or a comma-separated list
 * of them (one per gateway replica; blanks around the commas are fine).
 * Each entry is checked like a single URL; an error names the bad entry
 * (never its credentials). Duplicates (after normalising) are dropped, the
 * first one kept. Shared with the gateway, which can check the list it
 * passes to workers (its WORKER_GATEWAY_URL) at its own start.
 */
export function parseGatewayUrls(value: string, variable = 'WGS_GATEWAY_URL'): string[] {
  const entries = value.split(',').map((entry) => entry.trim());
  const urls: string[] = [];
  for (const [i, entry] of entries.entries()) {
    const which = entries.length === 1 ? '' : `entry ${i + 1} of ${entries.length}: `;
    if (entry === '') throw new ConfigError(variable, `${which}empty (expected a ws:// or wss:// URL)`);
    let url: string;
    try {
      url = parseUrlSetting(variable, entry, { protocols: ['ws:', 'wss:'], base: true });
    } catch (err) {
      if (!(err instanceof ConfigError) || !which) throw err;
      throw new ConfigError(variable, `${which}${err.message.slice(`invalid configuration: ${variable}: `.length)}`);
    }
    if (!urls.includes(url)) urls.push(url);
  }
  return urls;
}

const parseBaileysWsUrl = (value: string) => parseUrlSetting('BAILEYS_WS_URL', value, { protocols: ['ws:', 'wss:'] });

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

/**
 * Every engine so far keeps its session in the state store, so both
 * variables are required with each of them. The DSN never appears in an
 * error: it carries the role's password.
 */
function parseState(provider: ProviderName, dsn: string | undefined, schema: string | undefined): StateConfig {
  if (dsn === undefined) throw new ConfigError('WGS_STATE_DSN', `required when WGS_PROVIDER is ${provider}`);
  if (schema === undefined) throw new ConfigError('WGS_STATE_SCHEMA', `required when WGS_PROVIDER is ${provider}`);
  let url: URL;
  try {
    url = new URL(dsn);
  } catch {
    throw new ConfigError('WGS_STATE_DSN', 'not a URL (value not shown: it is secret)');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new ConfigError('WGS_STATE_DSN', `must start with postgres:// or postgresql:// (got ${url.protocol}//…)`);
  }
  if (!url.hostname) throw new ConfigError('WGS_STATE_DSN', 'must name a host');
  if (!url.username) throw new ConfigError('WGS_STATE_DSN', "must name the instance's role as its user");
  if (url.pathname.replace(/^\/+/, '') === '') throw new ConfigError('WGS_STATE_DSN', 'must name a database');
  return { dsn, schema };
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
