/**
 * Billing webhooks wired together (gateway.ts calls this only when
 * BILLING_WEBHOOK_URL is set): the dispatcher of the billing outbox and the
 * job that records usage thresholds and closes months.
 */
import type { Database } from '../db/client';
import type { Logger } from '../logging/logger';
import type { SecretValue } from '../config/admin-secret';
import { refuseDestination } from '../webhooks/destination';
import { BillingDispatcher } from './dispatcher';
import { BillingJob, type BillingJobOptions } from './usage-job';

export interface BillingService {
  dispatcher: BillingDispatcher;
  job: BillingJob;
  stop(): Promise<void>;
}

export async function startBilling(
  database: Database,
  databaseUrl: string,
  logger: Logger,
  opts: {
    url: string;
    secret: SecretValue;
    webhooks: { retryScheduleS: number[]; allowPrivateNetworks: boolean; timeoutMs: number };
    ownerId: number;
    job?: BillingJobOptions;
  },
): Promise<BillingService> {
  if (opts.secret.source === 'generated') {
    // Shown once, like the admin secret: plain stdout, not a log record. It stays readable in the file.
    process.stdout.write(`\nBilling webhook signing secret (generated, kept in ${opts.secret.path}):\n  ${opts.secret.value}\nVerify BILLING_WEBHOOK_URL requests with it (Standard Webhooks).\n\n`);
  } else {
    logger.info({ source: opts.secret.source, path: opts.secret.path }, 'billing webhook secret loaded');
  }
  // Checked again before every delivery (DNS may change); a refusal now is worth saying at once.
  const refused = await refuseDestination(opts.url, opts.webhooks.allowPrivateNetworks);
  if (refused) logger.error({ url: opts.url }, `BILLING_WEBHOOK_URL ${refused}: billing events are recorded but cannot be delivered`);
  const dispatcher = new BillingDispatcher(database.db, database.sql, logger, {
    url: opts.url,
    secret: opts.secret.value,
    retryScheduleS: opts.webhooks.retryScheduleS,
    allowPrivateNetworks: opts.webhooks.allowPrivateNetworks,
    timeoutMs: opts.webhooks.timeoutMs,
    ownerId: opts.ownerId,
  });
  await dispatcher.start();
  const job = new BillingJob(databaseUrl, logger, opts.job);
  job.start();
  logger.info({ url: opts.url }, 'billing webhooks on');
  return {
    dispatcher,
    job,
    async stop() {
      await dispatcher.stop();
      await job.stop();
    },
  };
}
