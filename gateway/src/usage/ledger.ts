/**
 * The usage ledger (usage_ledger): what a tenant used, one row per counted
 * thing, appended in the same transaction as the thing itself, idempotent by
 * `source` (a redelivered event or a retried statement counts once).
 */
import { and, eq, gte, lt, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../db/client';
import { instances, usageLedger, type UsageMetric } from '../db/schema';

export interface UsageEntry {
  userId: number;
  instanceId?: number | null;
  metric: UsageMetric;
  provider?: string | null;
  quantity: number;
  /** Unique per counted thing, e.g. `sent:msg_…`, `received:<instance>:<event id>`. */
  source: string;
  occurredAt?: Date;
}

/** Appends entries; an entry whose source is already there is skipped. Pass the transaction that does the counted thing. */
export async function recordUsage(tx: Pick<Db, 'insert'>, entries: UsageEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await tx
    .insert(usageLedger)
    .values(
      entries.map((e) => ({
        userId: e.userId,
        instanceId: e.instanceId ?? null,
        metric: e.metric,
        provider: e.provider ?? null,
        quantity: e.quantity,
        source: e.source,
        ...(e.occurredAt && { occurredAt: e.occurredAt }),
      })),
    )
    .onConflictDoNothing({ target: usageLedger.source });
}

/** The start of the calendar month (UTC) `at` falls in: quotas and billing periods are UTC months. */
export function monthStart(at: Date = new Date()): Date {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1));
}

/** The start of the month after. */
export function nextMonthStart(at: Date = new Date()): Date {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + 1, 1));
}

/** A tenant's total of one metric in [from, to). */
export async function usageTotal(db: Db, userId: number, metric: UsageMetric, from: Date, to: Date): Promise<number> {
  const [row] = await db
    .select({ total: sql<string>`coalesce(sum(${usageLedger.quantity}), 0)` })
    .from(usageLedger)
    .where(and(eq(usageLedger.userId, userId), eq(usageLedger.metric, metric), gte(usageLedger.occurredAt, from), lt(usageLedger.occurredAt, to)));
  return Number(row?.total ?? 0);
}

/**
 * SQL appending ledger rows for one instance's counted things, in whatever
 * statement embeds it (a CTE next to the write that does the thing): `rows`
 * yields (metric, quantity, source); the tenant and provider are joined from
 * the instance, so no extra query is needed. Sources already there are skipped.
 */
export function instanceUsageInsert(instanceId: number, rows: SQL): SQL {
  return sql`
    insert into ${usageLedger} (user_id, instance_id, metric, provider, quantity, source)
    select i.user_id, i.id, u.metric, i.provider::text, u.quantity::bigint, u.source
    from (${rows}) as u(metric, quantity, source) join ${instances} i on i.id = ${instanceId}::int
    on conflict (source) do nothing`;
}

/** Appends one instance's entries (tenant and provider joined in the statement); see instanceUsageInsert. */
export async function recordInstanceUsage(
  tx: Pick<Db, 'execute'>,
  instanceId: number,
  entries: { metric: UsageMetric; quantity: number; source: string }[],
): Promise<void> {
  if (entries.length === 0) return;
  const values = entries.map((e) => sql`(${e.metric}::text, ${e.quantity}::bigint, ${e.source}::text)`);
  await tx.execute(instanceUsageInsert(instanceId, sql`values ${sql.join(values, sql`, `)}`));
}
