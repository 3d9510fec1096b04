import { integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * Gateway replicas that have started on this database, by their liveness id
 * (claims/owner.ts). A row says who a replica is (GATEWAY_REPLICA_ID, the URL
 * its workers dial); whether it lives is its liveness lock, never the row,
 * and which replica leads is the leader lock (claims/leader.ts). Rows of
 * dead replicas are pruned by the leader after a day.
 */
export const gatewayReplicas = pgTable('gateway_replicas', {
  ownerId: integer('owner_id').primaryKey(),
  replicaId: text('replica_id').notNull(),
  workerUrl: text('worker_url').notNull(),
  startedAt: timestamp('started_at', { withTimezone: true }).notNull().defaultNow(),
});

export type GatewayReplica = typeof gatewayReplicas.$inferSelect;
