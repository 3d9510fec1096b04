import type { WorkerImages } from '../engines/docker';
import { Type, type Static } from '@sinclair/typebox';
import { ConfigError, LogLevelSchema, parseEnv } from '../../../common/env';
import { parseGatewayUrls, parseReceiptDelays } from '../../../workers/src/config';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
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
  LOG_LEVEL: LogLevelSchema,
  WORKER_GATEWAY_URL: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'ws:// URL workers dial to reach this gateway; default ws://127.0.0.1:PORT (or ws://HOST:PORT for a specific HOST). ' +
        'With gateway replicas a comma-separated list of the replicas (any order: each worker starts at its own entry, spread by instance id, ' +
        'and moves to the next at once when its gateway fails), or one load-balanced URL or DNS name. Passed to workers as WGS_GATEWAY_URL, ' +
        'checked here as the workers check it',
    }),
  ),
  GATEWAY_REPLICA_ID: Type.Optional(
    Type.String({
      pattern: '^[A-Za-z0-9_.-]{1,63}$',
      description: 'this replica\'s name in logs, metrics and GET /admin/replicas; default the host name and 6 random hex digits',
    }),
  ),
  SANDBOX_QR_INTERVAL_MS: Type.Integer({ minimum: 50, default: 20_000, description: 'how often a sandbox worker rotates its QR code' }),
  SANDBOX_RECEIPT_DELAYS_MS: Type.String({
    pattern: '^[0-9]{1,5},[0-9]{1,5},[0-9]{1,5}$',
    default: '100,500,1000',
    description: 'ms after a sandbox send until the sent, delivered and read receipts',
  }),
  WHATSMEOW_WS_URL: Type.Optional(
    Type.String({ pattern: '^wss?://\\S+$', description: "WhatsApp's WebSocket for whatsmeow workers; default whatsmeow's own (tests point it at a closed loopback port)" }),
  ),
  BAILEYS_WS_URL: Type.Optional(
    Type.String({ pattern: '^wss?://\\S+$', description: "WhatsApp's WebSocket for baileys workers; default Baileys' own (tests point it at the simulator)" }),
  ),
  WHATSMEOW_ROOT_PUBLIC_KEY: Type.Optional(
    Type.String({
      pattern: '^[0-9a-fA-F]{64}$',
      description: "hex of the 32-byte root key whatsmeow workers trust for the server's certificate instead of WhatsApp's own (a local server such as the simulator)",
    }),
  ),
  WABA_GRAPH_BASE_URL: Type.Optional(
    Type.String({
      pattern: '^https?://[^/?#@\\s]+/?$',
      description:
        "origin of Meta's Graph API for waba workers; default https://graph.facebook.com. An operator setting only (never per tenant); tests point it at the fake Graph API on loopback",
    }),
  ),
  WABA_GRAPH_VERSION: Type.Optional(Type.String({ pattern: '^v[0-9]{1,3}\\.[0-9]$', description: "Graph API version waba workers call, e.g. v23.0; default the workers' own (README)" })),
  METRICS_TOKEN: Type.Optional(
    Type.String({ minLength: 16, description: 'when set, GET /metrics needs Authorization: Bearer <METRICS_TOKEN>; unset: /metrics is open (bind HOST to a private address)' }),
  ),
  METRICS_PER_INSTANCE: Type.Union([Type.Literal('true'), Type.Literal('false')], {
    default: 'false',
    description: 'true adds per-instance worker memory and CPU series (one series per number: mind the cardinality)',
  }),
  PACING_DEFAULTS: Type.Union([Type.Literal('safe'), Type.Literal('off')], {
    default: 'safe',
    description: 'safe: whatsmeow, baileys and wawebjs numbers without pacing settings of their own are paced (pacing/settings.ts SAFE_PACING); off: only instances with settings are paced',
  }),
  WORKER_CA_FILE: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'PEM bundle of the CAs workers trust instead of the system store (SSL_CERT_FILE; NODE_EXTRA_CA_CERTS for Node workers), e.g. the simulator\'s media CA',
    }),
  ),
  WEBHOOK_SECRET_KEY: Type.Optional(
    Type.String({ pattern: '^[A-Za-z0-9+/]{43}=$', description: 'base64 of 32 bytes: encrypts webhook signing secrets; generated into DATA_DIR when unset' }),
  ),
  WEBHOOK_RETRY_SCHEDULE: Type.String({
    pattern: '^[0-9]{1,6}(,[0-9]{1,6}){0,19}$',
    default: '0,5,300,1800,7200,18000,36000,36000',
    description: 'seconds before each delivery attempt (the first is the first attempt)',
  }),
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: Type.Union([Type.Literal('true'), Type.Literal('false')], { default: 'false' }),
  WEBHOOK_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 120_000, default: 15_000 }),
  BILLING_WEBHOOK_URL: Type.Optional(
    Type.String({
      pattern: '^https?://',
      maxLength: 2048,
      description: "the operator's billing endpoint (usage.threshold, usage.period_closed, instance.created/deleted); unset: no billing events are recorded",
    }),
  ),
  BILLING_WEBHOOK_SECRET: Type.Optional(
    Type.String({ pattern: '^whsec_[A-Za-z0-9+/]{16,}={0,2}$', description: 'Standard Webhooks secret signing billing webhooks; generated into DATA_DIR/billing-webhook-secret when unset' }),
  ),
  WORKER_IMAGE: Type.String({ minLength: 1, default: 'wgs-worker-ts:local', description: 'TypeScript worker image on docker nodes (make images builds it)' }),
  WORKER_IMAGE_NODE: Type.String({ minLength: 1, default: 'wgs-worker-node:local', description: 'TypeScript worker image on Node (baileys) on docker nodes (make images builds it)' }),
  WORKER_IMAGE_WHATSMEOW: Type.String({ minLength: 1, default: 'wgs-worker-whatsmeow:local', description: 'whatsmeow worker image on docker nodes (make images builds it)' }),
  GATEWAY_ID: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,63}$', default: 'wgs', description: 'label on this gateway\'s containers' }),
  SCHEDULER_OVERCOMMIT: Type.Number({ minimum: 0.1, maximum: 100, default: 1, description: 'sum of instance limits may reach capacity x this' }),
  RETENTION_EVENTS_DAYS: Type.Integer({
    minimum: 0,
    maximum: 36_500,
    default: 30,
    description: 'events (and finished commands) older than this many days are pruned, unless a webhook delivery of theirs is still kept; 0 keeps them forever',
  }),
  RETENTION_DELIVERIES_DAYS: Type.Integer({
    minimum: 0,
    maximum: 36_500,
    default: 14,
    description: 'finished webhook deliveries (succeeded, failed) are pruned this many days after they finished; pending ones never; 0 keeps them forever',
  }),
  RETENTION_MEDIA_DAYS: Type.Integer({
    minimum: 0,
    maximum: 36_500,
    default: 30,
    description: 'received media older than this many days are pruned (their URLs then answer 404); 0 keeps them forever',
  }),
  LOG_FORMAT: Type.Union([Type.Literal('json'), Type.Literal('pretty')], {
    default: 'json',
    description: 'json: one JSON object per line (for log shippers); pretty: coloured, human-readable lines for a terminal',
  }),
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
  logFormat: Env['LOG_FORMAT'];
  embeddedPostgresPort: number;
  /** WORKER_GATEWAY_URL: one URL, or a comma-separated list workers try in turn. */
  workerGatewayUrl: string;
  /** GATEWAY_REPLICA_ID, or generated: this replica's name. */
  replicaId: string;
  sandbox: { qrIntervalMs: number; receiptDelaysMs: string };
  whatsmeowWsUrl?: string;
  whatsmeowRootPublicKey?: string;
  baileysWsUrl?: string;
  waba: { graphBaseUrl?: string; graphVersion?: string };
  metrics: { token?: string; perInstance: boolean };
  /** PACING_DEFAULTS: whether numbers without pacing settings of their own are paced (safe) or not (off). */
  pacingDefaults: 'safe' | 'off';
  /** WORKER_CA_FILE, resolved: a readable PEM bundle. */
  workerCaFile?: string;
  webhooks: { secretKey: string | undefined; retryScheduleS: number[]; allowPrivateNetworks: boolean; timeoutMs: number };
  /** Billing webhooks (billing/): url unset = off; secret unset = generated into DATA_DIR. Retries, timeout and SSRF rules are the webhooks'. */
  billing: { url?: string; secret?: string };
  docker: { images: WorkerImages; gatewayId: string };
  overcommit: number;
  /** Days kept before pruning (retention/); 0 = forever. */
  retention: { eventsDays: number; deliveriesDays: number; mediaDays: number };
}

