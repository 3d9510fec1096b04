/**
 * Quota and plan checks, made before anything is queued or created:
 * 402 `quota_exceeded` when a monthly quota or the instance seats are used
 * up, 403 `not_in_plan` for a provider or feature the plan leaves out.
 * Monthly quotas count the usage ledger over the current UTC month.
 */
import { count, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { instances, type Plan } from '../db/schema';
import { ApiError } from '../http/errors';
import { monthStart, nextMonthStart, usageTotal } from '../usage/ledger';
import { FEATURES, type Feature } from './features';

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** Advisory lock class of a tenant's instance seats (the second key is the user id). */
const SEATS_LOCK_CLASS = 0x5345; // "SE"

export const quotaExceeded = (message: string) => new ApiError(402, 'quota_exceeded', message);
export const notInPlan = (message: string) => new ApiError(403, 'not_in_plan', message);

export function requireProvider(plan: Plan, provider: string): void {
  if (plan.allowedProviders && !plan.allowedProviders.includes(provider)) {
    throw notInPlan(`provider ${provider} is not in plan ${plan.name}; allowed: ${plan.allowedProviders.join(', ') || 'none'}`);
  }
}

export function hasFeature(plan: Plan, feature: Feature): boolean {
  return plan.features === null || plan.features.includes(feature);
}

export function requireFeature(plan: Plan, feature: Feature): void {
  if (!hasFeature(plan, feature)) throw notInPlan(`feature ${feature} (${FEATURES[feature]}) is not in plan ${plan.name}`);
}

export async function instancesOf(db: Pick<Db, 'select'>, userId: number): Promise<number> {
  const [row] = await db.select({ n: count() }).from(instances).where(eq(instances.userId, userId));
  return row!.n;
}

function seatsExceeded(plan: Plan, used: number): ApiError {
  return quotaExceeded(`maxInstances: ${used} of ${plan.maxInstances} used; delete an instance or move to a larger plan (plan ${plan.name})`);
}

/** A quick check before placement; not atomic (see `holdSeat`). */
export async function checkSeats(db: Db, plan: Plan, userId: number): Promise<void> {
  if (plan.maxInstances === null) return;
  const used = await instancesOf(db, userId);
  if (used >= plan.maxInstances) throw seatsExceeded(plan, used);
}

/**
 * The strict seat check, inside the transaction that inserts the instance:
 * a per-tenant advisory lock (held to commit) serializes this tenant's
 * creates on every replica, so the count it reads includes every committed
 * create and no two creates take the last seat.
 */
export async function holdSeat(tx: Tx, plan: Plan, userId: number): Promise<void> {
  if (plan.maxInstances === null) return;
  await tx.execute(sql`select pg_advisory_xact_lock(${SEATS_LOCK_CLASS}, ${userId})`);
  const used = await instancesOf(tx, userId);
  if (used >= plan.maxInstances) throw seatsExceeded(plan, used);
}

/**
 * Before a send is queued: this month's `messages_sent` must be below
 * `messagesPerMonth`; with media, this month's `media_bytes` plus the inline
 * bytes must fit `mediaBytesPerMonth` (URL media is counted once sent, when
 * its size is known: it is refused only when the quota is already used up).
 * Not atomic with the send: concurrent sends, and sends accepted but not yet
 * gone out (in flight, or queued while the worker reconnects), can overshoot
 * by that many.
 */
export async function checkSendQuota(
  db: Db,
  plan: Plan,
  userId: number,
  media?: { inlineBytes: number },
  now: Date = new Date(),
  /** Messages this request sends: a campaign's whole batch must fit (it is refused, not cut). */
  count = 1,
): Promise<void> {
  const from = monthStart(now);
  const to = nextMonthStart(now);
  const resets = `resets ${to.toISOString()}`;
  if (plan.messagesPerMonth !== null) {
    const used = await usageTotal(db, userId, 'messages_sent', from, to);
    if (used + count > plan.messagesPerMonth) {
      const these = count > 1 ? `, these ${count} messages do not fit` : '';
      throw quotaExceeded(`messagesPerMonth: ${used} of ${plan.messagesPerMonth} used this month${these} (plan ${plan.name}); ${resets}`);
    }
  }
  if (media && plan.mediaBytesPerMonth !== null) {
    const used = await usageTotal(db, userId, 'media_bytes', from, to);
    if (used >= plan.mediaBytesPerMonth || used + media.inlineBytes > plan.mediaBytesPerMonth) {
      const size = media.inlineBytes > 0 ? `this media is ${media.inlineBytes} bytes` : 'URL media is counted once sent';
      throw quotaExceeded(`mediaBytesPerMonth: ${used} of ${plan.mediaBytesPerMonth} bytes used this month, ${size} (plan ${plan.name}); ${resets}`);
    }
  }
}

/** This month's usage against the plan's quotas, as GET /api/me shows it. */
export async function usageVsQuota(db: Db, plan: Plan, userId: number, now: Date = new Date()) {
  const from = monthStart(now);
  const to = nextMonthStart(now);
  const [messagesSent, mediaBytes, instanceCount] = await Promise.all([
    usageTotal(db, userId, 'messages_sent', from, to),
    usageTotal(db, userId, 'media_bytes', from, to),
    instancesOf(db, userId),
  ]);
  return {
    period: { from, resetsAt: to },
    messagesSent: { used: messagesSent, limit: plan.messagesPerMonth },
    mediaBytes: { used: mediaBytes, limit: plan.mediaBytesPerMonth },
    instances: { used: instanceCount, limit: plan.maxInstances },
  };
}
