import { Elysia, t } from 'elysia';
import { ping } from '../db/client';
import type { AppDeps } from '../http/context';
import { ApiError, errorResponses } from '../http/errors';

export function healthRoutes({ database }: AppDeps) {
  return new Elysia({ name: 'health', detail: { tags: ['health'] } })
    .get('/healthz', () => ({ status: 'ok' as const }), {
      detail: { summary: 'The process is alive' },
      response: { 200: t.Object({ status: t.Literal('ok') }) },
    })
    .get(
      '/readyz',
      async () => {
        if (!(await ping(database.sql))) throw new ApiError(503, 'database_unavailable', 'database is not reachable');
        return { status: 'ok' as const };
      },
      {
        detail: { summary: 'The database is reachable' },
        response: { 200: t.Object({ status: t.Literal('ok') }), ...errorResponses(503) },
      },
    );
}
