import { sql } from 'drizzle-orm';
import { customType, pgTable, integer, text, timestamp, jsonb, bigint, index, uniqueIndex } from 'drizzle-orm/pg-core';
import { instances } from './instances';

/** Postgres' 64-bit transaction id (`xid8`), as text. */
const xid8 = customType<{ data: string; driverData: string }>({ dataType: () => 'xid8' });

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
    /**
     * The instance's tenant, copied in by the `events_owner` trigger on insert
     * (migration 0022; an instance never changes tenant): a tenant's pages
     * (GET /api/events) read their own index instead of the whole log.
     */
    userId: integer('user_id'),
    workerEventId: text('worker_event_id'),
    type: text('type').notNull(),
    data: jsonb('data').$type<Record<string, unknown>>().notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    /**
     * The inserting transaction. Ids are taken when a row is inserted but seen
     * when its transaction commits, so a reader can meet id 52 before id 51;
     * polling pages order by `(tx, id)` and show only events of transactions
     * older than every one still running, which makes their cursor exact
     * (events/log.ts).
     */
    tx: xid8('tx').notNull().default(sql`pg_current_xact_id()`),
  },
  (t) => [
    uniqueIndex('events_instance_worker_event_key').on(t.instanceId, t.workerEventId),
    // Retention: events by age.
    index('events_created_idx').on(t.createdAt),
    // One instance's log in id order: stream replays and the REST pages (GET /api/instances/:id/events).
    index('events_instance_id_idx').on(t.instanceId, t.id),
    // The polling pages' order: one instance's (GET /api/instances/:id/events?after=) and the tenant's (GET /api/events?after=).
    index('events_instance_tx_idx').on(t.instanceId, t.tx, t.id),
    index('events_user_tx_idx').on(t.userId, t.tx, t.id),
    // A tenant's history (GET /api/events) and stream replays.
    index('events_user_id_idx').on(t.userId, t.id),
    // Replies, reactions and read receipts find a received message by its provider id.
    index('events_received_message_idx')
      .on(t.instanceId, sql`(${t.data}->>'id')`)
      .where(sql`${t.type} = 'message.received'`),
  ],
);

export type EventRow = typeof events.$inferSelect;
