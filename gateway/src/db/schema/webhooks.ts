import { sql } from 'drizzle-orm';
import { pgEnum, pgTable, integer, text, timestamp, boolean, bigint, index } from 'drizzle-orm/pg-core';
import { instances } from './instances';
import { events } from './events';

/** A customer endpoint subscribed to an instance's events. */
export const webhooks = pgTable(
  'webhooks',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    instanceId: integer('instance_id')
      .notNull()
      .references(() => instances.id, { onDelete: 'cascade' }),
    url: text('url').notNull(),
    /** Event types to deliver; null = all. */
    events: text('events').array(),
    enabled: boolean('enabled').notNull().default(true),
    disabledReason: text('disabled_reason'),
    /** The `whsec_` signing secret, AES-256-GCM encrypted (lib/secret-box.ts). */
    secretEncrypted: text('secret_encrypted').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('webhooks_instance_idx').on(t.instanceId)],
);

export const DELIVERY_STATUSES = ['pending', 'succeeded', 'failed'] as const;
export const deliveryStatusEnum = pgEnum('delivery_status', DELIVERY_STATUSES);

/**
 * The outbox: one row per (subscription, event), written by a trigger on
 * `events` in the transaction that records the event.
 */
export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    webhookId: integer('webhook_id')
      .notNull()
      .references(() => webhooks.id, { onDelete: 'cascade' }),
    eventId: bigint('event_id', { mode: 'number' })
      .notNull()
      .references(() => events.id, { onDelete: 'cascade' }),
    status: deliveryStatusEnum('status').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }).notNull().defaultNow(),
    /** A dispatcher holds the delivery until then; another may take it after. */
    lockedUntil: timestamp('locked_until', { withTimezone: true }),
    /** The gateway process holding the claim: once it is dead, the delivery is claimable at once (claims/owner.ts). */
    claimedBy: integer('claimed_by'),
    lastStatusCode: integer('last_status_code'),
    lastLatencyMs: integer('last_latency_ms'),
    lastError: text('last_error'),
    /** The first bytes of the receiver's last answer. */
    responseExcerpt: text('response_excerpt'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    completedAt: timestamp('completed_at', { withTimezone: true }),
  },
  (t) => [
    index('webhook_deliveries_due_idx').on(t.status, t.nextAttemptAt),
    index('webhook_deliveries_webhook_idx').on(t.webhookId, t.id),
    // Metrics: the outbox depth and its oldest entry.
    index('webhook_deliveries_pending_idx').on(t.createdAt).where(sql`${t.status} = 'pending'`),
    // Retention: an event still pending delivery is kept; deleting an event cascades here.
    index('webhook_deliveries_event_idx').on(t.eventId),
    // Retention: finished deliveries by age.
    index('webhook_deliveries_completed_idx').on(t.completedAt).where(sql`${t.status} <> 'pending'`),
  ],
);

export type Webhook = typeof webhooks.$inferSelect;
export type WebhookDelivery = typeof webhookDeliveries.$inferSelect;
