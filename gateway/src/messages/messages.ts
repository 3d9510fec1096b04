import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { messages, type Message, type MessageStatus } from '../db/schema';
import { instanceUsageInsert } from '../usage/ledger';

export function newMessageId(): string {
  return `msg_${randomBytes(12).toString('hex')}`;
}

export interface Advance {
  messageId: string;
  status: Exclude<MessageStatus, 'queued'>;
  at: Date;
  providerMessageId?: string;
  error?: string;
  /** Bytes of inline media the send carried: counted as `media_bytes` once it is sent. */
  mediaBytes?: number;
}

/**
 * Moves messages forward (queued → sent → delivered → read, or queued →
 * failed) in one statement for any number of receipts; receipts arriving
 * late or twice change nothing. Several receipts for one message collapse into
 * its furthest status, with every earlier time filled in.
 */
export async function advanceMessages(db: Pick<Db, 'execute'>, instanceId: number, advances: Advance[]): Promise<void> {
  const merged = new Map<string, { times: Partial<Record<Advance['status'], Date>>; providerMessageId?: string; error?: string; mediaBytes?: number }>();
  for (const a of advances) {
    const m = merged.get(a.messageId) ?? { times: {} };
    m.times[a.status] ??= a.at;
    m.providerMessageId ??= a.providerMessageId;
    m.error ??= a.error;
    m.mediaBytes ??= a.mediaBytes;
    merged.set(a.messageId, m);
  }
  if (merged.size === 0) return;
  const rows = [...merged.entries()].map(([id, m]) => {
    const t = m.times;
    // The furthest status reached: a failure after `sent` counts (the Cloud API accepts, then fails), not after delivery.
    const status: Advance['status'] = t.read ? 'read' : t.delivered ? 'delivered' : t.failed ? 'failed' : 'sent';
    // A receipt that overtakes an earlier one still leaves every earlier time set.
    const read = t.read;
    const delivered = t.delivered ?? read;
    const sent = t.sent ?? delivered;
    const iso = (d?: Date) => (d ? d.toISOString() : null);
    const failedAt = status === 'failed' ? iso(t.failed) : null;
    return sql`(${id}, ${status}, ${iso(sent)}, ${iso(delivered)}, ${iso(read)}, ${failedAt}, ${m.providerMessageId ?? null}, ${m.error ?? null}, ${m.mediaBytes ?? 0}::bigint)`;
  });
  // Whether the receipt moves the message forward; only then do status and times change.
  const forward = sql`(case v.status when 'failed' then m.status in ('queued', 'sent')
           else m.status <> 'failed' and array_position(array['queued','sent','delivered','read'], m.status::text)
                                       < array_position(array['queued','sent','delivered','read'], v.status) end)`;
  const ifAdvancing = (column: string, value: ReturnType<typeof sql>) => sql`case when ${forward} then ${value} else ${sql.raw(`m.${column}`)} end`;
  // The usage ledger counts in the same statement: `sent:<id>` when a message goes out (its
  // sent time is set for the first time), `media-sent:<id>` for the inline media of a sent send.
  // The rows are locked first, in id order, and only locked rows are updated: a socket's results
  // and receipts are written side by side (workers/hub.ts) and often name the same messages, and
  // two statements locking them in their own orders deadlock (one fails after deadlock_timeout, 1 s).
  // Locked, `prev` also reads the latest sent time, so a message is counted by the first to set it.
  await db.execute(sql`
    with v(id, status, sent_at, delivered_at, read_at, failed_at, provider_message_id, error, media_bytes) as (
      values ${sql.join(rows, sql`, `)}
    ), prev as materialized (
      select m.id, m.sent_at from ${messages} m where m.instance_id = ${instanceId} and m.id in (select id from v)
      order by m.id for update
    ), upd as (
    update ${messages} as m set
      status = ${ifAdvancing('status', sql`v.status::message_status`)},
      sent_at = ${ifAdvancing('sent_at', sql`coalesce(m.sent_at, v.sent_at::timestamptz)`)},
      delivered_at = ${ifAdvancing('delivered_at', sql`coalesce(m.delivered_at, v.delivered_at::timestamptz)`)},
      read_at = ${ifAdvancing('read_at', sql`coalesce(m.read_at, v.read_at::timestamptz)`)},
      failed_at = ${ifAdvancing('failed_at', sql`coalesce(m.failed_at, v.failed_at::timestamptz)`)},
      error = ${ifAdvancing('error', sql`coalesce(v.error, m.error)`)},
      -- WhatsApp's id is kept whenever it comes: a worker may report the sent status before its result carries the id.
      provider_message_id = coalesce(v.provider_message_id, m.provider_message_id)
    from v join prev on prev.id = v.id
    where m.id = v.id and m.instance_id = ${instanceId}
      and (${forward} or (v.provider_message_id is not null and m.provider_message_id is distinct from v.provider_message_id))
    returning m.id, m.sent_at
    ), counted as (${instanceUsageInsert(
      instanceId,
      sql`select 'messages_sent', 1, 'sent:' || upd.id from upd join prev on prev.id = upd.id where prev.sent_at is null and upd.sent_at is not null
          union all
          select 'media_bytes', v.media_bytes, 'media-sent:' || v.id from v join prev on prev.id = v.id where v.media_bytes > 0 and v.sent_at is not null`,
    )})
    select 1`);
}

/** One receipt; see advanceMessages. */
export function advanceMessage(
  db: Db,
  instanceId: number,
  messageId: string,
  status: Advance['status'],
  extra: { providerMessageId?: string; error?: string; at?: Date } = {},
): Promise<void> {
  return advanceMessages(db, instanceId, [{ messageId, status, at: extra.at ?? new Date(), providerMessageId: extra.providerMessageId, error: extra.error }]);
}

export function toMessageView(m: Message) {
  return {
    id: m.id,
    to: m.to,
    type: m.type,
    status: m.status,
    providerMessageId: m.providerMessageId,
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
