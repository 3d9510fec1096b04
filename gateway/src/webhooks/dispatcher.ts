import { Webhook as Signer } from 'standardwebhooks';
import { GatewayMetrics } from '../metrics/metrics';
import { eq, sql } from 'drizzle-orm';
import type { Sql } from 'postgres';
import type { Db } from '../db/client';
import { events, instances, usageLedger, webhookDeliveries, webhooks } from '../db/schema';
import type { Logger } from '../logging/logger';
import type { SecretBox } from '../lib/secret-box';
import { refuseDestination } from './destination';
import { dueOutboxRows, OutboxLoop } from './outbox-loop';
import { liveOwners } from '../claims/owner';

export interface DispatcherOptions {
  /** Seconds before each attempt: [0, 5, 300, ...]; its length is the number of attempts. */
  retryScheduleS: number[];
  allowPrivateNetworks: boolean;
  timeoutMs: number;
  /** Deliveries claimed per round. */
  batchSize?: number;
  /** How often to look for due retries when no NOTIFY came. */
  pollMs?: number;
  /** This gateway process's id (claims/owner.ts): what its claims record. */
  ownerId: number;
  /** Where deliveries are counted; a private registry when not given. */
  metrics?: GatewayMetrics;
}

export type DeliveryOutcome = 'succeeded' | 'retrying' | 'failed' | 'disabled';

const EXCERPT_BYTES = 256;
/**
 * A claim is another dispatcher's to take at once when its owner is dead, and
 * after this long past the delivery's own timeout when the owner is alive but
 * hung (the fallback).
 */
const LEASE_MARGIN_S = 30;

interface Claimed {
  id: number;
  attempts: number;
  webhook_id: number;
  url: string;
  secret_encrypted: string;
  event_id: number;
  instance_id: number;
  /** The instance's user: for log lines and the usage ledger. */
  tenant_id: number;
  provider: string;
  type: string;
  data: Record<string, unknown>;
  created_at: string;
}

/**
 * Delivers the outbox (`webhook_deliveries`): claims due rows with
 * `FOR UPDATE SKIP LOCKED` (replicas never take the same one), posts them
 * signed per Standard Webhooks, and records the outcome: 2xx succeeds,
 * `410 Gone` disables the subscription, anything else is retried on the
 * schedule (with jitter, at least `Retry-After`) until it runs out, which
 * fails the delivery and records a `webhook.failed` event.
 */
export class WebhookDispatcher {
  /** Hook point for metrics: deliveries by outcome. */
  readonly counts: Record<DeliveryOutcome, number> = { succeeded: 0, retrying: 0, failed: 0, disabled: 0 };
  private readonly loop: OutboxLoop;

  constructor(
    private readonly db: Db,
    private readonly sql: Sql,
    private readonly box: SecretBox,
    private readonly logger: Logger,
    private readonly opts: DispatcherOptions,
  ) {
    this.leaseS = Math.ceil(opts.timeoutMs / 1000) + LEASE_MARGIN_S;
    this.metrics = opts.metrics ?? new GatewayMetrics({ defaults: false });
    this.loop = new OutboxLoop(sql, 'wgs_webhook_deliveries', () => this.round(), logger, opts.pollMs ?? 1000);
  }

  private readonly metrics: GatewayMetrics;

  /** Seconds a claim lasts when its owner lives: the delivery's timeout plus a margin. */
  readonly leaseS: number;

