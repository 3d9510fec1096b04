/**
 * Usage reports: the ledger summed by UTC period (hour, day or month),
 * metric and provider, for one tenant or across tenants, as JSON rows or CSV.
 */
import { sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { usageLedger, users } from '../db/schema';
import { badRequest } from '../http/errors';
import { isoInstant } from '../http/params';
import { monthStart, nextMonthStart } from './ledger';

export const GRANULARITIES = ['hour', 'day', 'month'] as const;
export type Granularity = (typeof GRANULARITIES)[number];

const DAY_MS = 86_400_000;
/** The longest range per granularity: 31 days of hours, 2 years of days, 10 years of months. */
export const MAX_RANGE_DAYS: Record<Granularity, number> = { hour: 31, day: 731, month: 3653 };

export interface UsageQuery {
  from: Date;
  to: Date;
  granularity: Granularity;
}

export interface UsageReportRow {
  period: string;
  metric: string;
  provider: string | null;
  quantity: number;
  userId?: number;
  email?: string;
}

function parseInstant(name: string, value: string): Date {
  // An ISO 8601 date or date-time; a date alone is midnight UTC, a date-time without an offset UTC.
  const at = isoInstant(value);
  if (!at) {
    throw badRequest(
      'invalid_parameter',
      `'${name}': must be an ISO 8601 date or date-time from 1970 to 9999, a real calendar date and time, e.g. 2026-01-31 or 2026-01-31T10:00:00Z`,
    );
  }
  return at;
}

/** Reads from, to and granularity (default: this UTC month, by day); throws a 400 naming the parameter. */
export function parseUsageQuery(q: { from?: string; to?: string; granularity?: string }, now: Date = new Date()): UsageQuery {
  const granularity = (q.granularity ?? 'day') as Granularity;
  if (!GRANULARITIES.includes(granularity)) throw badRequest('invalid_parameter', `'granularity': must be one of ${GRANULARITIES.join(', ')}`);
  const from = q.from !== undefined ? parseInstant('from', q.from) : monthStart(now);
  const to = q.to !== undefined ? parseInstant('to', q.to) : nextMonthStart(now);
  if (to <= from) throw badRequest('invalid_parameter', `'to': must be after 'from'`);
  const maxDays = MAX_RANGE_DAYS[granularity];
  if (to.getTime() - from.getTime() > maxDays * DAY_MS) {
    throw badRequest('invalid_parameter', `'to': at most ${maxDays} days after 'from' by ${granularity}; use a coarser granularity or a shorter range`);
  }
  return { from, to, granularity };
}

/**
 * The ledger in [from, to) summed by period (the UTC hour, day or month an
 * entry occurred in), metric and provider; for one tenant (`userId`) or,
 * with `perUser`, per tenant with its email.
 */
export async function usageReport(db: Db, q: UsageQuery, opts: { userId?: number; perUser?: boolean }): Promise<UsageReportRow[]> {
  const period = sql`to_char(date_trunc(${q.granularity}, occurred_at, 'UTC') at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
  // Columns unqualified: the usage_ledger's own (users has none of these names).
  const where = sql`occurred_at >= ${q.from.toISOString()}::timestamptz and occurred_at < ${q.to.toISOString()}::timestamptz
    ${opts.userId !== undefined ? sql`and user_id = ${opts.userId}::int` : sql``}`;
  const rows = opts.perUser
    ? await db.execute<Record<string, unknown>>(sql`
        select ${period} as period, l.user_id, u.email, l.metric, l.provider, sum(l.quantity) as quantity
        from ${usageLedger} l left join ${users} u on u.id = l.user_id
        where ${where}
        group by 1, l.user_id, u.email, l.metric, l.provider
        order by 1, l.user_id, l.metric, l.provider nulls first`)
    : await db.execute<Record<string, unknown>>(sql`
        select ${period} as period, metric, provider, sum(quantity) as quantity
        from ${usageLedger}
        where ${where}
        group by 1, metric, provider
        order by 1, metric, provider nulls first`);
  return rows.map((r) => ({
    period: String(r.period),
    ...(opts.perUser && { userId: Number(r.user_id), email: (r.email as string | null) ?? '' }),
    metric: String(r.metric),
    provider: (r.provider as string | null) ?? null,
    quantity: Number(r.quantity),
  }));
}

/** Each metric's sum over the rows. */
export function usageTotals(rows: UsageReportRow[]): Record<string, number> {
  const totals: Record<string, number> = {};
  for (const r of rows) totals[r.metric] = (totals[r.metric] ?? 0) + r.quantity;
  return totals;
}

/** One CSV field, quoted per RFC 4180 when it holds a comma, quote, CR or LF. */
export function csvField(value: unknown): string {
  const s = value === null || value === undefined ? '' : String(value);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** An RFC 4180 CSV document (CRLF line ends, header first) of `rows` with these columns. */
export function toCsv<T extends object>(columns: { header: string; key: keyof T }[], rows: T[]): string {
  const lines = [columns.map((c) => csvField(c.header)).join(',')];
  for (const r of rows) lines.push(columns.map((c) => csvField(r[c.key])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

/** Whether the caller asked for CSV: `?format=csv` or an Accept header naming text/csv. */
export function wantsCsv(format: string | undefined, accept: string | null): boolean {
  if (format !== undefined) return format === 'csv';
  return /(^|,)\s*text\/csv\b/i.test(accept ?? '');
}

/** A CSV download response. */
export function csvResponse(body: string, filename: string): Response {
  return new Response(body, {
    headers: { 'content-type': 'text/csv; charset=utf-8', 'content-disposition': `attachment; filename="${filename}"` },
  });
}
