/**
 * A campaign's progress and its cancellation. Progress is not stored: it is
 * its messages grouped by status (`messages_campaign_idx`), so it is right
 * whoever moved a message. A running campaign with no message left queued
 * is marked completed when it is read.
 */
import { and, desc, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { campaigns, commands, messages, type Campaign } from '../db/schema';
import { conflict, notFound } from '../http/errors';

export const COUNTED = ['queued', 'sent', 'delivered', 'read', 'failed'] as const;
export type Counts = Record<(typeof COUNTED)[number], number>;

export interface CampaignView {
  id: string;
  name: string | null;
  instanceId: number;
  status: Campaign['status'];
  total: number;
  counts: Counts;
  failures: { reason: string; count: number }[];
  firstAt: Date;
  lastAt: Date;
  createdAt: Date;
  cancelledAt?: Date;
  completedAt?: Date;
}

/** The tenant's campaign, or 404 (another tenant's campaign is not found either). */
export async function ownedCampaign(db: Db, userId: number, id: string): Promise<Campaign> {
  const [row] = await db.select().from(campaigns).where(and(eq(campaigns.id, id), eq(campaigns.userId, userId)));
  if (!row) throw notFound(`campaign ${id}`);
  return row;
}

/** Message counts by status and the top failure reasons, in one statement. */
async function tally(db: Db, id: string): Promise<{ counts: Counts; failures: { reason: string; count: number }[] }> {
  const rows = await db.execute<{ status: string; reason: string | null; n: number }>(sql`
    select status::text as status, case when status = 'failed' then coalesce(error, 'unknown') end as reason, count(*)::int as n
    from ${messages} where campaign_id = ${id}
    group by 1, 2`);
  const counts: Counts = { queued: 0, sent: 0, delivered: 0, read: 0, failed: 0 };
  const failures: { reason: string; count: number }[] = [];
  for (const r of rows) {
    counts[r.status as keyof Counts] += r.n;
    if (r.status === 'failed') failures.push({ reason: r.reason!, count: r.n });
  }
  failures.sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
  return { counts, failures: failures.slice(0, 10) };
}

function toView(c: Campaign, t: Awaited<ReturnType<typeof tally>>): CampaignView {
  return {
    id: c.id,
    name: c.name,
    instanceId: c.instanceId,
    status: c.status,
    total: c.total,
    counts: t.counts,
    failures: t.failures,
    firstAt: c.firstAt,
    lastAt: c.lastAt,
    createdAt: c.createdAt,
    ...(c.cancelledAt && { cancelledAt: c.cancelledAt }),
    ...(c.completedAt && { completedAt: c.completedAt }),
  };
}

/**
 * The campaign as it stands. A running one with nothing queued is completed
 * here (once: the update is conditional), at the time its last message
 * went out or failed.
 */
export async function campaignView(db: Db, c: Campaign): Promise<CampaignView> {
  const t = await tally(db, c.id);
  if (c.status === 'running' && t.counts.queued === 0) {
    const [done] = await db
      .update(campaigns)
      .set({
        status: 'completed',
        completedAt: sql`coalesce((select max(coalesce(sent_at, failed_at)) from ${messages} where campaign_id = ${c.id}), now())`,
      })
      .where(and(eq(campaigns.id, c.id), eq(campaigns.status, 'running')))
      .returning();
    if (done) return toView(done, t);
    const [now] = await db.select().from(campaigns).where(eq(campaigns.id, c.id));
    return toView(now ?? c, t);
  }
  return toView(c, t);
}

export async function listCampaigns(db: Db, instanceId: number, limit = 100): Promise<CampaignView[]> {
  const rows = await db.select().from(campaigns).where(eq(campaigns.instanceId, instanceId)).orderBy(desc(campaigns.createdAt)).limit(limit);
  return Promise.all(rows.map((c) => campaignView(db, c)));
}

/**
 * Cancels a running campaign in one transaction: its send commands that are
 * still pending and not yet handed to a worker fail with `cancelled`, their
 * messages become `failed` with error `cancelled`, and their typing
 * indicators are dropped. Sends already handed out finish as they will.
 * The pacer claims a command (sets sent_at) before it dispatches it, so a
 * command is either claimed or cancelled, never both (row locks decide).
 * 409 `campaign_finished` when it is already completed or cancelled.
 */
export async function cancelCampaign(db: Db, c: Campaign): Promise<{ cancelled: number }> {
  return db.transaction(async (tx) => {
    const [row] = await tx.execute<{ status: string }>(sql`select status::text as status from ${campaigns} where id = ${c.id} for update`);
    if (!row) throw notFound(`campaign ${c.id}`);
    if (row.status !== 'running') throw conflict('campaign_finished', `campaign ${c.id} is already ${row.status}`);
    // Three statements, each driven by an index whatever the planner's estimates (the rows are fresh):
    // the sends not handed out, the typing indicators in their span, then the messages of the sends failed here.
    const [span] = await tx.execute<{ first: string | null; last: string | null }>(sql`
      with sends as (
        update ${commands} set status = 'failed', error_code = 'cancelled', error_message = 'campaign cancelled', completed_at = now()
        where id in (select command_id from ${messages} where campaign_id = ${c.id} and status = 'queued' and command_id is not null)
          and status = 'pending' and sent_at is null
        returning not_before
      )
      select min(not_before) as first, max(not_before) as last from sends`);
    if (span?.first) {
      await tx.execute(sql`
        update ${commands} set status = 'failed', error_code = 'cancelled', error_message = 'campaign cancelled', completed_at = now()
        where instance_id = ${c.instanceId} and name = 'presence' and status = 'pending' and sent_at is null
          and not_before between ${span.first}::timestamptz - interval '3 seconds' and ${span.last}::timestamptz
          and args->>'chat' in (select "to" from ${messages} where campaign_id = ${c.id})`);
    }
    const [out] = await tx.execute<{ n: number }>(sql`
      with failed as (
        update ${messages} m set status = 'failed', error = 'cancelled', failed_at = now()
        from ${commands} cmd
        where m.campaign_id = ${c.id} and m.status = 'queued' and cmd.id = m.command_id and cmd.status = 'failed' and cmd.error_code = 'cancelled'
        returning 1
      )
      select count(*)::int as n from failed`);
    await tx.update(campaigns).set({ status: 'cancelled', cancelledAt: sql`now()` }).where(eq(campaigns.id, c.id));
    return { cancelled: out?.n ?? 0 };
  });
}
