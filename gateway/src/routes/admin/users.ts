import { Elysia, t } from 'elysia';
import { and, asc, count, eq, sql } from 'drizzle-orm';
import type { AppDeps } from '../../http/context';
import { adminSecurity } from '../../http/auth';
import { ApiError, conflict, errorResponses, noContent, FOREIGN_KEY_VIOLATION, notFound, sqlState, UNIQUE_VIOLATION } from '../../http/errors';
import { Id, IdParams } from '../../http/params';
import { issueApiKey } from '../../auth/api-keys';
import { apiKeys, instances, plans, users } from '../../db/schema';
import { planOf, toPlanView } from '../../plans/plans';
import { PlanView } from '../../plans/input';

const EMAIL_PATTERN = '^[^\\s@]+@[^\\s@]+\\.[^\\s@]+$';

const KeyInfo = t.Object({
  id: t.Integer(),
  prefix: t.String({ description: 'first characters of the key, to tell keys apart' }),
  createdAt: t.Date(),
  lastUsedAt: t.Nullable(t.Date()),
});
const UserView = t.Object({ id: t.Integer(), email: t.String(), createdAt: t.Date(), keys: t.Array(KeyInfo) });
const NewKey = t.Object({
  id: t.Integer(),
  prefix: t.String(),
  apiKey: t.String({ description: 'shown once; only its hash is stored' }),
});

const UserPlanView = t.Composite([
  UserView,
  t.Object({
    planId: t.Nullable(t.Integer({ description: 'the plan assigned to the user; null: the default plan' })),
    plan: PlanView,
  }),
]);
const AssignPlan = t.Object(
  {
    planId: t.Optional(t.Nullable(t.Integer({ minimum: 1, maximum: 2_147_483_647, description: 'a plan id; null: the default plan' }))),
    plan: t.Optional(t.Nullable(t.String({ minLength: 1, maxLength: 64, description: 'a plan name (any case), instead of planId; null: the default plan' }))),
  },
  { additionalProperties: false },
);

const userHasInstances = () =>
  conflict('user_has_instances', 'Cannot delete user because they have instances; delete the instances first.');