  start(): Promise<void> {
    return this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** Claims and delivers one batch of due deliveries; returns how many. */
  async round(): Promise<number> {
    const rows = (await this.db.execute(sql`
      with live as materialized ${liveOwners}, due as (${dueOutboxRows(webhookDeliveries, this.opts.batchSize ?? 100)}), claimed as (
        update ${webhookDeliveries} d
        set locked_until = now() + make_interval(secs => ${this.leaseS}), claimed_by = ${this.opts.ownerId}, attempts = d.attempts + 1
        from due where d.id = due.id
        returning d.id, d.attempts, d.webhook_id, d.event_id
      )
      select c.id, c.attempts, c.webhook_id, w.url, w.secret_encrypted, c.event_id,
             e.instance_id, i.user_id as tenant_id, i.provider, e.type, e.data, e.created_at
      from claimed c join ${webhooks} w on w.id = c.webhook_id join ${events} e on e.id = c.event_id
        join ${instances} i on i.id = e.instance_id
      order by c.id`)) as unknown as Claimed[];
    // bigint columns arrive as strings from the raw query
    for (const row of rows) {
      row.id = Number(row.id);
      row.event_id = Number(row.event_id);
    }
    await Promise.all(rows.map((row) => this.deliver(row)));
    return rows.length;
  }

  private async deliver(row: Claimed): Promise<void> {
    const body = JSON.stringify({ instance: row.instance_id, timestamp: new Date(row.created_at).toISOString(), type: row.type, data: row.data });
    const { statusCode, error, excerpt, retryAfterS, latencyMs } = await postSigned(row.url, () => this.box.open(row.secret_encrypted), `evt_${row.event_id}`, body, this.opts);
    this.metrics.webhookDeliveries.inc({ outcome: attemptOutcome(statusCode, error) });
    const record = { lastStatusCode: statusCode, lastLatencyMs: latencyMs, lastError: error, responseExcerpt: excerpt, lockedUntil: null, claimedBy: null };

    if (statusCode !== null && statusCode >= 200 && statusCode < 300) {
      // Succeeded and counted in the usage ledger (`delivery:<id>`, once however often it is delivered) in one statement.
      await this.db.execute(sql`
        with done as (
          update ${webhookDeliveries} set status = 'succeeded', completed_at = now(), last_status_code = ${statusCode}, last_latency_ms = ${latencyMs},
            last_error = ${error}, response_excerpt = ${excerpt}, locked_until = null, claimed_by = null
          where id = ${row.id} returning id)
        insert into ${usageLedger} (user_id, instance_id, metric, provider, quantity, source)
        select ${row.tenant_id}::int, ${row.instance_id}::int, 'webhook_deliveries', ${row.provider}::text, 1, 'delivery:' || done.id from done
        on conflict (source) do nothing`);
      this.counts.succeeded++;
      this.metrics.webhookLatency.observe(Math.max(0, (Date.now() - new Date(row.created_at).getTime()) / 1000));
      return;
    }
    if (statusCode === 410) {
      await this.db.transaction(async (tx) => {
        await tx.update(webhookDeliveries).set({ ...record, status: 'failed', completedAt: sql`now()` }).where(eq(webhookDeliveries.id, row.id));
        await tx
          .update(webhooks)
          .set({ enabled: false, disabledReason: `the receiver answered 410 Gone at ${new Date().toISOString()}`, updatedAt: sql`now()` })
          .where(eq(webhooks.id, row.webhook_id));
      });
      this.counts.disabled++;
      return;
    }
    const delayS = retryDelayS(this.opts.retryScheduleS, row.attempts, retryAfterS);
    if (delayS !== null) {
      await this.db
        .update(webhookDeliveries)
        .set({ ...record, nextAttemptAt: sql`now() + make_interval(secs => ${delayS})` })
        .where(eq(webhookDeliveries.id, row.id));
      this.counts.retrying++;
      return;
    }
    await this.db.transaction(async (tx) => {
      await tx.update(webhookDeliveries).set({ ...record, status: 'failed', completedAt: sql`now()` }).where(eq(webhookDeliveries.id, row.id));
      await tx.insert(events).values({
        instanceId: row.instance_id,
        type: 'webhook.failed',
        data: { webhookId: row.webhook_id, deliveryId: row.id, eventId: row.event_id, eventType: row.type, attempts: row.attempts, lastStatusCode: statusCode, lastError: error },
      });
    });
    this.counts.failed++;
    this.metrics.webhookGivenUp.inc();
    this.logger.warn(
      { instanceId: row.instance_id, tenantId: row.tenant_id, webhookId: row.webhook_id, deliveryId: row.id, attempts: row.attempts },
      'webhook delivery failed for good',
    );
  }
}

export interface Attempt {
  statusCode: number | null;
  error: string | null;
  /** The first bytes of the answer. */
  excerpt: string | null;
  retryAfterS: number;
  latencyMs: number;
}

/**
 * One signed POST per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
 * `webhook-signature` over id.timestamp.body), after the SSRF check; no
 * redirects followed. Used for customer and billing webhooks alike.
 */
export async function postSigned(
  url: string,
  /** The `whsec_` secret; a throw (a secret that cannot be opened) is recorded as the attempt's error. */
  secret: () => string,
  messageId: string,
  body: string,
  opts: { allowPrivateNetworks: boolean; timeoutMs: number },
): Promise<Attempt> {
  const refused = await refuseDestination(url, opts.allowPrivateNetworks);
  let statusCode: number | null = null;
  let error: string | null = null;
  let excerpt: string | null = null;
  let retryAfterS = 0;
  const started = performance.now();
  if (refused) {
    error = `destination refused: ${url} ${refused}`;
  } else {
    const now = new Date();
    try {
      const signature = new Signer(secret()).sign(messageId, now, body);
      const res = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'wgs-webhooks/1',
          'webhook-id': messageId,
          'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
          'webhook-signature': signature,
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(opts.timeoutMs),
      });
      statusCode = res.status;
      excerpt = (await readExcerpt(res)) || null;
      retryAfterS = parseRetryAfter(res.headers.get('retry-after'));
    } catch (err) {
      error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    }
  }
  return { statusCode, error, excerpt, retryAfterS, latencyMs: Math.round(performance.now() - started) };
}

/** Seconds until the next attempt after `attempts` made: the schedule's ±10 %, at least Retry-After; null when none is left. */
export function retryDelayS(schedule: number[], attempts: number, retryAfterS: number): number | null {
  if (attempts >= schedule.length) return null;
  return Math.max(schedule[attempts]! * (0.9 + Math.random() * 0.2), retryAfterS);
}

/**
 * One attempt as wgs_webhook_deliveries_total counts it: delivered (2xx),
 * gone (410: the subscription is disabled), failed (another status),
 * timeout (no answer within WEBHOOK_TIMEOUT_MS), error (no answer: refused
 * destination, DNS, connection refused or reset, TLS).
 */
export function attemptOutcome(statusCode: number | null, error: string | null): 'delivered' | 'gone' | 'failed' | 'timeout' | 'error' {
  if (statusCode !== null) return statusCode >= 200 && statusCode < 300 ? 'delivered' : statusCode === 410 ? 'gone' : 'failed';
  return error?.startsWith('TimeoutError') ? 'timeout' : 'error';
}

/** Seconds from a Retry-After header (delta-seconds or HTTP date); 0 when absent or bad; capped at a day. */
export function parseRetryAfter(value: string | null, now = Date.now()): number {
  if (!value) return 0;
  const seconds = /^\d+$/.test(value.trim()) ? Number(value.trim()) : (Date.parse(value) - now) / 1000;
  return Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 86_400) : 0;
}

/** The first bytes of a response body, without reading more than needed. */
async function readExcerpt(res: Response): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (size < EXCERPT_BYTES) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
  }
  await reader.cancel().catch(() => {});
  return new TextDecoder().decode(Buffer.concat(chunks).subarray(0, EXCERPT_BYTES));
}