export { ConfigError };

const NUMERIC = [
  'PORT',
  'EMBEDDED_POSTGRES_PORT',
  'SANDBOX_QR_INTERVAL_MS',
  'WEBHOOK_TIMEOUT_MS',
  'SCHEDULER_OVERCOMMIT',
  'RETENTION_EVENTS_DAYS',
  'RETENTION_DELIVERIES_DAYS',
  'RETENTION_MEDIA_DAYS',
];

/** Parses the environment once; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const e = parseEnv(EnvSchema, env, { numeric: NUMERIC, secret: ['ADMIN_API_SECRET', 'DATABASE_URL', 'WEBHOOK_SECRET_KEY', 'METRICS_TOKEN', 'BILLING_WEBHOOK_SECRET'] });
  parseReceiptDelays(e.SANDBOX_RECEIPT_DELAYS_MS); // the workers' own check, at the gateway's start
  // The workers' own check too: a list they would refuse would leave every worker in a restart loop.
  const workerUrls = e.WORKER_GATEWAY_URL === undefined ? undefined : parseGatewayUrls(e.WORKER_GATEWAY_URL, 'WORKER_GATEWAY_URL').join(',');
  return {
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    dataDir: resolve(e.DATA_DIR),
    adminApiSecret: e.ADMIN_API_SECRET,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    embeddedPostgresPort: e.EMBEDDED_POSTGRES_PORT,
    workerGatewayUrl: workerUrls ?? defaultWorkerUrl(e.HOST, e.PORT),
    replicaId: e.GATEWAY_REPLICA_ID ?? generatedReplicaId(),
    sandbox: { qrIntervalMs: e.SANDBOX_QR_INTERVAL_MS, receiptDelaysMs: e.SANDBOX_RECEIPT_DELAYS_MS },
    ...(e.WHATSMEOW_WS_URL && { whatsmeowWsUrl: e.WHATSMEOW_WS_URL }),
    ...(e.BAILEYS_WS_URL && { baileysWsUrl: e.BAILEYS_WS_URL }),
    ...(e.WHATSMEOW_ROOT_PUBLIC_KEY && { whatsmeowRootPublicKey: e.WHATSMEOW_ROOT_PUBLIC_KEY.toLowerCase() }),
    ...(e.WORKER_CA_FILE && { workerCaFile: caBundle(e.WORKER_CA_FILE) }),
    metrics: { ...(e.METRICS_TOKEN && { token: e.METRICS_TOKEN }), perInstance: e.METRICS_PER_INSTANCE === 'true' },
    pacingDefaults: e.PACING_DEFAULTS,
    waba: {
      ...(e.WABA_GRAPH_BASE_URL && { graphBaseUrl: e.WABA_GRAPH_BASE_URL.replace(/\/$/, '') }),
      ...(e.WABA_GRAPH_VERSION && { graphVersion: e.WABA_GRAPH_VERSION }),
    },
    docker: { images: { typescript: e.WORKER_IMAGE, whatsmeow: e.WORKER_IMAGE_WHATSMEOW, node: e.WORKER_IMAGE_NODE }, gatewayId: e.GATEWAY_ID },
    overcommit: e.SCHEDULER_OVERCOMMIT,
    retention: { eventsDays: e.RETENTION_EVENTS_DAYS, deliveriesDays: e.RETENTION_DELIVERIES_DAYS, mediaDays: e.RETENTION_MEDIA_DAYS },
    webhooks: {
      secretKey: e.WEBHOOK_SECRET_KEY,
      retryScheduleS: e.WEBHOOK_RETRY_SCHEDULE.split(',').map(Number),
      allowPrivateNetworks: e.WEBHOOK_ALLOW_PRIVATE_NETWORKS === 'true',
      timeoutMs: e.WEBHOOK_TIMEOUT_MS,
    },
    billing: {
      ...(e.BILLING_WEBHOOK_URL && { url: billingUrl(e.BILLING_WEBHOOK_URL) }),
      ...(e.BILLING_WEBHOOK_SECRET && { secret: e.BILLING_WEBHOOK_SECRET }),
    },
  };
}

/** BILLING_WEBHOOK_URL as a URL (no credentials in it: it is logged); a ConfigError naming it otherwise. */
function billingUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError('BILLING_WEBHOOK_URL', `${raw} is not a URL`);
  }
  if (url.username || url.password) throw new ConfigError('BILLING_WEBHOOK_URL', 'must not contain credentials');
  return url.toString();
}

