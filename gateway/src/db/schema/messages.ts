import { sql } from 'drizzle-orm';
import { index, pgEnum, pgTable, integer, smallint, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { instances } from './instances';
import { commands } from './commands';
import { campaigns } from './campaigns';
import { MESSAGE_STATUSES } from '../../../../workers/protocol/frames';

export { MESSAGE_STATUSES } from '../../../../workers/protocol/frames';
export const messageStatusEnum = pgEnum('message_status', MESSAGE_STATUSES);

/** Outgoing messages and how far they got. */
export const messages = pgTable(
  'messages',
  {
    id: text('id').primaryKey(),
    instanceId: integer('instance_id')
      .notNull()
      .references(() => instances.id, { onDelete: 'cascade' }),
    commandId: integer('command_id').references(() => commands.id, { onDelete: 'set null' }),
    to: text('to').notNull(),
    type: text('type').notNull(),
    text: text('text'),
    status: messageStatusEnum('status').notNull().default('queued'),
    error: text('error'),
    providerMessageId: text('provider_message_id'),
    idempotencyKey: text('idempotency_key'),
    /** The campaign (bulk send) this message belongs to; null for single sends. */
    campaignId: text('campaign_id').references(() => campaigns.id, { onDelete: 'cascade' }),
    /** Times a provider's rate limit sent it back to the queue (pacing/requeue.ts); past the limit it fails. */
    requeues: smallint('requeues').notNull().default(0),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    sentAt: timestamp('sent_at', { withTimezone: true }),
    deliveredAt: timestamp('delivered_at', { withTimezone: true }),
    readAt: timestamp('read_at', { withTimezone: true }),
    failedAt: timestamp('failed_at', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('messages_instance_idempotency_key').on(t.instanceId, t.idempotencyKey),
    // Retention: pruning a command sets its messages' command_id to null (ON DELETE SET NULL);
    // without this index every pruned command would scan the whole table.
    index('messages_command_idx').on(t.commandId),
    // A campaign's progress: its messages grouped by status.
    index('messages_campaign_idx').on(t.campaignId, t.status).where(sql`${t.campaignId} is not null`),
    // An instance's recent messages, newest first (GET /api/instances/:id/messages).
    index('messages_instance_created_idx').on(t.instanceId, t.createdAt),
  ],
);

export type Message = typeof messages.$inferSelect;
export type MessageStatus = (typeof MESSAGE_STATUSES)[number];
