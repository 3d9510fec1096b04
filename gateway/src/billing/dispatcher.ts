/**
 * Delivers the billing outbox (`billing_events`) to BILLING_WEBHOOK_URL with
 * the customer webhooks' machinery: the same loop (LISTEN + poll), claims
 * (`FOR UPDATE SKIP LOCKED`, the claimant's process id, a lease, taken over
 * at once when the claimant is dead), Standard Webhooks signing, SSRF check,
 * retry schedule and jitter (webhooks/dispatcher.ts). The differences: one
 * operator endpoint, so a billing event is its own delivery; 410 is retried
 * like any failure (the operator's endpoint is not unsubscribed); giving up
 * marks the row `failed` and logs an error (no customer event).
 */
import { sql } from 'drizzle-orm';
import type { Sql } from 'postgres';
import type { Db } from '../db/client';
import { billingEvents } from '../db/schema';
import type { Logger } from '../logging/logger';
import { liveOwners } from '../claims/owner';
import { postSigned, retryDelayS } from '../webhooks/dispatcher';
import { dueOutboxRows, OutboxLoop } from '../webhooks/outbox-loop';
import { billingBody, billingMessageId, type BillingEventRecord } from './events';

export interface BillingDispatcherOptions {
  /** BILLING_WEBHOOK_URL. */
  url: string;
  /** The `whsec_` secret (BILLING_WEBHOOK_SECRET or generated). */
  secret: string;
  retryScheduleS: number[];
  allowPrivateNetworks: boolean;
  timeoutMs: number;
  ownerId: number;
  batchSize?: number;
  pollMs?: number;
}

/** The channel the 0016 trigger notifies once per statement inserting billing events. */
export const BILLING_CHANNEL = 'wgs_billing_events';
const LEASE_MARGIN_S = 30;

export class BillingDispatcher {
  readonly counts = { succeeded: 0, retrying: 0, failed: 0 };
  private readonly loop: OutboxLoop;
  private readonly leaseS: number;

  constructor(
    private readonly db: Db,
    sqlClient: Sql,
    private readonly logger: Logger,
    private readonly opts: BillingDispatcherOptions,
  ) {
    this.leaseS = Math.ceil(opts.timeoutMs / 1000) + LEASE_MARGIN_S;
    this.loop = new OutboxLoop(sqlClient, BILLING_CHANNEL, () => this.round(), logger, opts.pollMs ?? 1000);
  }

  start(): Promise<void> {
    return this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** Claims and delivers one batch of due billing events; returns how many. */
  async round(): Promise<number> {
    const rows = (await this.db.execute(sql`
      with live as materialized ${liveOwners}, due as (${dueOutboxRows(billingEvents, this.opts.batchSize ?? 100)})
      update ${billingEvents} b
      set locked_until = now() + make_interval(secs => ${this.leaseS}), claimed_by = ${this.opts.ownerId}, attempts = b.attempts + 1
      from due where b.id = due.id
      returning b.id, b.attempts, b.type, b.user_id, b.tenant_email, b.data, b.created_at`)) as unknown as (BillingEventRecord & { attempts: number })[];
    for (const row of rows) row.id = Number(row.id); // bigint arrives as a string from the raw query
    await Promise.all(rows.map((row) => this.deliver(row)));
    return rows.length;
  }

  private async deliver(row: BillingEventRecord & { attempts: number }): Promise<void> {
    const attempt = await postSigned(this.opts.url, () => this.opts.secret, billingMessageId(row.id), billingBody(row), this.opts);
    const { statusCode, error, excerpt, retryAfterS, latencyMs } = attempt;
    const ok = statusCode !== null && statusCode >= 200 && statusCode < 300;
    const record = sql`last_status_code = ${statusCode}, last_latency_ms = ${latencyMs}, last_error = ${error}, response_excerpt = ${excerpt}, locked_until = null, claimed_by = null`;
    if (ok) {
      await this.db.execute(sql`update ${billingEvents} set status = 'succeeded', completed_at = now(), ${record} where id = ${row.id}`);
      this.counts.succeeded++;
      return;
    }
    const delayS = retryDelayS(this.opts.retryScheduleS, row.attempts, retryAfterS);
    if (delayS !== null) {
      await this.db.execute(sql`update ${billingEvents} set next_attempt_at = now() + make_interval(secs => ${delayS}), ${record} where id = ${row.id}`);
      this.counts.retrying++;
      this.logger.debug({ billingEventId: row.id, type: row.type, attempts: row.attempts, statusCode, error }, 'billing webhook attempt failed; retrying');
      return;
    }
    await this.db.execute(sql`update ${billingEvents} set status = 'failed', completed_at = now(), ${record} where id = ${row.id}`);
    this.counts.failed++;
    this.logger.error(
      { billingEventId: row.id, type: row.type, tenantId: row.user_id, attempts: row.attempts, statusCode, error },
      'billing webhook delivery failed for good; POST /admin/billing-events/:id/replay sends it again',
    );
  }
}
