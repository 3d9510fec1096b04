/**
 * An app on its own real test database, with the real instance runtime
 * (process engine, worker hub) and a small request helper. With `listen`,
 * it serves on a loopback port so real workers can dial it.
 */
import { createApp } from '../../gateway/src/http/app';
import { createLogger, type Logger } from '../../gateway/src/logging/logger';
import { createRuntime } from '../../gateway/src/instances/setup';
import type { Engine } from '../../gateway/src/engines/engine';
import { createTestDatabase, type TestDatabase } from './postgres';
import { SecretBox } from '../../gateway/src/lib/secret-box';
import { WebhookDispatcher } from '../../gateway/src/webhooks/dispatcher';
import { acquireOwner } from '../../gateway/src/claims/owner';
import { randomBytes } from 'node:crypto';
import { GatewayMetrics } from '../../gateway/src/metrics/metrics';
import { registerFleetCollectors } from '../../gateway/src/metrics/fleet';
import { BillingDispatcher } from '../../gateway/src/billing/dispatcher';

export const ADMIN_SECRET = 'test-admin-secret';

export interface Call {
  body?: unknown;
  /** Raw body text, sent as JSON content type (for malformed JSON). */
  raw?: string;
  admin?: string | false;
  key?: string;
  headers?: Record<string, string>;
}

export interface CallResult {
  status: number;
  body: any;
  headers: Headers;
  bytes: Uint8Array;
}

export interface TestApp {
  db: TestDatabase;
  app: ReturnType<typeof createApp>;
  runtime: ReturnType<typeof createRuntime>['runtime'];
  migrator: ReturnType<typeof createRuntime>['migrator'];
  engine: Engine;
  dispatcher: WebhookDispatcher;
  /** The billing webhooks' dispatcher, running, when `billing` was given. */
  billing?: BillingDispatcher;
  secrets: SecretBox;
  /** The app's metrics (what GET /metrics shows). */
  metrics: GatewayMetrics;
  /** http://127.0.0.1:<port> when listening. */
  url?: string;
  call(method: string, path: string, opts?: Call): Promise<CallResult>;
  /** Creates a user through the admin API; returns its id, email and key. */
  createUser(email?: string): Promise<{ id: number; email: string; apiKey: string; keyId: number }>;
  close(): Promise<void>;
}

let counter = 0;

export async function createTestApp(
  opts: {
    listen?: boolean;
    workerEnv?: Record<string, string>;
    webhooks?: boolean;
    allowPrivateWebhooks?: boolean;
    retryScheduleS?: number[];
    /** Run workers on this engine instead of the process engine. */
    engine?: Engine;
    /** Label for containers this app's docker nodes start. */
    gatewayId?: string;
    /** How long a migration waits for the new worker. */
    moveTimeoutMs?: number;
    /** METRICS_TOKEN for /metrics. */
    metricsToken?: string;
    /** METRICS_PER_INSTANCE=true: worker usage also per instance. */
    metricsPerInstance?: boolean;
    /** The app's logger (e.g. one writing to a capture stream); default silent (TEST_LOG_LEVEL). */
    logger?: Logger;
    /** BILLING_WEBHOOK_URL and its secret: instance creates/deletes record billing events, delivered (retryScheduleS) by a running dispatcher. */
    billing?: { url: string; secret: string };
  } = {},
): Promise<TestApp> {
  const db = await createTestDatabase();
  const logger = opts.logger ?? createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
  const secrets = new SecretBox(randomBytes(32).toString('base64'));
  const owner = await acquireOwner(db.url, logger);
  const metrics = new GatewayMetrics({ defaults: false });
  registerFleetCollectors(metrics, db.database);
  const { runtime, engine, migrator } = createRuntime<Engine>(db.database, logger, {
    ownerId: owner.id,
    databaseUrl: db.url,
    secrets,
    engine: opts.engine,
    gatewayId: opts.gatewayId,
    moveTimeoutMs: opts.moveTimeoutMs,
    gatewayUrl: 'ws://127.0.0.1:1',
    workerEnv: {
      LOG_LEVEL: 'warn',
      SANDBOX_QR_INTERVAL_MS: '20000',
      SANDBOX_RECEIPT_DELAYS_MS: '20,60,100',
      ...opts.workerEnv,
    },
    backoffMs: { initial: 200, max: 1000 },
    metrics,
    metricsPerInstance: opts.metricsPerInstance,
  });
  const app = createApp({ database: db.database, logger, adminSecret: ADMIN_SECRET, runtime, migrator, secrets, allowPrivateWebhooks: opts.allowPrivateWebhooks ?? true, overcommit: 1, metrics, ...(opts.metricsToken && { metricsToken: opts.metricsToken }), billingWebhooks: opts.billing !== undefined });
  const dispatcher = new WebhookDispatcher(db.database.db, db.database.sql, secrets, logger, {
    retryScheduleS: opts.retryScheduleS ?? [0, 1, 1, 2],
    allowPrivateNetworks: opts.allowPrivateWebhooks ?? true,
    timeoutMs: 2000,
    pollMs: 100,
    ownerId: owner.id,
    metrics,
  });
  if (opts.webhooks) await dispatcher.start();
  const billing = opts.billing
    ? new BillingDispatcher(db.database.db, db.database.sql, logger, {
        ...opts.billing,
        retryScheduleS: opts.retryScheduleS ?? [0, 1, 1, 2],
        allowPrivateNetworks: opts.allowPrivateWebhooks ?? true,
        timeoutMs: 2000,
        pollMs: 100,
        ownerId: owner.id,
      })
    : undefined;
  await billing?.start();
  let url: string | undefined;
  if (opts.listen) {
    app.listen({ port: 0, hostname: '127.0.0.1', reusePort: false, development: false });
    url = `http://127.0.0.1:${app.server!.port}`;
    runtime.setGatewayUrl(`ws://127.0.0.1:${app.server!.port}`);
  }

  const call: TestApp['call'] = async (method, path, o = {}) => {
    const headers: Record<string, string> = { ...o.headers };
    if (o.admin !== false && path.startsWith('/admin')) headers['x-admin-api-secret'] = o.admin ?? ADMIN_SECRET;
    if (o.key) headers.authorization = `Bearer ${o.key}`;
    let body: string | undefined;
    if (o.raw !== undefined || o.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = o.raw ?? JSON.stringify(o.body);
    }
    const request = new Request(`${url ?? 'http://wgs.test'}${path}`, { method, headers, body });
    const res = url ? await fetch(request) : await app.handle(request);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const text = new TextDecoder().decode(bytes);
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed, headers: res.headers, bytes };
  };

  return {
    db,
    app,
    runtime,
    migrator,
    engine,
    url,
    call,
    async createUser(email = `user${++counter}-${Date.now()}@example.com`) {
      const res = await call('POST', '/admin/users', { body: { email } });
      if (res.status !== 201) throw new Error(`creating user failed: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    },
    dispatcher,
    billing,
    secrets,
    metrics,
    async close() {
      await dispatcher.stop();
      await billing?.stop();
      migrator.stop();
      await runtime.shutdown(async () => {
        // Every engine: a migrated instance may run on a docker node.
        for (const e of runtime.engines.all()) await Promise.all((await e.list()).map((w) => e.remove(w.instanceId)));
      });
      if (url) await app.stop(true);
      await owner.release();
      await db.drop();
    },
  };
}