export function adminUserRoutes({ database }: AppDeps) {
  const { db } = database;

  async function userView(id: number) {
    const user = await db.query.users.findFirst({ where: eq(users.id, id) });
    if (!user) throw notFound(`user ${id}`);
    const keys = await db
      .select({ id: apiKeys.id, prefix: apiKeys.prefix, createdAt: apiKeys.createdAt, lastUsedAt: apiKeys.lastUsedAt })
      .from(apiKeys)
      .where(eq(apiKeys.userId, id))
      .orderBy(asc(apiKeys.id));
    return { id: user.id, email: user.email, createdAt: user.createdAt, keys, planId: user.planId, plan: toPlanView(await planOf(db, id)) };
  }

  return new Elysia({ name: 'admin-users', prefix: '/admin/users', detail: { tags: ['admin'], security: adminSecurity } })
    .post(
      '',
      async ({ body, set }) => {
        const email = body.email.trim().toLowerCase();
        try {
          const created = await db.transaction(async (tx) => {
            const [user] = await tx.insert(users).values({ email }).returning();
            const key = await issueApiKey(tx, user!.id);
            return { id: user!.id, email: user!.email, createdAt: user!.createdAt, apiKey: key.apiKey, keyId: key.id };
          });
          set.status = 201;
          return created;
        } catch (err) {
          if (sqlState(err) === UNIQUE_VIOLATION) throw conflict('email_taken', `a user with email ${email} already exists`);
          throw err;
        }
      },
      {
        body: t.Object({ email: t.String({
            pattern: EMAIL_PATTERN,
            maxLength: 254,
            description: 'unique, case-insensitive',
            error: 'must be an email address of at most 254 characters',
          }) }),
        detail: { summary: 'Create a user and its first API key' },
        response: {
          201: t.Object({ id: t.Integer(), email: t.String(), createdAt: t.Date(), apiKey: t.String(), keyId: t.Integer() }),
          ...errorResponses(400, 401, 409),
        },
      },
    )
    .get(
      '',
      async () => {
        const rows = await db.select().from(users).orderBy(asc(users.id));
        const keys = await db
          .select({ id: apiKeys.id, userId: apiKeys.userId, prefix: apiKeys.prefix, createdAt: apiKeys.createdAt, lastUsedAt: apiKeys.lastUsedAt })
          .from(apiKeys)
          .orderBy(asc(apiKeys.id));
        return rows.map((u) => ({
          ...u,
          keys: keys.filter((k) => k.userId === u.id).map(({ userId: _, ...k }) => k),
        }));
      },
      { detail: { summary: 'List users with their API keys (prefixes only)' }, response: { 200: t.Array(UserView), ...errorResponses(401) } },
    )
    .get('/:id', ({ params }) => userView(params.id), {
      params: IdParams,
      detail: { summary: 'Get a user: its API keys (prefixes only) and its plan' },
      response: { 200: UserPlanView, ...errorResponses(400, 401, 404) },
    })
    .patch(
      '/:id',
      async ({ params, body }) => {
        if ((body.planId === undefined) === (body.plan === undefined)) {
          throw new ApiError(400, 'validation_failed', "invalid body: give exactly one of 'planId' or 'plan' (null: the default plan)");
        }
        let planId: number | null = null;
        if (body.planId != null || body.plan != null) {
          const field = body.planId != null ? 'planId' : 'plan';
          const [plan] = await db
            .select({ id: plans.id })
            .from(plans)
            .where(body.planId != null ? eq(plans.id, body.planId) : sql`lower(${plans.name}) = lower(${body.plan!.trim()})`);
          if (!plan) throw new ApiError(422, 'unknown_plan', `invalid field '${field}': no plan ${body.planId ?? JSON.stringify(body.plan)}`);
          planId = plan.id;
        }
        // The RESTRICT foreign key catches a plan deleted between the lookup and the update.
        const updated = await db
          .update(users)
          .set({ planId })
          .where(eq(users.id, params.id))
          .returning({ id: users.id })
          .catch((err) => {
            throw sqlState(err) === FOREIGN_KEY_VIOLATION ? new ApiError(422, 'unknown_plan', `plan ${planId} was deleted meanwhile`) : err;
          });
        if (updated.length === 0) throw notFound(`user ${params.id}`);
        return userView(params.id);
      },
      {
        params: IdParams,
        body: AssignPlan,
        detail: {
          summary: "Put a user on a plan: {planId} or {plan: name}; null: the default plan",
          description: "Takes effect at the user's next request. 422 `unknown_plan` for a plan that does not exist.",
        },
        response: { 200: UserPlanView, ...errorResponses(400, 401, 404, 422) },
      },
    )
    .delete(
      '/:id',
      async ({ params, set }) => {
        const [owned] = await db.select({ n: count() }).from(instances).where(eq(instances.userId, params.id));
        if (owned!.n > 0) throw userHasInstances();
        // The RESTRICT foreign key catches an instance created between the check and the delete.
        const deleted = await db
          .delete(users)
          .where(eq(users.id, params.id))
          .returning({ id: users.id })
          .catch((err) => {
            throw sqlState(err) === FOREIGN_KEY_VIOLATION ? userHasInstances() : err;
          });
        if (deleted.length === 0) throw notFound(`user ${params.id}`);
        set.status = 204;
      },
      { params: IdParams, detail: { summary: 'Delete a user and its API keys'}, response: { ...noContent, ...errorResponses(400, 401, 404, 409) } },
    )
    .post(
      '/:id/keys',
      async ({ params, set }) => {
        const user = await db.query.users.findFirst({ where: eq(users.id, params.id) });
        if (!user) throw notFound(`user ${params.id}`);
        const key = await issueApiKey(db, user.id);
        set.status = 201;
        return { id: key.id, prefix: key.prefix, apiKey: key.apiKey };
      },
      { params: IdParams, detail: { summary: 'Issue another API key (rotation)' }, response: { 201: NewKey, ...errorResponses(400, 401, 404) } },
    )
    .delete(
      '/:id/keys/:keyId',
      async ({ params, set }) => {
        const deleted = await db
          .delete(apiKeys)
          .where(and(eq(apiKeys.id, params.keyId), eq(apiKeys.userId, params.id)))
          .returning({ id: apiKeys.id });
        if (deleted.length === 0) throw notFound(`API key ${params.keyId} of user ${params.id}`);
        set.status = 204;
      },
      {
        params: t.Object({ id: Id('user id'), keyId: Id('API key id') }),
        detail: { summary: 'Revoke an API key'},
        response: { ...noContent, ...errorResponses(400, 401, 404) },
      },
    );
}
