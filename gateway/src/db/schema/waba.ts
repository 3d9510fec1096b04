import { index, integer, jsonb, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { instances } from './instances';
import { users } from './users';

/**
 * The Cloud API account of a `waba` instance: Meta's ids in the clear (the
 * inbound webhook routes by phone number id), the secrets sealed with the
 * gateway's key (SecretBox) and never returned by the API. `templates` is
 * the last copy of the WABA's message templates (GET …/templates).
 */
export const wabaAccounts = pgTable(
  'waba_accounts',
  {
    instanceId: integer('instance_id')
      .primaryKey()
      .references(() => instances.id, { onDelete: 'cascade' }),
    /** The instance's tenant, so one tenant's numbers are found by phone number id without a join. */
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'restrict' }),
    phoneNumberId: text('phone_number_id').notNull(),
    wabaId: text('waba_id').notNull(),
    accessTokenSealed: text('access_token_sealed').notNull(),
    /** Shown in place of the token: its last 4 characters. */
    accessTokenLast4: text('access_token_last4').notNull(),
    appSecretSealed: text('app_secret_sealed').notNull(),
    verifyTokenSealed: text('verify_token_sealed').notNull(),
    templates: jsonb('templates').$type<unknown[]>(),
    templatesSyncedAt: timestamp('templates_synced_at', { withTimezone: true }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    // One tenant cannot have two instances for one Cloud API number: inbound webhooks would not know which to feed.
    uniqueIndex('waba_accounts_user_phone_number_id_key').on(t.userId, t.phoneNumberId),
    index('waba_accounts_phone_number_id_idx').on(t.phoneNumberId),
  ],
);

export type WabaAccount = typeof wabaAccounts.$inferSelect;
