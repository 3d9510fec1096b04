import { randomBytes } from 'node:crypto';
import { and, eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { messages, type Message, type MessageStatus } from '../db/schema';

export function newMessageId(): string {
  return `msg_${randomBytes(12).toString('hex')}`;
}

/** Statuses a message may move to from each status: forward only. */
const EARLIER: Record<Exclude<MessageStatus, 'queued'>, MessageStatus[]> = {
  sent: ['queued'],
  delivered: ['queued', 'sent'],
  read: ['queued', 'sent', 'delivered'],
  failed: ['queued'],
};

const TIMESTAMP_COLUMN = {
  sent: 'sentAt',
  delivered: 'deliveredAt',
  read: 'readAt',
  failed: 'failedAt',
} as const;

/**
 * Moves a message forward (queued → sent → delivered → read, or queued →
 * failed); receipts arriving late or twice change nothing.
 */
export async function advanceMessage(
  db: Db,
  instanceId: number,
  messageId: string,
  status: Exclude<MessageStatus, 'queued'>,
  extra: { providerMessageId?: string; error?: string; at?: Date } = {},
): Promise<boolean> {
  const at = extra.at ?? new Date();
  const atSql = sql`${at.toISOString()}::timestamptz`;
  const updated = await db
    .update(messages)
    .set({
      status,
      [TIMESTAMP_COLUMN[status]]: at,
      // A receipt that overtakes an earlier one still leaves every earlier time set.
      ...(status === 'delivered' && { sentAt: sql`coalesce(${messages.sentAt}, ${atSql})` }),
      ...(status === 'read' && { sentAt: sql`coalesce(${messages.sentAt}, ${atSql})`, deliveredAt: sql`coalesce(${messages.deliveredAt}, ${atSql})` }),
      ...(extra.providerMessageId && { providerMessageId: extra.providerMessageId }),
      ...(extra.error && { error: extra.error }),
    })
    .where(and(eq(messages.id, messageId), eq(messages.instanceId, instanceId), inArray(messages.status, EARLIER[status])))
    .returning({ id: messages.id });
  return updated.length > 0;
}

export function toMessageView(m: Message) {
  return {
    id: m.id,
    to: m.to,
    type: m.type,
    status: m.status,
    ...(m.error && { error: m.error }),
    timestamps: {
      createdAt: m.createdAt,
      sentAt: m.sentAt,
      deliveredAt: m.deliveredAt,
      readAt: m.readAt,
      failedAt: m.failedAt,
    },
  };
}
