import { pgEnum, pgTable, integer, text, timestamp, jsonb, bigint } from 'drizzle-orm/pg-core';

export const ENGINES = ['process', 'docker', 'swarm'] as const;
export const NODE_STATUSES = ['unknown', 'ready', 'unreachable'] as const;

export const engineEnum = pgEnum('engine', ENGINES);
export const nodeStatusEnum = pgEnum('node_status', NODE_STATUSES);

/** Places where workers run: one engine endpoint each. */
export const nodes = pgTable('nodes', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  name: text('name').notNull().unique(),
  engine: engineEnum('engine').notNull(),
  endpoint: text('endpoint').notNull(),
  publicHost: text('public_host'),
  /** Docker network for worker containers; null = host networking. */
  network: text('network'),
  labels: jsonb('labels').$type<Record<string, string>>().notNull().default({}),
  /** Configured capacity; null means "use what the engine reports". */
  capacityMillicpu: integer('capacity_millicpu'),
  capacityMemoryBytes: bigint('capacity_memory_bytes', { mode: 'number' }),
  /** What the last health check read off the node (CPUs, memory). */
  reportedMillicpu: integer('reported_millicpu'),
  reportedMemoryBytes: bigint('reported_memory_bytes', { mode: 'number' }),
  /** Docker Engine version and running wgs worker containers, from the last health check. */
  reportedVersion: text('reported_version'),
  reportedWorkers: integer('reported_workers'),
  /** TLS client certificate for a tcp:// Docker endpoint (PEM); the key is sealed with the gateway's secret key. */
  tlsCa: text('tls_ca'),
  tlsCert: text('tls_cert'),
  tlsKeyEncrypted: text('tls_key_encrypted'),
  /** SSH login for an ssh:// Docker endpoint: the private key (and passphrase), sealed as JSON; the host key's SHA256 fingerprint. */
  sshKeyEncrypted: text('ssh_key_encrypted'),
  sshHostKey: text('ssh_host_key'),
  /** Set while the node is drained: nothing new is placed there and its instances move off. */
  drainingSince: timestamp('draining_since', { withTimezone: true }),
  /** The gateway process driving the drain; another takes over once it is dead (claims/owner.ts). */
  drainOwner: integer('drain_owner'),
  /** Why the node is unreachable, from the last health check. */
  statusReason: text('status_reason'),
  status: nodeStatusEnum('status').notNull().default('unknown'),
  lastSeenAt: timestamp('last_seen_at', { withTimezone: true }),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

export type Node = typeof nodes.$inferSelect;
export type Engine = (typeof ENGINES)[number];