/** The absolute path of a readable file holding at least one PEM certificate; a ConfigError naming WORKER_CA_FILE otherwise. */
function caBundle(path: string): string {
  const absolute = resolve(path);
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (err) {
    throw new ConfigError('WORKER_CA_FILE', `cannot read ${absolute}: ${(err as Error).message}`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError('WORKER_CA_FILE', `${absolute} holds no PEM certificate`);
  return absolute;
}

/** A replica's default name: the host name (as a label-safe string) and 6 random hex digits, new at each start. */
function generatedReplicaId(): string {
  const host = hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 50) || 'gateway';
  return `${host}-${randomBytes(3).toString('hex')}`;
}

/** Workers on this machine reach a wildcard-bound gateway on loopback. */
function defaultWorkerUrl(host: string, port: number): string {
  const local = ['0.0.0.0', '::', '127.0.0.1', 'localhost', '::1'].includes(host);
  const h = local ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return `ws://${h}:${port}`;
}

/** The config as it may be logged: secrets and passwords removed. */
export function redactConfig(config: Config): Record<string, unknown> {
  return {
    ...config,
    adminApiSecret: config.adminApiSecret ? '<redacted>' : undefined,
    webhooks: { ...config.webhooks, secretKey: config.webhooks.secretKey ? '<redacted>' : undefined },
    billing: { ...config.billing, secret: config.billing.secret ? '<redacted>' : undefined },
    metrics: { ...config.metrics, token: config.metrics.token ? '<redacted>' : undefined },
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
