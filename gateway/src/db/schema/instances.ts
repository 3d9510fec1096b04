import { pgEnum, pgTable, integer, text, timestamp, index, boolean, uniqueIndex, jsonb } from 'drizzle-orm/pg-core';
import { users } from './users';
import { nodes } from './nodes';
import { SESSION_STATES } from '../../../../workers/protocol/frames';

export const PROVIDERS = ['whatsmeow', 'baileys', 'wawebjs', 'waba', 'sandbox'] as const;
/** The worker's lifecycle. */
export const INSTANCE_STATUSES = ['creating', 'starting', 'running', 'stopped', 'error', 'migrating'] as const;
/** The WhatsApp session's states: the protocol's list. */
export { SESSION_STATES } from '../../../../workers/protocol/frames';

export const providerEnum = pgEnum('provider', PROVIDERS);
export const instanceStatusEnum = pgEnum('instance_status', INSTANCE_STATUSES);
export const sessionStateEnum = pgEnum('session_state', SESSION_STATES);
/** Whether the instance should have a worker; the supervisor makes it so. */
export const desiredStateEnum = pgEnum('desired_state', ['running', 'stopped']);

/**
 * One WhatsApp number. `status` and `state` are kept apart (see
 * docs/architecture.md), each with the reason and time of its last change.
 * Deleting a user or a node that still has instances is refused (RESTRICT).
 */
export const instances = pgTable(
  'instances',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'restrict' }),
    nodeId: integer('node_id').references(() => nodes.id, { onDelete: 'restrict' }),
    /** While a migration runs: the node it moves to. Its limits count there too, so the slot stays reserved. */
    targetNodeId: integer('target_node_id').references(() => nodes.id, { onDelete: 'restrict' }),
    /** The gateway process running the move; a move whose owner died is abandoned (claims/owner.ts). */
    moveOwner: integer('move_owner'),
    /**
     * The gateway process (claims/owner.ts id) running an exclusive operation on the
     * instance (a migrate or a delete): one at a time across every replica; a dead
     * owner's claim is free (see docs/architecture.md, "Gateway replicas").
     */
    opOwner: integer('op_owner'),
    /** The gateway process holding the worker's socket (set at its hello, cleared when it closes); null: none. */
    workerOwner: integer('worker_owner'),
    /** Which socket of that process (random id): a late close of an older socket clears nothing. */
    workerSocket: text('worker_socket'),
    /** The gateway process that started the current worker (its process-engine parent); null: none. */
    startedBy: integer('started_by'),
    name: text('name'),
    phoneNumber: text('phone_number').notNull(),
    provider: providerEnum('provider').notNull(),
    webhookUrl: text('webhook_url'),
    status: instanceStatusEnum('status').notNull().default('creating'),
    statusReason: text('status_reason'),
    statusChangedAt: timestamp('status_changed_at', { withTimezone: true }).notNull().defaultNow(),
    state: sessionStateEnum('state').notNull().default('starting'),
    stateReason: text('state_reason'),
    stateChangedAt: timestamp('state_changed_at', { withTimezone: true }).notNull().defaultNow(),
    desiredState: desiredStateEnum('desired_state').notNull().default('running'),
    /** True from the first `connected` until `logged_out`: sends queue while it is true. */
    paired: boolean('paired').notNull().default(false),
    /** The last QR the worker reported, so any replica can serve it. */
    qrCode: text('qr_code'),
    qrExpiresAt: timestamp('qr_expires_at', { withTimezone: true }),
    /** SHA-256 of the token given to the current worker; replaced at every worker start. */
    workerTokenHash: text('worker_token_hash'),
    /** Cores as the API gave them, e.g. "0.5". */
    cpuLimit: text('cpu_limit'),
    /** Size string as the API gave it, e.g. "512m". */
    memoryLimit: text('memory_limit'),
    /** Paced sending (anti-ban): the instance's own settings; null: the defaults for its age (see pacing/). */
    pacing: jsonb('pacing').$type<Record<string, unknown>>(),
    /** The earliest time the next paced send may leave: advanced atomically as sends are scheduled. */
    paceCursor: timestamp('pace_cursor', { withTimezone: true }),
    /** Sending paused (a provider's rate limit or block, or by hand) until then; null: not paused. */
    pausedUntil: timestamp('paused_until', { withTimezone: true }),
    pausedReason: text('paused_reason'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('instances_user_id_idx').on(t.userId),
    index('instances_node_id_idx').on(t.nodeId),
    uniqueIndex('instances_user_phone_key').on(t.userId, t.phoneNumber),
    // The sandbox network finds recipients by phone across tenants.
    index('instances_phone_idx').on(t.phoneNumber),
  ],
);

export type Instance = typeof instances.$inferSelect;
export type Provider = (typeof PROVIDERS)[number];
