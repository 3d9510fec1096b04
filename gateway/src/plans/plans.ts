/** Which plan a tenant is on: its own, or the default plan. */
import { eq } from 'drizzle-orm';
import type { Db } from '../db/client';
import { plans, users, type Plan } from '../db/schema';

export async function planOf(db: Db, userId: number): Promise<Plan> {
  const [own] = await db
    .select({ plan: plans })
    .from(users)
    .innerJoin(plans, eq(plans.id, users.planId))
    .where(eq(users.id, userId));
  if (own) return own.plan;
  const [fallback] = await db.select().from(plans).where(eq(plans.isDefault, true));
  if (!fallback) throw new Error('no default plan: migration 0014 creates one; an operator must keep one plan marked default');
  return fallback;
}

/** The API's view of a plan: limits null = unlimited, lists null = all. */
export function toPlanView(p: Plan) {
  return {
    id: p.id,
    name: p.name,
    default: p.isDefault,
    maxInstances: p.maxInstances,
    messagesPerMonth: p.messagesPerMonth,
    mediaBytesPerMonth: p.mediaBytesPerMonth,
    rateLimit: { perKey: p.rateLimitPerKey, perTenant: p.rateLimitPerTenant },
    allowedProviders: p.allowedProviders,
    features: p.features,
  };
}
