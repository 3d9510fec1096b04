/**
 * Creating a campaign (bulk send): every message checked first, then the
 * campaign, its messages and their paced send commands written in one
 * transaction with multi-row inserts. See docs/architecture.md, "Campaigns".
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { campaigns, commands, messages } from '../db/schema';
import { ApiError } from '../http/errors';
import { newMessageId } from '../messages/messages';
import { planSend, type SendBody, type SendPlan } from '../messages/send-input';
import { PACING_CHANNEL, reserveSlots, TYPED, typingLeadMs } from '../pacing/reserve';
import type { Pacing } from '../pacing/settings';

/** At most this many messages in one campaign. */
export const MAX_CAMPAIGN_MESSAGES = 10_000;
/**
 * A campaign never hands a number's worker more than 20 sends a second: its
 * slots are at least this far apart, also for numbers without pacing
 * (sandbox, waba, PACING_DEFAULTS=off), whose single sends are not paced.
 */
export const CAMPAIGN_MIN_INTERVAL_MS = 50;
/** Rows per insert statement (one JSON parameter each). */
const BATCH = 2_000;

export function newCampaignId(): string {
  return `cmp_${randomBytes(12).toString('hex')}`;
}

/**
 * planSend for each message; an error names the message by its index
 * (`invalid field 'messages[17].to': …`, or `messages[17]: …` for a lookup).
 */
export async function planCampaign(db: Db, instanceId: number, bodies: SendBody[], opts: { allowPrivateMedia: boolean; provider: string }): Promise<SendPlan[]> {
  const plans: SendPlan[] = [];
  for (let i = 0; i < bodies.length; i++) {
    try {
      plans.push(await planSend(db, instanceId, bodies[i]!, opts));
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      const named = err.message.startsWith("invalid field '")
        ? err.message.replace("invalid field '", `invalid field 'messages[${i}].`)
        : `messages[${i}]: ${err.message}`;
      throw new ApiError(err.status, err.code, named, err.extra);
    }
  }
  return plans;
}

export interface CreatedCampaign {
  id: string;
  total: number;
  firstAt: Date;
  lastAt: Date;
}

/**
 * One transaction: the instance's next `n` paced slots (pacing/reserve.ts
 * `reserveSlots`, one row lock, slots computed in memory), the campaign row,
 * then per batch of 2000 one statement inserting the send commands (and their
 * typing indicators) with `not_before` and their messages, and a NOTIFY for
 * the pacers. Nothing goes to a worker here: the pacer dispatches when due.
 */
export async function createCampaign(
  db: Db,
  c: { instanceId: number; userId: number; name: string | null; plans: SendPlan[]; pacing: Pacing; random?: () => number },
): Promise<CreatedCampaign> {
  const id = newCampaignId();
  const n = c.plans.length;
  return db.transaction(async (tx) => {
    const { now, slots } = await reserveSlots(tx, { instanceId: c.instanceId, pacing: c.pacing, n, minGapMs: CAMPAIGN_MIN_INTERVAL_MS, random: c.random });
    const firstAt = new Date(slots[0]!);
    const lastAt = new Date(slots[n - 1]!);
    await tx.insert(campaigns).values({ id, instanceId: c.instanceId, userId: c.userId, name: c.name, total: n, firstAt, lastAt });
    const lead = typingLeadMs({ ...c.pacing, minIntervalMs: Math.max(c.pacing.minIntervalMs, CAMPAIGN_MIN_INTERVAL_MS) });
    for (let start = 0; start < n; start += BATCH) {
      const rows: Record<string, unknown>[] = [];
      for (let i = start; i < Math.min(n, start + BATCH); i++) {
        const plan = c.plans[i]!;
        const slot = slots[i]!;
        const messageId = newMessageId();
        if (c.pacing.typing && TYPED.has(plan.type)) {
          rows.push({ ord: rows.length, name: 'presence', args: { chat: plan.to, state: 'composing' }, not_before: new Date(Math.max(now, slot - lead)).toISOString() });
        }
        rows.push({
          ord: rows.length,
          name: 'send',
          args: { ...plan.args, messageId },
          not_before: new Date(slot).toISOString(),
          mid: messageId,
          to: plan.to,
          type: plan.type,
          text: plan.text,
        });
      }
      // Commands in slot order (ids follow the insert's order: the pacer and a worker's hello go by id),
      // then their messages with the ids they got: two statements per batch, one JSON parameter each.
      const made = await tx.execute<{ id: number; mid: string | null }>(sql`
        insert into ${commands} (instance_id, name, args, not_before)
        select ${c.instanceId}, r.name, r.args, r.not_before
        from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as r(ord int, name text, args jsonb, not_before timestamptz)
        order by r.ord
        returning id, args->>'messageId' as mid`);
      const commandOf = new Map(made.filter((m) => m.mid !== null).map((m) => [m.mid!, Number(m.id)]));
      const sends = rows.filter((r) => r.name === 'send').map((r) => ({ id: r.mid, command_id: commandOf.get(r.mid as string), to: r.to, type: r.type, text: r.text }));
      await tx.execute(sql`
        insert into ${messages} (id, instance_id, command_id, "to", type, text, campaign_id)
        select m.id, ${c.instanceId}, m.command_id, m."to", m.type, m.text, ${id}
        from jsonb_to_recordset(${JSON.stringify(sends)}::jsonb) as m(id text, command_id int, "to" text, type text, text text)`);
    }
    await tx.execute(sql`select pg_notify(${PACING_CHANNEL}, ${String(c.instanceId)})`);
    return { id, total: n, firstAt, lastAt };
  });
}
