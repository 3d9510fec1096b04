/**
 * Billing events for the operator (BILLING_WEBHOOK_URL): what they are, how
 * instance events are recorded in the transaction that creates or deletes the
 * instance, and the body a billing webhook carries.
 */
import { sql, type SQL } from 'drizzle-orm';
import type { Db } from '../db/client';

export const BILLING_EVENT_TYPES = ['usage.threshold', 'usage.period_closed', 'instance.created', 'instance.deleted'] as const;
export type BillingEventType = (typeof BILLING_EVENT_TYPES)[number];

/** A timestamptz as an ISO 8601 UTC string in SQL (`2026-11-30T23:59:59.123Z`), like Date.toISOString(). */
export function isoSql(expr: SQL | string): SQL {
  const e = typeof expr === 'string' ? sql.raw(expr) : expr;
  return sql`to_char(${e} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
}

/** SQL text (for raw statements): the tenant's plan row `p`, its own or the default plan, for users row `u`. */
export const PLAN_OF_USER = `left join plans p on p.id = coalesce(u.plan_id, (select id from plans where is_default limit 1))`;

type Tx = Pick<Db, 'execute'>;

/**
 * Records instance.created / instance.deleted for one instance, in the
 * caller's transaction: created right after the insert, deleted right before
 * the delete (the row is read here). `source` makes a retried statement
 * record it once. Does nothing when billing webhooks are off.
 */
export async function recordInstanceEvent(tx: Tx, enabled: boolean | undefined, type: 'instance.created' | 'instance.deleted', instanceId: number): Promise<void> {
  if (!enabled) return;
  const at = type === 'instance.created' ? sql.raw('i.created_at') : sql`now()`;
  await tx.execute(sql`
    insert into billing_events (type, user_id, tenant_email, data, source)
    select ${type}::text, i.user_id, u.email,
      jsonb_build_object('instanceId', i.id, 'provider', i.provider::text, 'phoneNumber', i.phone_number,
        'plan', case when p.id is null then null else jsonb_build_object('id', p.id, 'name', p.name) end, 'at', ${isoSql(at)}),
      ${type}::text || ':' || i.id
    from instances i join users u on u.id = i.user_id ${sql.raw(PLAN_OF_USER)}
    where i.id = ${instanceId}::int
    on conflict (source) do nothing`);
}

/** The stored row as the dispatcher reads it. */
export interface BillingEventRecord {
  id: number;
  type: string;
  user_id: number;
  tenant_email: string | null;
  data: Record<string, unknown>;
  created_at: string | Date;
}

/** `webhook-id` of a billing event: stable across redeliveries, so the receiver dedupes on it. */
export const billingMessageId = (id: number) => `bill_${id}`;

/** The body a billing webhook posts: the customer format `{type, timestamp, data}` plus the tenant. */
export function billingBody(row: BillingEventRecord): string {
  return JSON.stringify({
    type: row.type,
    timestamp: new Date(row.created_at).toISOString(),
    tenant: { id: row.user_id, email: row.tenant_email },
    data: row.data,
  });
}
