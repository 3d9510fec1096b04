/**
 * The billing job: every minute, one replica at a time (a session advisory
 * lock on a connection of its own, claims/singleton-job.ts), records
 *
 * - `usage.threshold` when a tenant's use of a quota reaches 80 % and 100 %:
 *   `messagesPerMonth` and `mediaBytesPerMonth` over the current UTC month
 *   (the usage ledger), and `maxInstances` (instances held). Once per tenant,
 *   quota, threshold and month: source `threshold:<user>:<quota>:<pct>:<YYYY-MM>`.
 *   A pass looks only at tenants with ledger rows (messages_sent,
 *   media_bytes) or instance creates since its previous pass (less a 2-minute
 *   margin for late commits); a process's first pass looks at the whole
 *   month. So the cost follows the active tenants, and an event follows the
 *   crossing within a pass interval (about a minute).
 * - `usage.period_closed` once per tenant and month, `closeGraceMs` after the
 *   month ends (instance seconds of the month's last hour are written a few
 *   minutes after it), with the month's ledger totals by metric and by
 *   provider, the plan and the instances held. Source `period:<user>:<YYYY-MM>`.
 *   Tenants with no usage get one when they held an instance created before
 *   the month ended (a seat is billable while idle); others get none.
 *
 * Every statement is one `insert … select … on conflict (source) do
 * nothing`: repeated passes, restarts and two replicas record each event once.
 */
import type { Sql } from 'postgres';
import { SingletonJob } from '../claims/singleton-job';
import type { Logger } from '../logging/logger';
import { USAGE_METRICS } from '../db/schema';
import { monthStart, nextMonthStart } from '../usage/ledger';

/** Advisory lock key of the billing pass: "wgs" and 'b' (single bigint key). */
export const BILLING_LOCK = 0x77_67_73_62;

export const THRESHOLDS = [80, 100] as const;
/** Late commits a pass still sees: ledger rows are stamped when written, committed a moment later. */
const SINCE_MARGIN_MS = 2 * 60_000;

