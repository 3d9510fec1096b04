import { Elysia, t } from 'elysia';
import type { AppDeps } from '../../http/context';
import { tenant, tenantSecurity } from '../../http/auth';
import { errorResponses } from '../../http/errors';
import { csvResponse, parseUsageQuery, toCsv, usageReport, usageTotals, wantsCsv, type UsageReportRow } from '../../usage/report';

export const UsageQueryParams = t.Object({
  from: t.Optional(
    t.String({ description: 'ISO 8601 start, inclusive (a date, or a date-time: UTC without an offset), a real calendar date from 1970 to 9999; default: the start of this UTC month' }),
  ),
  to: t.Optional(t.String({ description: 'ISO 8601 end, exclusive, as `from`; default: the start of next UTC month' })),
  granularity: t.Optional(t.String({ description: 'hour (at most 31 days), day (at most 2 years, default) or month (at most 10 years)' })),
  format: t.Optional(t.Union([t.Literal('json'), t.Literal('csv')], { description: 'csv: a CSV download (so does Accept: text/csv)' })),
});

const UsageRowView = t.Object({
  period: t.String({ description: 'start of the UTC period, ISO 8601' }),
  metric: t.String(),
  provider: t.Nullable(t.String()),
  quantity: t.Number(),
});

export const CSV_COLUMNS: { header: string; key: keyof UsageReportRow }[] = [
  { header: 'period', key: 'period' },
  { header: 'metric', key: 'metric' },
  { header: 'provider', key: 'provider' },
  { header: 'quantity', key: 'quantity' },
];

/** The tenant's own usage from the usage ledger, by UTC period, metric and provider. */
export function usageRoutes({ database }: AppDeps) {
  const { db } = database;
  return new Elysia({ name: 'api-usage', prefix: '/api', detail: { tags: ['tenant'], security: tenantSecurity } }).get(
    '/usage',
    async ({ request, query }) => {
      const q = parseUsageQuery(query);
      const rows = await usageReport(db, q, { userId: tenant(request).id });
      if (wantsCsv(query.format, request.headers.get('accept'))) {
        return csvResponse(toCsv(CSV_COLUMNS, rows), `usage-${q.from.toISOString().slice(0, 10)}-${q.granularity}.csv`) as never; // a download: the JSON schema below is not checked against it
      }
      return { from: q.from.toISOString(), to: q.to.toISOString(), granularity: q.granularity, rows, totals: usageTotals(rows) };
    },
    {
      query: UsageQueryParams,
      detail: { summary: 'What this tenant used, by UTC hour, day or month (JSON or CSV)' },
      response: {
        200: t.Object({
          from: t.String(),
          to: t.String(),
          granularity: t.String(),
          rows: t.Array(UsageRowView),
          totals: t.Record(t.String(), t.Number()),
        }),
        ...errorResponses(400, 401),
      },
    },
  );
}
