/**
 * The usage ledger (usage_ledger): what a tenant used, one row per counted
 * thing, appended in the same transaction as the thing itself, idempotent by
 * `source` (a redelivered event or a retried statement counts once).
 */
import { and, eq, gte, lt, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { usageLedger, type UsageMetric } from '../db/schema';

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
