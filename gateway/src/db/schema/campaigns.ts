import { index, integer, pgEnum, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import { instances } from './instances';
import { users } from './users';

export const CAMPAIGN_STATUSES = ['running', 'completed', 'cancelled'] as const;
export const campaignStatusEnum = pgEnum('campaign_status', CAMPAIGN_STATUSES);

/**
 * A bulk send: many messages from one number, queued at once and paced.
 * Progress is its messages' statuses (`messages.campaign_id`); see
 * docs/architecture.md, "Campaigns".
 */
export const campaigns = pgTable(
  'campaigns',
  {
    id: text('id').primaryKey(),
    instanceId: integer('instance_id')
      .notNull()
      .references(() => instances.id, { onDelete: 'cascade' }),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    name: text('name'),
    status: campaignStatusEnum('status').notNull().default('running'),
    total: integer('total').notNull(),
    /** When the first and the last message are due (their reserved slots). */
    firstAt: timestamp('first_at', { withTimezone: true }).notNull(),
    lastAt: timestamp('last_at', { withTimezone: true }).notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    cancelledAt: timestamp('cancelled_at', { withTimezone: true }),
    completedAt: timestamp('completed_at', { withTimezone: true }),
  },
  (t) => [index('campaigns_instance_idx').on(t.instanceId, t.createdAt), index('campaigns_user_idx').on(t.userId)],
);

export type Campaign = typeof campaigns.$inferSelect;
