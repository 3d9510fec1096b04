import { Elysia, t } from 'elysia';
import { asc, count, eq, sql } from 'drizzle-orm';
import type { AppDeps } from '../../http/context';
import type { Db } from '../../db/client';
import { adminSecurity } from '../../http/auth';
import { ApiError, conflict, errorResponses, FOREIGN_KEY_VIOLATION, noContent, notFound, sqlState, UNIQUE_VIOLATION } from '../../http/errors';
import { IdParams } from '../../http/params';
import { strictJsonBody } from '../../http/json-body';
import { plans, users, type Plan } from '../../db/schema';
import { toPlanView } from '../../plans/plans';
import { AdminPlanView, PlanBody, planColumns, PlanPatch } from '../../plans/input';

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** Serializes changes of the default plan: the one-default index would refuse the loser of a race. */
const DEFAULT_PLAN_LOCK = 0x504c414e; // "PLAN"

/** The unique index an error violated, looking through drizzle's wrapper. */
function constraintOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const name = (e as { constraint_name?: unknown }).constraint_name;
    if (typeof name === 'string') return name;
  }
  return undefined;
}

const nameTaken = (name: string) => conflict('plan_name_taken', `a plan named ${name} already exists`);

export function adminPlanRoutes({ database }: AppDeps) {
  const { db } = database;

  async function usersOn(plan: Plan): Promise<number> {
    const [row] = await db
      .select({ n: count() })
      .from(users)
      .where(plan.isDefault ? sql`${users.planId} = ${plan.id} or ${users.planId} is null` : eq(users.planId, plan.id));
    return row!.n;
  }

  async function adminView(plan: Plan) {
    return { ...toPlanView(plan), users: await usersOn(plan), createdAt: plan.createdAt, updatedAt: plan.updatedAt };
  }

  /** Runs a write that may make a plan the default: the previous default is unmarked in the same transaction. */
  async function write<T>(makeDefault: boolean, name: string | undefined, fn: (tx: Tx) => Promise<T>): Promise<T> {
    try {
      return await db.transaction(async (tx) => {
        if (makeDefault) {
          await tx.execute(sql`select pg_advisory_xact_lock(${DEFAULT_PLAN_LOCK})`);
          await tx.update(plans).set({ isDefault: false, updatedAt: new Date() }).where(eq(plans.isDefault, true));
        }
        return fn(tx);
      });
    } catch (err) {
      if (sqlState(err) === UNIQUE_VIOLATION && constraintOf(err) === 'plans_name_lower_key') throw nameTaken(name ?? '');
      throw err;
    }
  }

  return new Elysia({ name: 'admin-plans', prefix: '/admin/plans', detail: { tags: ['admin'], security: adminSecurity } })
    .post(
      '',
      async ({ body, set }) => {
        const columns = planColumns(body);
        const created = await write(body.default === true, columns.name, async (tx) => {
          const [plan] = await tx.insert(plans).values({ ...columns, name: columns.name!, isDefault: body.default === true }).returning();
          return plan!;
        });
        set.status = 201;
        return adminView(created);
      },
      {
        body: PlanBody,
        transform: strictJsonBody(PlanBody),
        detail: {
          summary: 'Create a plan',
          description:
            'Limits omitted or null are unlimited; `allowedProviders` or `features` omitted or null allow all. `default: true` makes it the default plan (users without a plan of their own). ' +
            '400 `validation_failed` names the field (also an unknown provider or feature, or an unknown field; limits are JSON integers, never strings); ' +
            '400 `invalid_body` for a body that is not a JSON object sent as application/json; 409 `plan_name_taken`.',
        },
        response: { 201: AdminPlanView, ...errorResponses(400, 401, 409) },
      },
    )
    .get(
      '',
      async () => {
        const rows = await db.select().from(plans).orderBy(asc(plans.id));
        const counts = await db.select({ planId: users.planId, n: count() }).from(users).groupBy(users.planId);
        const on = (id: number | null) => counts.find((c) => c.planId === id)?.n ?? 0;
        return rows.map((p) => ({ ...toPlanView(p), users: on(p.id) + (p.isDefault ? on(null) : 0), createdAt: p.createdAt, updatedAt: p.updatedAt }));
      },
      { detail: { summary: 'List plans, with how many users are on each' }, response: { 200: t.Array(AdminPlanView), ...errorResponses(401) } },
    )
    .get(
      '/:id',
      async ({ params }) => {
        const [plan] = await db.select().from(plans).where(eq(plans.id, params.id));
        if (!plan) throw notFound(`plan ${params.id}`);
        return adminView(plan);
      },
      { params: IdParams, detail: { summary: 'Get a plan, with how many users are on it' }, response: { 200: AdminPlanView, ...errorResponses(400, 401, 404) } },
    )
    .patch(
      '/:id',
      async ({ params, body }) => {
        const columns = planColumns(body);
        const updated = await write(body.default === true, columns.name, async (tx) => {
          const [current] = await tx.select().from(plans).where(eq(plans.id, params.id)).for('update');
          if (!current) throw notFound(`plan ${params.id}`);
          if (body.default === false && current.isDefault) {
            throw new ApiError(422, 'default_plan_required', `invalid field 'default': plan ${current.name} is the default plan; make another plan the default instead`);
          }
          const [plan] = await tx
            .update(plans)
            .set({ ...columns, ...(body.default === true && { isDefault: true }), updatedAt: new Date() })
            .where(eq(plans.id, params.id))
            .returning();
          return plan!;
        });
        return adminView(updated);
      },
      {
        params: IdParams,
        body: PlanPatch,
        transform: strictJsonBody(PlanPatch),
        detail: {
          summary: 'Change a plan: only the given fields; null clears a limit (unlimited) or a list (all)',
          description:
            'Takes effect at the next check: lowering a quota below what a tenant uses refuses its next send or create, never removes anything. ' +
            '`default: true` moves the default to this plan; 422 `default_plan_required` for `default: false` on the default plan. ' +
            '400 as for POST, and for `{}` (nothing to change).',
        },
        response: { 200: AdminPlanView, ...errorResponses(400, 401, 404, 409, 422) },
      },
    )
    .delete(
      '/:id',
      async ({ params, set }) => {
        const [plan] = await db.select().from(plans).where(eq(plans.id, params.id));
        if (!plan) throw notFound(`plan ${params.id}`);
        if (plan.isDefault) throw conflict('plan_is_default', `plan ${plan.name} is the default plan; make another plan the default first`);
        const on = await usersOn(plan);
        if (on > 0) throw conflict('plan_in_use', `plan ${plan.name} has ${on} user${on === 1 ? '' : 's'}; move them to another plan first`);
        // The RESTRICT foreign key catches a user assigned between the check and the delete;
        // the condition a plan that became the default meanwhile.
        const deleted = await db
          .delete(plans)
          .where(sql`${plans.id} = ${params.id} and not ${plans.isDefault}`)
          .returning({ id: plans.id })
          .catch((err) => {
            throw sqlState(err) === FOREIGN_KEY_VIOLATION ? conflict('plan_in_use', `plan ${plan.name} has users; move them to another plan first`) : err;
          });
        if (deleted.length === 0) throw conflict('plan_is_default', `plan ${plan.name} became the default plan; make another plan the default first`);
        set.status = 204;
      },
      {
        params: IdParams,
        detail: { summary: 'Delete a plan', description: '409 `plan_in_use` while users are on it, `plan_is_default` while it is the default plan.' },
        response: { ...noContent, ...errorResponses(400, 401, 404, 409) },
      },
    );
}
