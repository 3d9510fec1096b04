import { Elysia, t } from 'elysia';
import type { AppDeps } from '../../http/context';
import { tenant, tenantSecurity } from '../../http/auth';
import { errorResponses } from '../../http/errors';

export function meRoutes(_deps: AppDeps) {
  return new Elysia({ name: 'api-me', prefix: '/api', detail: { tags: ['tenant'], security: tenantSecurity } }).get(
    '/me',
    ({ request }) => {
      const user = tenant(request);
      return { id: user.id, email: user.email };
    },
    {
      detail: { summary: 'The user owning the API key' },
      response: { 200: t.Object({ id: t.Integer(), email: t.String() }), ...errorResponses(401) },
    },
  );
}
