import { resolveAdminSecret, resolveBillingSecret, resolveWebhookKey } from './config/admin-secret';
import { SecretBox } from './lib/secret-box';
import { WebhookDispatcher } from './webhooks/dispatcher';
import { checkNodes } from './nodes/health';
import { redactConfig, type Config } from './config/config';
import { connect, type Database } from './db/client';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from './db/embedded';
import { migrateAndSeed } from './db/migrate';
import { createApp } from './http/app';
import { createLogger, type Logger } from './logging/logger';
import { createRuntime } from './instances/setup';
import { acquireOwner, type GatewayOwner } from './claims/owner';
import { Leadership } from './claims/leader';
import { registerReplica } from './claims/replicas';
import { GatewayMetrics } from './metrics/metrics';
import { registerFleetCollectors } from './metrics/fleet';
import { RetentionJob } from './retention/retention';
import { InstanceSecondsJob } from './usage/instance-seconds';
import { startBilling, type BillingService } from './billing/service';

/** How often every node is checked (ready/unreachable, totals). */
const NODE_CHECK_INTERVAL_MS = 15_000;
/** How often the control loop compares what should run with what runs. */
const RECONCILE_INTERVAL_MS = 10_000;

export interface RunningGateway {
  url: string;
  logger: Logger;
  stop(): Promise<void>;
}

