/**
 * Instance seconds: how long each instance's worker ran, by provider, as at
 * most one usage-ledger row per instance and UTC hour
 * (`instance:<id>:<hour start ISO>`, `occurred_at` = the hour's start).
 *
 * Method: "running" is the instance's lifecycle status `running` (a worker is
 * connected to the gateway), as recorded by every status change: the
 * `instances.status` column and the `instance.status` event written in the
 * same transaction (instances/lifecycle.ts). A pass closes whole past hours:
 * for each instance it rebuilds the status timeline over the hours from the
 * `instance.status` events in them, starting from the status at the first
 * hour's start (the last such event before it; else the row's status when it
 * has not changed since; else "running" when the hour before was counted in
 * full), and counts the seconds spent `running` in each hour. Nothing is
 * sampled: the result depends only on stored facts, so any replica, after any
 * restart, computes the same numbers, and an hour is written once (source
 * unique; a second pass over it changes nothing).
 *
 * Accuracy: exact to the recorded status changes (to the second). It counts
 * what the database says: a gateway that dies without a word leaves its
 * instances `running` until the next boot (or the control loop) records
 * otherwise. An hour is closed `graceMs` after it ends, so a status change
 * committed late in it is seen. Not counted: the hour an instance is deleted
 * in (its events go with it), and an hour whose starting status cannot be
 * known (its last status event pruned by retention, the status changed since,
 * and the hour before not counted in full) counts from its first event on.
 *
 * One replica at a time: a pass holds a session-level advisory lock
 * (USAGE_LOCK) on a connection of its own, like retention/retention.ts.
 */
import type { Sql } from 'postgres';
import { SingletonJob } from '../claims/singleton-job';
import type { Logger } from '../logging/logger';

/** Advisory lock key of the instance-seconds pass: "wgs" and 'u' (single bigint key). */
export const USAGE_LOCK = 0x77_67_73_75;

const HOUR_MS = 3_600_000;

export interface InstanceSecondsOptions {
  /** How often a pass runs. Default 5 minutes. */
  intervalMs?: number;
  /** How long after an hour ends it is closed. Default 2 minutes. */
  graceMs?: number;
  /** How many past hours the first pass of a process closes (catching up after downtime). Default 24. */
  catchUpHours?: number;
}

export type InstanceSecondsResult = { skipped: true } | { skipped: false; from: Date; to: Date; rows: number; seconds: number };

/** The start of the UTC hour `at` falls in. */
export function hourStart(at: Date): Date {
  return new Date(Math.floor(at.getTime() / HOUR_MS) * HOUR_MS);
}

/**
 * Appends the instance seconds of every instance for the whole hours in
 * [from, to) (both on hour boundaries); hours already there are skipped.
 * Returns the rows written and their seconds.
 */
export async function accrueInstanceSeconds(sql: Sql, from: Date, to: Date): Promise<{ rows: number; seconds: number }> {
  if (to <= from) return { rows: 0, seconds: 0 };
  const prevHour = new Date(from.getTime() - HOUR_MS).toISOString();
  // ISO strings: the gateway's postgres clients take no Date parameters.
  const f = from.toISOString();
  const t = to.toISOString();
  const rows = await sql<{ quantity: string }[]>`
    with init as (
      -- The status at the first hour's start: the last status event before it, else the row's status if unchanged since, else the hour before.
      select i.id, ${f}::timestamptz as at, 0::bigint as seq,
        coalesce(
          (select e.data->>'status' from events e
            where e.instance_id = i.id and e.worker_event_id is null and e.type = 'instance.status' and e.created_at < ${f}
            order by e.created_at desc, e.id desc limit 1),
          case when i.status_changed_at <= ${f} then i.status::text end,
          case when exists (select 1 from usage_ledger l where l.source = 'instance:' || i.id || ':' || ${prevHour} and l.quantity >= 3600)
               then 'running' end) as status
      from instances i
    ), changes as (
      select e.instance_id as id, e.created_at as at, e.id as seq, e.data->>'status' as status
      from instances i join events e on e.instance_id = i.id and e.worker_event_id is null
      where e.type = 'instance.status' and e.created_at >= ${f} and e.created_at < ${t}
    ), timeline as (
      select p.id, p.at, p.status, coalesce(lead(p.at) over (partition by p.id order by p.at, p.seq), ${t}::timestamptz) as until
      from (select id, at, seq, status from init union all select id, at, seq, status from changes) p
    ), per_hour as (
      select r.id, h.h, sum(extract(epoch from least(r.until, h.h + interval '1 hour') - greatest(r.at, h.h))) as seconds
      from timeline r
      join generate_series(${f}::timestamptz, ${t}::timestamptz - interval '1 hour', interval '1 hour') as h(h)
        on r.at < h.h + interval '1 hour' and r.until > h.h
      where r.status = 'running'
      group by r.id, h.h
    )
    insert into usage_ledger (user_id, instance_id, metric, provider, quantity, source, occurred_at)
    select i.user_id, i.id, 'instance_seconds', i.provider::text, least(round(p.seconds), 3600)::bigint,
           'instance:' || i.id || ':' || to_char(p.h at time zone 'UTC', 'YYYY-MM-DD"T"HH24":00:00.000Z"'), p.h
    from per_hour p join instances i on i.id = p.id
    where round(p.seconds) > 0
    on conflict (source) do nothing
    returning quantity`;
  return { rows: rows.length, seconds: rows.reduce((n, r) => n + Number(r.quantity), 0) };
}

export class InstanceSecondsJob {
  private readonly job: SingletonJob;
  /** Hours before this are closed (by this process); the first pass catches up `catchUpHours`. */
  private closedThrough: Date | undefined;

  constructor(
    databaseUrl: string,
    private readonly logger: Logger,
    private readonly opts: InstanceSecondsOptions = {},
  ) {
    this.job = new SingletonJob(databaseUrl, logger, { name: 'instance-seconds', lockKey: USAGE_LOCK, applicationName: 'wgs-gateway-usage' });
  }

  /** Closes the hours that ended at least `graceMs` before `now` and are not closed yet; skipped when another replica holds the lock. */
  async runOnce(now: Date = new Date()): Promise<InstanceSecondsResult> {
    const to = hourStart(new Date(now.getTime() - (this.opts.graceMs ?? 120_000)));
    const from = this.closedThrough ?? new Date(to.getTime() - (this.opts.catchUpHours ?? 24) * HOUR_MS);
    const result = await this.job.locked(async (sql) => {
      const done = await accrueInstanceSeconds(sql, from, to);
      if (to > from) this.closedThrough = to;
      if (done.rows) this.logger.info({ from, to, ...done }, 'instance seconds accrued');
      return { skipped: false as const, from, to, ...done };
    });
    return result ?? { skipped: true };
  }

  /** Runs a pass every `intervalMs` (default 5 minutes), the first one shortly after start. */
  start(): void {
    this.job.start(() => this.runOnce(), this.opts.intervalMs ?? 5 * 60_000);
  }

  stop(): Promise<void> {
    return this.job.stop();
  }
}