/** `2026-11` for the UTC month `at` falls in. */
export function monthKey(at: Date): string {
  return `${at.getUTCFullYear()}-${String(at.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** The plan of users row `u` (its own or the default), as `p`; none for a tenant deleted since. */
const PLAN_JOIN = `left join plans p on u.id is not null and p.id = coalesce(u.plan_id, (select id from plans where is_default limit 1))`;
const PLAN_JSON = `case when p.id is null then null else jsonb_build_object('id', p.id, 'name', p.name) end`;

/**
 * Records the thresholds crossed this month (`now`'s) by tenants with usage
 * or instance creates at or after `since`. Returns how many were new.
 */
export async function recordThresholds(sql: Sql, now: Date, since: Date): Promise<number> {
  const from = monthStart(now);
  const to = nextMonthStart(now);
  const month = monthKey(from);
  const rows = await sql`
    with candidates as (
      select distinct user_id from usage_ledger
      where occurred_at >= ${since.toISOString()}::timestamptz and occurred_at < ${to.toISOString()}::timestamptz and metric in ('messages_sent', 'media_bytes')
      union
      select user_id from instances where created_at >= ${since.toISOString()}::timestamptz
    ), tenants as (
      select u.id as user_id, u.email, p.id as plan_id, p.name as plan_name, p.messages_per_month, p.media_bytes_per_month, p.max_instances
      from candidates c join users u on u.id = c.user_id ${sql.unsafe(PLAN_JOIN)}
    ), usage_now as (
      select t.*, q.quota, q.lim, q.used
      from tenants t cross join lateral (
        select 'messagesPerMonth' as quota, t.messages_per_month::numeric as lim,
          (select coalesce(sum(quantity), 0) from usage_ledger l
           where l.user_id = t.user_id and l.metric = 'messages_sent' and l.occurred_at >= ${from.toISOString()}::timestamptz and l.occurred_at < ${to.toISOString()}::timestamptz) as used
        where t.messages_per_month is not null
        union all
        select 'mediaBytesPerMonth', t.media_bytes_per_month::numeric,
          (select coalesce(sum(quantity), 0) from usage_ledger l
           where l.user_id = t.user_id and l.metric = 'media_bytes' and l.occurred_at >= ${from.toISOString()}::timestamptz and l.occurred_at < ${to.toISOString()}::timestamptz)
        where t.media_bytes_per_month is not null
        union all
        select 'maxInstances', t.max_instances::numeric, (select count(*) from instances i where i.user_id = t.user_id)::numeric
        where t.max_instances is not null
      ) q
      where q.lim > 0
    )
    insert into billing_events (type, user_id, tenant_email, data, source)
    select 'usage.threshold', n.user_id, n.email,
      jsonb_build_object('quota', n.quota, 'threshold', th.pct, 'used', n.used, 'limit', n.lim,
        'period', jsonb_build_object('month', ${month}::text, 'from', ${from.toISOString()}::text, 'to', ${to.toISOString()}::text),
        'plan', jsonb_build_object('id', n.plan_id, 'name', n.plan_name)),
      'threshold:' || n.user_id || ':' || n.quota || ':' || th.pct || ':' || ${month}::text
    from usage_now n cross join (values ${sql.unsafe(THRESHOLDS.map((p) => `(${p})`).join(', '))}) th(pct)
    where n.used * 100 >= n.lim * th.pct
    on conflict (source) do nothing
    returning id`;
  return rows.length;
}

/**
 * Records usage.period_closed for the UTC month starting at `periodStart`,
 * one per tenant with usage in it or an instance created before it ended.
 * Returns how many were new.
 */
export async function closePeriod(sql: Sql, periodStart: Date): Promise<number> {
  const from = monthStart(periodStart);
  const to = nextMonthStart(periodStart);
  const month = monthKey(from);
  const totals = USAGE_METRICS.map(
    (m) => `'${m}', coalesce((select sum(x.quantity) from totals x where x.user_id = t.user_id and x.metric = '${m}'), 0)`,
  ).join(', ');
  const rows = await sql`
    with tenants as (
      select user_id from usage_ledger where occurred_at >= ${from.toISOString()}::timestamptz and occurred_at < ${to.toISOString()}::timestamptz
      union
      select user_id from instances where created_at < ${to.toISOString()}::timestamptz
    ), totals as (
      select user_id, metric, provider, sum(quantity) as quantity from usage_ledger
      where occurred_at >= ${from.toISOString()}::timestamptz and occurred_at < ${to.toISOString()}::timestamptz
      group by user_id, metric, provider
    )
    insert into billing_events (type, user_id, tenant_email, data, source)
    select 'usage.period_closed', t.user_id, u.email,
      jsonb_build_object(
        'period', jsonb_build_object('month', ${month}::text, 'from', ${from.toISOString()}::text, 'to', ${to.toISOString()}::text),
        'plan', ${sql.unsafe(PLAN_JSON)},
        'totals', jsonb_build_object(${sql.unsafe(totals)}),
        'byProvider', coalesce((select jsonb_agg(jsonb_build_object('metric', x.metric, 'provider', x.provider, 'quantity', x.quantity) order by x.metric, x.provider)
                                from totals x where x.user_id = t.user_id), '[]'::jsonb),
        'instances', (select count(*) from instances i where i.user_id = t.user_id and i.created_at < ${to.toISOString()}::timestamptz)),
      'period:' || t.user_id || ':' || ${month}::text
    from tenants t left join users u on u.id = t.user_id ${sql.unsafe(PLAN_JOIN)}
    on conflict (source) do nothing
    returning id`;
  return rows.length;
}

export interface BillingJobOptions {
  /** How often a pass runs. Default 1 minute. */
  intervalMs?: number;
  /** How long after a month ends it is closed. Default 15 minutes. */
  closeGraceMs?: number;
}

export type BillingPassResult = { skipped: true } | { skipped: false; thresholds: number; closed: number; closedMonth?: string };

export class BillingJob {
  private readonly job: SingletonJob;
  /** When this process's last pass started: the next one looks at tenants active since. */
  private lastPass: Date | undefined;
  /** The month this process has closed (or seen closed). */
  private closedMonth: string | undefined;

  constructor(
    databaseUrl: string,
    private readonly logger: Logger,
    private readonly opts: BillingJobOptions = {},
  ) {
    this.job = new SingletonJob(databaseUrl, logger, { name: 'billing', lockKey: BILLING_LOCK, applicationName: 'wgs-gateway-billing' });
  }

  /** One pass at `now` (thresholds of `now`'s month; the month before closed once its grace is over). */
  async runOnce(now: Date = new Date()): Promise<BillingPassResult> {
    const result = await this.job.locked(async (sql) => {
      const current = monthStart(now);
      const since = new Date(Math.max(current.getTime(), (this.lastPass?.getTime() ?? 0) - SINCE_MARGIN_MS));
      const thresholds = await recordThresholds(sql, now, since);
      this.lastPass = now;
      const previous = monthStart(new Date(current.getTime() - 1));
      const key = monthKey(previous);
      let closed = 0;
      let closedMonth: string | undefined;
      if (now.getTime() >= current.getTime() + (this.opts.closeGraceMs ?? 15 * 60_000) && this.closedMonth !== key) {
        // Closed by another process already: one statement recorded every tenant of the month at once.
        const [done] = await sql`
          select exists (select 1 from billing_events where type = 'usage.period_closed' and created_at >= ${current.toISOString()}::timestamptz
                         and created_at < ${nextMonthStart(current).toISOString()}::timestamptz and data->'period'->>'month' = ${key}) as done`;
        if (!done!.done) {
          closed = await closePeriod(sql, previous);
          closedMonth = key;
        }
        this.closedMonth = key;
      }
      return { skipped: false as const, thresholds, closed, ...(closedMonth && { closedMonth }) };
    });
    if (!result) return { skipped: true };
    if (result.thresholds || result.closed) this.logger.info(result, 'billing events recorded');
    return result;
  }

  start(): void {
    this.job.start(() => this.runOnce(), this.opts.intervalMs ?? 60_000);
  }

  stop(): Promise<void> {
    return this.job.stop();
  }
}
