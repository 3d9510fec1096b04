import type { Database } from '../db/client';
import type { Logger } from '../logging/logger';
import type { InstanceRuntime } from '../instances/runtime';
import type { Migrator } from '../instances/migration';
import type { SecretBox } from '../lib/secret-box';
import type { GatewayMetrics } from '../metrics/metrics';
import type { PacingDefaults } from '../pacing/settings';

/** What route modules need; built once in main.ts (or by a test). */
export interface AppDeps {
  database: Database;
  logger: Logger;
  adminSecret: string;
  runtime: InstanceRuntime;
  /** Moves instances between nodes (migrate, drain). */
  migrator: Migrator;
  /** Encrypts stored secrets at rest: webhook signing secrets, node TLS client keys. */
  secrets: SecretBox;
  /** WEBHOOK_ALLOW_PRIVATE_NETWORKS: let webhook URLs reach loopback and private addresses. */
  allowPrivateWebhooks: boolean;
  /** SCHEDULER_OVERCOMMIT: how far the sum of instance limits may exceed a node's capacity. */
  overcommit: number;
  /** This gateway's metrics (GET /metrics). */
  metrics: GatewayMetrics;
  /** METRICS_TOKEN: Bearer token /metrics asks for; unset: open. */
  metricsToken?: string;
  /** BILLING_WEBHOOK_URL is set: instance creates and deletes record billing events (billing/events.ts). */
  billingWebhooks?: boolean;
  /** PACING_DEFAULTS: `safe` (default) paces whatsmeow, baileys and wawebjs numbers without settings of their own; `off` paces only instances with settings. */
  pacingDefaults?: PacingDefaults;
  /** This gateway replica (GATEWAY_REPLICA_ID and its liveness id), shown by GET /admin/replicas. */
  replica?: { id: string; ownerId: number };
}
