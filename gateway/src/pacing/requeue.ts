/**
 * A send the provider refused with a rate limit (`rate_limited`,
 * `spam_rate_limited`) did not reach WhatsApp: it goes back to the queue,
 * due when the pause it caused ends (pause.ts), instead of failing. Its
 * command is finished (failed, with `requeued: {commandId, scheduledAt}` in
 * its result, so a caller waiting on it answers 202 scheduled) and a new
 * command carries the same send (the same message id: the worker answers a
 * redelivered command id from its result cache, so a retry needs a new one).
 * The message stays `queued`, pointing at the new command. At most
 * MAX_REQUEUES times per message; after that the refusal fails it.
 */
import { sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { commands, messages } from '../db/schema';

export const MAX_REQUEUES = 3;

export interface Requeued {
  commandId: number;
  scheduledAt: string;
}

/**
 * Queues the messages of the given refused send commands again, in the caller's transaction: a successor
 * command each, due now (the pause that follows moves it to the pause's end, ahead of the sends queued
 * after it, keeping their spacing). Old command id → successor id; messages past MAX_REQUEUES are left out.
 */
export async function requeueRefusedSends(tx: Pick<Db, 'execute'>, instanceId: number, commandIds: number[]): Promise<Map<number, number>> {
  if (commandIds.length === 0) return new Map();
  // Messages locked in id order, as advanceMessages locks them (messages.ts): no lock-order deadlock with receipts.
  const rows = await tx.execute<{ old_id: number; new_id: number }>(sql`
    with refused as materialized (
      select m.id as message_id, c.id as command_id, c.args
      from ${messages} m join ${commands} c on c.id = m.command_id
      where m.instance_id = ${instanceId} and c.id in (${sql.join(commandIds.map((id) => sql`${id}`), sql`, `)})
        and c.name = 'send' and m.status = 'queued' and m.requeues < ${MAX_REQUEUES}
      order by m.id
      for update of m
    ), successor as (
      insert into ${commands} (instance_id, name, args, not_before)
      select ${instanceId}, 'send', args, clock_timestamp() from refused order by command_id
      returning id, args->>'messageId' as message_id
    ), moved as (
      update ${messages} m set command_id = successor.id, requeues = m.requeues + 1
      from successor where m.id = successor.message_id and m.instance_id = ${instanceId}
      returning m.id
    )
    select refused.command_id as old_id, successor.id as new_id from refused join successor on successor.message_id = refused.message_id`);
  return new Map(rows.map((r) => [Number(r.old_id), Number(r.new_id)]));
}

/**
 * Writes into each refused command's result where its send went (`requeued: {commandId, scheduledAt}`, the
 * successor's due time once the pause has moved it), for callers waiting on it on any replica; returns the same.
 */
export async function markRequeued(tx: Pick<Db, 'execute'>, successors: Map<number, number>): Promise<Map<number, Requeued>> {
  if (successors.size === 0) return new Map();
  const pairs = [...successors].map(([oldId, newId]) => sql`(${oldId}::int, ${newId}::int)`);
  const rows = await tx.execute<{ old_id: number; new_id: number; scheduled_at: string }>(sql`
    with pair(old_id, new_id) as (values ${sql.join(pairs, sql`, `)}),
    due as (
      select pair.old_id, pair.new_id, next.not_before as scheduled_at
      from pair join ${commands} next on next.id = pair.new_id
    )
    update ${commands} c
      set result = coalesce(c.result, '{}'::jsonb) || jsonb_build_object('requeued', jsonb_build_object('commandId', due.new_id, 'scheduledAt', due.scheduled_at))
    from due where c.id = due.old_id
    returning due.old_id, due.new_id, due.scheduled_at`);
  return new Map(rows.map((r) => [Number(r.old_id), { commandId: Number(r.new_id), scheduledAt: new Date(r.scheduled_at).toISOString() }]));
}
