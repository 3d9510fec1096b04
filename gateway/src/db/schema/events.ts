import { sql } from 'drizzle-orm';
import { pgTable, integer, text, timestamp, jsonb, bigint, index, uniqueIndex } from 'drizzle-orm/pg-core';
import { instances } from './instances';

/**
 * Everything that happened to an instance, in order: what workers report
 * (`workerEventId` set, stored once) and what the gateway itself records
 * (`instance.status`). The webhook outbox is fed from here.
 */
export const events = pgTable(
  'events',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    instanceId: integer('instance_id')
      .notNull()
      .references(() => instances.id, { onDelete: 'cascade' }),
    workerEventId: text('worker_event_id'),
    type: text('type').notNull(),
    data: jsonb('data').$type<Record<string, unknown>>().notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('events_instance_worker_event_key').on(t.instanceId, t.workerEventId),
    // Retention: events by age.
    index('events_created_idx').on(t.createdAt),
    // One instance's log in id order: stream replays and the REST pages (GET /api/instances/:id/events).
    index('events_instance_id_idx').on(t.instanceId, t.id),
    // Replies, reactions and read receipts find a received message by its provider id.
    index('events_received_message_idx')
      .on(t.instanceId, sql`(${t.data}->>'id')`)
      .where(sql`${t.type} = 'message.received'`),
  ],
);

export type EventRow = typeof events.$inferSelect;
