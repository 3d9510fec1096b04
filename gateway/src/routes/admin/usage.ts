import { Elysia, t } from 'elysia';
import type { AppDeps } from '../../http/context';
import { adminSecurity } from '../../http/auth';
import { errorResponses } from '../../http/errors';
import { Id } from '../../http/params';
import { csvResponse, parseUsageQuery, toCsv, usageReport, usageTotals, wantsCsv, type UsageReportRow } from '../../usage/report';
import { UsageQueryParams } from '../api/usage';

const CSV_COLUMNS: { header: string; key: keyof UsageReportRow }[] = [
  { header: 'period', key: 'period' },
  { header: 'user_id', key: 'userId' },
  { header: 'email', key: 'email' },
  { header: 'metric', key: 'metric' },
  { header: 'provider', key: 'provider' },
  { header: 'quantity', key: 'quantity' },
];

/** Usage across tenants (or of one, `userId`), by UTC period, tenant, metric and provider. */
export function adminUsageRoutes({ database }: AppDeps) {
  const { db } = database;
  return new Elysia({ name: 'admin-usage', prefix: '/admin/usage', detail: { tags: ['admin'], security: adminSecurity } }).get(
    '',
    async ({ request, query }) => {
      const q = parseUsageQuery(query);
      const rows = await usageReport(db, q, { perUser: true, ...(query.userId !== undefined && { userId: query.userId }) });
      if (wantsCsv(query.format, request.headers.get('accept'))) {
        return csvResponse(toCsv(CSV_COLUMNS, rows), `usage-all-${q.from.toISOString().slice(0, 10)}-${q.granularity}.csv`) as never; // a download: the JSON schema below is not checked against it
      }
      const perUser = rows.map((r) => ({ ...r, userId: r.userId!, email: r.email ?? '' }));
      return { from: q.from.toISOString(), to: q.to.toISOString(), granularity: q.granularity, rows: perUser, totals: usageTotals(rows) };
    },
    {
      query: t.Composite([UsageQueryParams, t.Object({ userId: t.Optional(Id('only this tenant')) })]),
      detail: { summary: 'Usage of every tenant, by UTC hour, day or month (JSON or CSV)' },
      response: {
        200: t.Object({
          from: t.String(),
          to: t.String(),
          granularity: t.String(),
          rows: t.Array(
            t.Object({
              period: t.String(),
              userId: t.Integer(),
              email: t.String(),
              metric: t.String(),
              provider: t.Nullable(t.String()),
              quantity: t.Number(),
            }),
          ),
          totals: t.Record(t.String(), t.Number()),
        }),
        ...errorResponses(400, 401),
      },
    },
  );
}
