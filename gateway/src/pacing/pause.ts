/**
 * Pausing a number after its provider signals a rate limit or a temporary
 * block, and resuming it. A pause is a time in the instance row
 * (`paused_until`): every slot is taken after it (schedule.ts) and the
 * pending sends are moved past it, so nothing leaves meanwhile.
 */
import { sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { commands, events, instances } from '../db/schema';
import { PACING_CHANNEL } from './reserve';

/** Result error codes that pause the number: a provider's rate limit or temporary block. */
export const PAUSING_ERRORS: ReadonlySet<string> = new Set(['rate_limited', 'spam_rate_limited']);

/** The first pause's length; each further pause within a day doubles it, up to a day. */
export const PAUSE_BASE_MS = 5 * 60_000;
export const PAUSE_MAX_MS = 24 * 3_600_000;

/** A pause's length: max(retryAfter, 5 min × 2^(pauses in the last 24 h)), at most 24 h. */
export function pauseLengthMs(earlierPauses: number, retryAfterS?: number): number {
  const backoff = Math.min(PAUSE_MAX_MS, PAUSE_BASE_MS * 2 ** Math.min(earlierPauses, 20));
  return Math.min(PAUSE_MAX_MS, Math.max(backoff, (retryAfterS ?? 0) * 1000));
}

/**
 * Pauses the instance (or lengthens its pause), records `instance.paused
 * {reason, until}` and moves its pending sends and typing indicators past the
 * pause, keeping their spacing. Returns the pause's end.
 */
export async function pauseInstance(db: Db, instanceId: number, reason: string, retryAfterS?: number): Promise<Date> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`select 1 from ${instances} where id = ${instanceId} for update`);
    const [{ n }] = (await tx.execute<{ n: number }>(sql`
      select count(*)::int as n from ${events}
      where instance_id = ${instanceId} and type = 'instance.paused' and created_at > now() - interval '24 hours'`)) as unknown as [{ n: number }];
    const length = pauseLengthMs(n, retryAfterS);
    const [row] = await tx.execute<{ until: string }>(sql`
      update ${instances} set
        paused_until = greatest(coalesce(paused_until, now()), now() + ${length} * interval '1 millisecond'),
        paused_reason = ${reason}, updated_at = now()
      where id = ${instanceId} returning paused_until as until`);
    const until = new Date(row!.until);
    await shiftPending(tx as unknown as Db, instanceId, until);
    await tx.insert(events).values({ instanceId, type: 'instance.paused', data: { reason, until: until.toISOString() } });
    await tx.execute(sql`select pg_notify(${PACING_CHANNEL}, ${String(instanceId)})`);
    return until;
  });
}

/**
 * Moves the instance's pending sends and typing indicators so the earliest
 * leaves at `from`, keeping the gaps between them; unpaced pending ones (no
 * `not_before`) go at `from` too. The pace cursor moves with them.
 */
async function shiftPending(db: Db, instanceId: number, from: Date): Promise<void> {
  const at = from.toISOString();
  await db.execute(sql`
    with first as (
      select min(coalesce(not_before, now())) as t from ${commands}
      where instance_id = ${instanceId} and status = 'pending' and name in ('send', 'presence')
    ), moved as (
      update ${commands} c set not_before = coalesce(c.not_before, first.t) + (${at}::timestamptz - first.t)
      from first
      where c.instance_id = ${instanceId} and c.status = 'pending' and c.name in ('send', 'presence') and first.t is not null
      returning c.not_before
    )
    update ${instances} set pace_cursor = greatest(pace_cursor + (${at}::timestamptz - (select t from first)), ${at}::timestamptz)
    where id = ${instanceId} and (select t from first) is not null`);
  await db.execute(sql`update ${instances} set pace_cursor = greatest(coalesce(pace_cursor, ${at}::timestamptz), ${at}::timestamptz) where id = ${instanceId}`);
}

/**
 * Ends a pause now (`POST /resume`): records `instance.resumed` and moves the
 * pending sends back so the first is due at once. False when not paused.
 */
export async function resumeInstance(db: Db, instanceId: number, gapMs = 0): Promise<boolean> {
  return db.transaction(async (tx) => {
    const [row] = await tx.execute<{ paused_until: string | null }>(sql`
      select paused_until from ${instances} where id = ${instanceId} for update`);
    if (!row?.paused_until || new Date(row.paused_until).getTime() <= Date.now()) {
      // Not paused (or the pause is over): only clear a stale record.
      await tx.execute(sql`update ${instances} set paused_until = null, paused_reason = null where id = ${instanceId} and paused_until is not null`);
      return false;
    }
    await tx.execute(sql`update ${instances} set paused_until = null, paused_reason = null, pace_cursor = null, updated_at = now() where id = ${instanceId}`);
    await tx.execute(sql`
      with first as (
        select min(not_before) as t from ${commands}
        where instance_id = ${instanceId} and status = 'pending' and name in ('send', 'presence') and not_before > now()
      )
      update ${commands} c set not_before = c.not_before - (first.t - now())
      from first
      where c.instance_id = ${instanceId} and c.status = 'pending' and c.name in ('send', 'presence') and c.not_before > now() and first.t is not null`);
    await tx.execute(sql`
      update ${instances} set pace_cursor = (select max(not_before) from ${commands} where instance_id = ${instanceId} and status = 'pending' and name = 'send') + ${gapMs} * interval '1 millisecond'
      where id = ${instanceId}`);
    await tx.insert(events).values({ instanceId, type: 'instance.resumed', data: { by: 'api' } });
    await tx.execute(sql`select pg_notify(${PACING_CHANNEL}, ${String(instanceId)})`);
    return true;
  });
}

/** Ends the pauses that ran out: clears them and records `instance.resumed {by: "schedule"}` once each. */
export async function endPauses(db: Db): Promise<number[]> {
  const rows = await db.execute<{ instance_id: number }>(sql`
    with ended as (
      update ${instances} set paused_until = null, paused_reason = null, updated_at = now()
      where paused_until is not null and paused_until <= now()
      returning id
    )
    insert into ${events} (instance_id, type, data)
    select id, 'instance.resumed', '{"by":"schedule"}'::jsonb from ended
    returning instance_id`);
  return rows.map((r) => Number(r.instance_id));
}

