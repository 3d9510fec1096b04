import { sql } from 'drizzle-orm';
import { bigint, boolean, index, integer, pgTable, primaryKey, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

/**
 * What a tenant may use: instance seats, monthly message and media quotas,
 * its API rate limit, the providers and features it may use. A null limit is
 * unlimited; a null list allows everything. Exactly one plan is the default
 * (users without a plan get it); migration 0014 makes one, unlimited.
 */
export const plans = pgTable(
  'plans',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    name: text('name').notNull(),
    isDefault: boolean('is_default').notNull().default(false),
    maxInstances: integer('max_instances'),
    messagesPerMonth: bigint('messages_per_month', { mode: 'number' }),
    mediaBytesPerMonth: bigint('media_bytes_per_month', { mode: 'number' }),
    /** API requests per minute per API key, and per tenant (all its keys). */
    rateLimitPerKey: integer('rate_limit_per_key'),
    rateLimitPerTenant: integer('rate_limit_per_tenant'),
    allowedProviders: text('allowed_providers').array(),
    features: text('features').array(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('plans_name_lower_key').on(sql`lower(${t.name})`),
    uniqueIndex('plans_one_default_key').on(t.isDefault).where(sql`${t.isDefault}`),
  ],
);

export const USAGE_METRICS = ['messages_sent', 'messages_received', 'media_bytes', 'instance_seconds', 'webhook_deliveries'] as const;
export type UsageMetric = (typeof USAGE_METRICS)[number];

/**
 * The usage ledger: append-only, one row per counted thing, written in the
 * transaction that does the thing. `source` makes it idempotent (the same
 * source event counts once). `instanceId` has no foreign key: usage outlives
 * a deleted instance.
 */
export const usageLedger = pgTable(
  'usage_ledger',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    userId: integer('user_id').notNull(),
    instanceId: integer('instance_id'),
    metric: text('metric').$type<UsageMetric>().notNull(),
    provider: text('provider'),
    quantity: bigint('quantity', { mode: 'number' }).notNull(),
    source: text('source').notNull(),
    occurredAt: timestamp('occurred_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('usage_ledger_source_key').on(t.source),
    index('usage_ledger_user_metric_time_idx').on(t.userId, t.metric, t.occurredAt),
    index('usage_ledger_time_idx').on(t.occurredAt),
  ],
);

/**
 * API rate limits shared by every replica: fixed one-minute windows, one row
 * per key (`key:<apiKeyId>`, `tenant:<userId>`) and window, counted with one
 * upsert per request. Rows of past windows are pruned.
 */
export const rateLimitWindows = pgTable(
  'rate_limit_windows',
  {
    key: text('key').notNull(),
    windowStart: timestamp('window_start', { withTimezone: true }).notNull(),
    count: integer('count').notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.key, t.windowStart] }), index('rate_limit_windows_start_idx').on(t.windowStart)],
);

export type Plan = typeof plans.$inferSelect;
export type UsageRow = typeof usageLedger.$inferSelect;
