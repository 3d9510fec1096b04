/**
 * Reserving a paced send's slot: under the instance's row lock, in the same
 * transaction as the command and its message, so concurrent requests on any
 * replica get distinct, correctly spaced slots.
 */
import { sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { commands, instances, type Command } from '../db/schema';
import type { CommandQueue } from '../commands/queue';
import type { SendArgs } from '../../../workers/protocol/frames';
import { gapAfter, nextSlot, nextSlots } from './schedule';
import type { Pacing } from './settings';

/** NOTIFY channel: a paced command was scheduled (every replica's pacer looks again at its next due time). */
export const PACING_CHANNEL = 'wgs_pacing';

/** Message types a typing indicator makes sense before. */
export const TYPED = new Set(['text', 'image', 'video', 'audio', 'document', 'sticker', 'location', 'contact', 'template', 'interactive']);

/** How long before a paced send its typing indicator goes: half the interval, 1 to 3 s when the interval allows. */
export function typingLeadMs(p: Pacing): number {
  return Math.min(3000, Math.floor(p.minIntervalMs / 2));
}

export interface Reserved {
  command: Command;
  /** The typing indicator's command, when pacing.typing is on. */
  presence?: Command;
  /** When the send may leave. */
  notBefore: Date;
  /** The slot is now: dispatch at once (the unpaced answer, 200 or 202 queued). */
  immediate: boolean;
}

/**
 * Takes the instance's next slot and writes the send (and its typing
 * indicator) for it, in one transaction:
 *
 * 1. `select … from instances where id = $1 for update`: the row lock
 *    serializes every replica's sends for this number;
 * 2. the database clock and the instance's paced sends of the last two days
 *    and the future (`commands_instance_paced_idx`);
 * 3. the slot (schedule.ts: cursor, pause, quiet hours, caps, warm-up);
 * 4. `update instances set pace_cursor = slot + minIntervalMs + jitter`;
 * 5. the commands with `not_before`, the message, and a NOTIFY for the pacers.
 *
 * A repeated Idempotency-Key fails the insert with a unique violation and
 * rolls everything back, the cursor included.
 */
type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/**
 * `n` consecutive slots for a campaign, in the caller's transaction (which
 * then writes the commands): one locked read of the instance, one read of the
 * clock and the taken times, the slots computed in memory (schedule.ts
 * `nextSlots`, each at least `minGapMs` after the one before), one cursor
 * update past the last. Holds the instance's row lock to commit, so single
 * sends and other campaigns on any replica queue after these.
 */
/**
 * The instance's pacing state, its row locked for the transaction (so every
 * replica's reservations for it queue behind this one): the database clock,
 * the pace cursor, a pause, its age and the send times already taken (two days).
 */
async function lockedPaceState(tx: Tx, instanceId: number, pacing: Pacing) {
  const [row] = await tx.execute<{ pace_cursor: string | null; paused_until: string | null; created_at: string }>(sql`
    select pace_cursor, paused_until, created_at from ${instances} where id = ${instanceId} for update`);
  if (!row) throw new Error(`instance ${instanceId} is gone`);
  const [clock] = await tx.execute<{ now: string; taken: string[] | null }>(sql`
    select clock_timestamp() as now, array(
      select not_before from ${commands}
      where instance_id = ${instanceId} and not_before is not null and name = 'send' and not_before >= clock_timestamp() - interval '2 days'
    )::text[] as taken`);
  const ms = (v: string | null) => (v === null ? null : new Date(v).getTime());
  return {
    now: ms(clock!.now)!,
    cursor: ms(row.pace_cursor),
    pausedUntil: ms(row.paused_until),
    pacing,
    createdAt: ms(row.created_at)!,
    taken: (clock!.taken ?? []).map((t) => new Date(t).getTime()),
  };
}

export async function reserveSlots(tx: Tx, s: { instanceId: number; pacing: Pacing; n: number; minGapMs: number; random?: () => number }): Promise<{ now: number; slots: number[] }> {
  const state = await lockedPaceState(tx, s.instanceId, s.pacing);
  const now = state.now;
  const { slots, cursor } = nextSlots(state, s.n, { minGapMs: s.minGapMs, random: s.random });
  await tx.execute(sql`update ${instances} set pace_cursor = ${new Date(cursor).toISOString()}::timestamptz where id = ${s.instanceId}`);
  return { now, slots };
}

export async function reserveSend(
  db: Db,
  queue: CommandQueue,
  s: { instanceId: number; args: SendArgs; idempotencyKey: string | null; text: string | null; pacing: Pacing; random?: () => number },
): Promise<Reserved> {
  return db.transaction(async (tx) => {
    const state = await lockedPaceState(tx, s.instanceId, s.pacing);
    const now = state.now;
    const slot = nextSlot(state);
    const immediate = slot <= now;
    const notBefore = new Date(immediate ? now : slot);
    const cursor = new Date(notBefore.getTime() + gapAfter(s.pacing, s.random));
    await tx.execute(sql`update ${instances} set pace_cursor = ${cursor.toISOString()}::timestamptz where id = ${s.instanceId}`);
    let presence: Command | undefined;
    if (s.pacing.typing && TYPED.has(s.args.type)) {
      const at = new Date(Math.max(now, notBefore.getTime() - typingLeadMs(s.pacing)));
      [presence] = await tx
        .insert(commands)
        .values({ instanceId: s.instanceId, name: 'presence', args: { chat: s.args.to, state: 'composing' }, notBefore: at, ...(immediate && { sentAt: at }) })
        .returning();
    }
    // A slot that is now is dispatched by the caller: sent_at is set, so the pacer leaves it alone
    // (a worker away gets it at its hello, like any pending command).
    const command = await queue.enqueueSend(s.instanceId, s.args, s.idempotencyKey, s.text, { notBefore, tx, dispatchNow: immediate });
    if (!immediate) await tx.execute(sql`select pg_notify(${PACING_CHANNEL}, ${String(s.instanceId)})`);
    return { command, presence, notBefore, immediate };
  });
}
