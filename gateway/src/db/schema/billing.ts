import { sql } from 'drizzle-orm';
import { bigint, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { deliveryStatusEnum } from './webhooks';

/**
 * The operator's billing outbox: one row per billing event (usage.threshold,
 * usage.period_closed, instance.created, instance.deleted), delivered to the
 * one BILLING_WEBHOOK_URL, so the row is its own delivery (the same states as
 * `webhook_deliveries`). Written in the transaction of what causes it where
 * there is one; `source` makes every producer idempotent. No foreign keys:
 * a billing event outlives its instance (instance.deleted) and its tenant.
 */
export const billingEvents = pgTable(
  'billing_events',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    type: text('type').notNull(),
    /** The tenant (users.id), and its email when the event was recorded. */
    userId: integer('user_id').notNull(),
    tenantEmail: text('tenant_email'),
    data: jsonb('data').$type<Record<string, unknown>>().notNull(),
    /** Unique per billed fact, e.g. `instance.created:12`, `threshold:3:messagesPerMonth:80:2026-11`, `period:3:2026-11`. */
    source: text('source').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    status: deliveryStatusEnum('status').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }).notNull().defaultNow(),
    lockedUntil: timestamp('locked_until', { withTimezone: true }),
    /** The gateway process holding the claim (claims/owner.ts). */
    claimedBy: integer('claimed_by'),
    lastStatusCode: integer('last_status_code'),
    lastLatencyMs: integer('last_latency_ms'),
    lastError: text('last_error'),
    responseExcerpt: text('response_excerpt'),
    completedAt: timestamp('completed_at', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('billing_events_source_key').on(t.source),
    // The dispatcher: pending rows by due time.
    index('billing_events_due_idx').on(t.nextAttemptAt).where(sql`${t.status} = 'pending'`),
    // Has this period been closed already (usage.period_closed by creation time).
    index('billing_events_type_created_idx').on(t.type, t.createdAt),
  ],
);

export type BillingEventRow = typeof billingEvents.$inferSelect;