/** Starts everything in order; on failure stops what was already started. */
export async function startGateway(config: Config): Promise<RunningGateway> {
  // Every line names the replica (GATEWAY_REPLICA_ID): several gateways share one database and one log store.
  const logger = createLogger(config.logLevel, undefined, config.logFormat).child({ replica: config.replicaId });
  // A promise nobody awaited that fails (a database write while Postgres restarts, say) is
  // logged; it must not take the gateway, and every session it serves, down with it.
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));
  logger.info({ config: redactConfig(config) }, 'starting wgs gateway');
  if (config.whatsmeowRootPublicKey) {
    logger.warn(
      { rootPublicKey: config.whatsmeowRootPublicKey, wsUrl: config.whatsmeowWsUrl },
      'whatsmeow workers trust a server root key that is not WhatsApp\'s (WHATSMEOW_ROOT_PUBLIC_KEY): only for a local test server',
    );
  }

  const admin = await resolveAdminSecret(config.dataDir, config.adminApiSecret);
  if (admin.source === 'generated') {
    // The one place the secret is shown: plain stdout, once, not a log record.
    process.stdout.write(`\nAdmin API secret (generated, kept in ${admin.path}):\n  ${admin.value}\nSend it as the X-Admin-API-Secret header.\n\n`);
  } else {
    logger.info({ source: admin.source, path: admin.path }, 'admin API secret loaded');
  }

  let embedded: EmbeddedPostgresHandle | undefined;
  let database: Database | undefined;
  let owner: GatewayOwner | undefined;
  try {
    let url = config.databaseUrl;
    if (!url) {
      embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPostgresPort, logger });
      url = embedded.url;
    }
    database = connect(url);
    await migrateAndSeed(database);
    logger.info('database migrated');
    // Held while this process lives: what it claims is claimable at once when it dies.
    owner = await acquireOwner(url, logger);
    await registerReplica(database.db, { ownerId: owner.id, replicaId: config.replicaId, workerUrl: config.workerGatewayUrl });

    const metrics = new GatewayMetrics();
    // DATA_DIR's free space matters when the embedded Postgres lives there; an external database's disk is not ours to see.
    registerFleetCollectors(metrics, database, embedded ? { dataDir: config.dataDir } : {});
    const secretKey = await resolveWebhookKey(config.dataDir, config.webhooks.secretKey);
    const secrets = new SecretBox(secretKey.value);
    const { runtime, engine, migrator } = createRuntime(database, logger, {
      ownerId: owner.id,
      caFile: config.workerCaFile,
      databaseUrl: url,
      secrets,
      images: config.docker.images,
      gatewayId: config.docker.gatewayId,
      gatewayUrl: config.workerGatewayUrl,
      overcommit: config.overcommit,
      metrics,
      metricsPerInstance: config.metrics.perInstance,
      workerEnv: {
        LOG_LEVEL: config.logLevel,
        SANDBOX_QR_INTERVAL_MS: String(config.sandbox.qrIntervalMs),
        SANDBOX_RECEIPT_DELAYS_MS: config.sandbox.receiptDelaysMs,
        ...(config.whatsmeowWsUrl && { WHATSMEOW_WS_URL: config.whatsmeowWsUrl }),
        ...(config.whatsmeowRootPublicKey && { WHATSMEOW_ROOT_PUBLIC_KEY: config.whatsmeowRootPublicKey }),
        ...(config.baileysWsUrl && { BAILEYS_WS_URL: config.baileysWsUrl }),
        ...(config.waba.graphBaseUrl && { WABA_GRAPH_BASE_URL: config.waba.graphBaseUrl }),
        ...(config.waba.graphVersion && { WABA_GRAPH_VERSION: config.waba.graphVersion }),
        // Media URLs the workers fetch follow the same rule as webhook URLs.
        WGS_MEDIA_ALLOW_PRIVATE: config.webhooks.allowPrivateNetworks ? '1' : '0',
      },
    });
    const dispatcher = new WebhookDispatcher(database.db, database.sql, secrets, logger.child({ component: 'webhooks' }), {
      ...config.webhooks,
      ownerId: owner.id,
      metrics,
    });
    const app = createApp({
      database,
      logger,
      adminSecret: admin.value,
      runtime,
      migrator,
      secrets,
      allowPrivateWebhooks: config.webhooks.allowPrivateNetworks,
      overcommit: config.overcommit,
      metrics,
      ...(config.metrics.token && { metricsToken: config.metrics.token }),
      billingWebhooks: config.billing.url !== undefined,
      pacingDefaults: config.pacingDefaults,
      replica: { id: config.replicaId, ownerId: owner.id },
    });
    // Other replicas reach this one through the database: results, worker changes, moves, state changes.
    const cluster = await runtime.startCluster(database.sql);
    await runtime.prepareBoot();
    try {
      // Elysia turns SO_REUSEPORT on by default: a second gateway on the same
      // port would then share its traffic silently instead of failing.
      app.listen({ port: config.port, hostname: config.host, reusePort: false, development: false });
    } catch (err) {
      throw new Error(`cannot listen on ${config.host}:${config.port}: ${err instanceof Error ? err.message : err}`);
    }
    const httpUrl = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`;
    logger.info({ url: httpUrl }, 'wgs gateway listening');
    const db = database; // `database` and `owner` are lets: closures below keep these consts
    const pg = embedded;
    const me = owner;
    // Every replica removes its own process workers that should not run; the leader's pass does the rest.
    runtime.startReconciler(RECONCILE_INTERVAL_MS);
    // One replica at a time leads (claims/leader.ts): the control loop (which starts the workers that
    // should run, at once when it leads), drain sweeps and node health checks.
    let healthTimer: ReturnType<typeof setInterval> | undefined;
    const checkAll = () => checkNodes(db.db, runtime.engines).catch((err) => logger.error({ err }, 'node health check failed'));
    metrics.gatewayLeader.set({ replica: config.replicaId }, 0);
    const leadership = new Leadership(url, owner.id, {
      lead: async () => {
        metrics.gatewayLeader.set({ replica: config.replicaId }, 1);
        await checkAll();
        healthTimer = setInterval(() => void checkAll(), NODE_CHECK_INTERVAL_MS);
        runtime.lead();
        migrator.start(RECONCILE_INTERVAL_MS);
      },
      stepDown: () => {
        metrics.gatewayLeader.set({ replica: config.replicaId }, 0);
        clearInterval(healthTimer);
        runtime.stepDown();
        migrator.stopSweeps();
      },
    }, logger.child({ component: 'leader' }));
    await leadership.start();
    await dispatcher.start();
    // Every replica runs the timer; one at a time prunes (an advisory lock held for the pass).
    const retention = new RetentionJob(url, logger.child({ component: 'retention' }), metrics, config.retention);
    retention.start();
    // Instance seconds of the past hours into the usage ledger; likewise one replica at a time.
    const instanceSeconds = new InstanceSecondsJob(url, logger.child({ component: 'usage' }));
    instanceSeconds.start();
    // Billing webhooks for the operator (BILLING_WEBHOOK_URL): their dispatcher and the usage job; nothing when unset.
    const billing: BillingService | undefined = config.billing.url
      ? await startBilling(database, url, logger.child({ component: 'billing' }), {
          url: config.billing.url,
          secret: await resolveBillingSecret(config.dataDir, config.billing.secret),
          webhooks: config.webhooks,
          ownerId: owner.id,
        })
      : undefined;

    return {
      url: httpUrl,
      logger,
      async stop() {
        logger.info('stopping wgs gateway');
        await leadership.stop();
        migrator.stop();
        await runtime.shutdown(() => engine.stopAll());
        runtime.engines.close();
        await dispatcher.stop();
        await retention.stop();
        await instanceSeconds.stop();
        await billing?.stop();
        // Containers on docker nodes keep running and keep their sockets open: close them,
        // or the server would wait for them forever.
        runtime.hub.closeAll();
        await cluster.stop();
        await app.stop(true);
        await me.release();
        await db.close();
        await pg?.stop();
        logger.info('wgs gateway stopped');
        logger.flush();
      },
    };
  } catch (err) {
    await owner?.release().catch(() => {});
    await database?.close().catch(() => {});
    await embedded?.stop().catch(() => {});
    throw err;
  }
}
