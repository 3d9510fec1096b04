import { pgTable, integer, text, timestamp, index } from 'drizzle-orm/pg-core';
import { users } from './users';

/**
 * A tenant's API keys. Only the SHA-256 of a key is stored; `prefix` is its
 * first characters, enough for a person to tell keys apart.
 */
export const apiKeys = pgTable(
  'api_keys',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    prefix: text('prefix').notNull(),
    hash: text('hash').notNull().unique(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
  },
  (t) => [index('api_keys_user_id_idx').on(t.userId)],
);

export type ApiKey = typeof apiKeys.$inferSelect;
