import { customType, index, integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import { instances } from './instances';

const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => 'bytea' });

/**
 * Media received by an instance: stored by the gateway, in Postgres, so every
 * replica serves it (GET /api/instances/:id/media/:mediaId); events and
 * webhooks carry only its URL.
 */
export const media = pgTable(
  'media',
  {
    id: text('id').primaryKey(),
    instanceId: integer('instance_id')
      .notNull()
      .references(() => instances.id, { onDelete: 'cascade' }),
    mimetype: text('mimetype').notNull(),
    filename: text('filename'),
    size: integer('size').notNull(),
    data: bytea('data').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('media_instance_idx').on(t.instanceId),
    // Retention: media by age.
    index('media_created_idx').on(t.createdAt),
  ],
);

export type MediaRow = typeof media.$inferSelect;
