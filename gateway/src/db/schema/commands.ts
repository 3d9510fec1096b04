import { sql } from 'drizzle-orm';
import { pgEnum, pgTable, integer, text, timestamp, jsonb, index } from 'drizzle-orm/pg-core';
import { instances } from './instances';

export const COMMAND_STATUSES = ['pending', 'done', 'failed'] as const;
export const commandStatusEnum = pgEnum('command_status', COMMAND_STATUSES);

/**
 * The durable command queue: a command stays `pending` until its worker
 * answers, and is sent again every time the worker says hello.
 */
export const commands = pgTable(
  'commands',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    instanceId: integer('instance_id')
      .notNull()
      .references(() => instances.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    args: jsonb('args').$type<Record<string, unknown>>().notNull(),
    status: commandStatusEnum('status').notNull().default('pending'),
    result: jsonb('result').$type<Record<string, unknown>>(),
    errorCode: text('error_code'),
    errorMessage: text('error_message'),
    attempts: integer('attempts').notNull().default(0),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    sentAt: timestamp('sent_at', { withTimezone: true }),
    completedAt: timestamp('completed_at', { withTimezone: true }),
    /** A paced (scheduled) command goes to its worker no earlier than this; null: at once. */
    notBefore: timestamp('not_before', { withTimezone: true }),
  },
  (t) => [
    index('commands_instance_status_idx').on(t.instanceId, t.status, t.id),
    // Metrics: pending commands by name and the oldest one, without reading done ones.
    index('commands_pending_idx').on(t.name, t.createdAt).where(sql`${t.status} = 'pending'`),
    // Pacing: due scheduled commands, and an instance's sends per window.
    index('commands_scheduled_idx').on(t.notBefore).where(sql`${t.status} = 'pending' and ${t.notBefore} is not null`),
    index('commands_instance_paced_idx').on(t.instanceId, t.notBefore).where(sql`${t.notBefore} is not null`),
    // Retention: finished commands by age.
    index('commands_completed_idx').on(t.completedAt).where(sql`${t.status} <> 'pending'`),
  ],
);

export type Command = typeof commands.$inferSelect;
