import { Elysia, t } from 'elysia';
import type { AppDeps } from '../../http/context';
import { tenant, tenantSecurity } from '../../http/auth';
import { errorResponses } from '../../http/errors';
import { planOf, toPlanView } from '../../plans/plans';
import { PlanView } from '../../plans/input';
import { usageVsQuota } from '../../plans/quotas';

const Used = (what: string) =>
  t.Object({ used: t.Integer({ description: what }), limit: t.Nullable(t.Integer({ description: "the plan's quota; null: unlimited" })) });

export function meRoutes({ database }: AppDeps) {
  const { db } = database;
  return new Elysia({ name: 'api-me', prefix: '/api', detail: { tags: ['tenant'], security: tenantSecurity } }).get(
    '/me',
    async ({ request }) => {
      const user = tenant(request);
      const plan = await planOf(db, user.id);
      const { period, ...usage } = await usageVsQuota(db, plan, user.id);
      return { id: user.id, email: user.email, plan: toPlanView(plan), period, usage };
    },
    {
      detail: { summary: "The user owning the API key, its plan, and this month's usage against the plan's quotas" },
      response: {
        200: t.Object({
          id: t.Integer(),
          email: t.String(),
          plan: PlanView,
          period: t.Object({ from: t.Date({ description: 'start of this UTC month' }), resetsAt: t.Date({ description: 'when monthly quotas reset: the next UTC month' }) }),
          usage: t.Object({
            messagesSent: Used('messages sent this month'),
            mediaBytes: Used('media bytes sent and received this month'),
            instances: Used('instances now'),
          }),
        }),
        ...errorResponses(401),
      },
    },
  );
}
