/**
 * The admin API's plan bodies and views, and the check that turns a body into
 * column values: unknown providers and features are refused naming the field.
 */
import { t } from 'elysia';
import { Type, type TSchema } from '@sinclair/typebox';
import { PROVIDERS, type plans } from '../db/schema';
import { ApiError } from '../http/errors';
import { FEATURE_NAMES, FEATURES } from './features';

const MAX_INT = 2_147_483_647;
// TypeBox's own integer, a JSON number only: Elysia's t.Integer also takes a
// numeric string, and `" "` is one (it reads as 0). Bodies are checked as sent
// (http/json-body.ts).
const Count = (description: string) => Type.Integer({ minimum: 0, maximum: MAX_INT, description, error: `must be an integer from 0 to ${MAX_INT}, or null (unlimited)` });
const Amount = (description: string) =>
  Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description, error: 'must be a non-negative integer, or null (unlimited)' });
const PerMinute = (description: string) => Type.Integer({ minimum: 1, maximum: MAX_INT, description, error: `must be an integer from 1 to ${MAX_INT}, or null (unlimited)` });
/** `T | null`, failing with T's message: a union's own ("expected union value") names nothing. */
const OrNull = <T extends TSchema>(schema: T, error = schema.error as string) => t.Nullable(schema, { error });
const Name = t.String({ minLength: 1, maxLength: 64, pattern: '\\S', description: 'unique, case-insensitive', error: 'must be 1 to 64 characters, not only spaces' });
const Providers = t.Array(t.String({ maxLength: 32 }), {
  maxItems: 16,
  description: `providers tenants on this plan may create instances with, of ${PROVIDERS.join(', ')}; null or omitted: all`,
});
const Features = t.Array(t.String({ maxLength: 32 }), {
  maxItems: 16,
  description: `features of this plan: ${FEATURE_NAMES.map((f) => `\`${f}\` (${FEATURES[f]})`).join('; ')}; null or omitted: all`,
});
const RateLimit = t.Object(
  {
    perKey: t.Optional(OrNull(PerMinute('API requests per minute per API key'))),
    perTenant: t.Optional(OrNull(PerMinute("API requests per minute across all the tenant's keys"))),
  },
  { additionalProperties: false },
);

const limits = {
  maxInstances: t.Optional(OrNull(Count('instances a tenant may have at once; null: unlimited'))),
  messagesPerMonth: t.Optional(OrNull(Amount('messages sent per UTC calendar month; null: unlimited'))),
  mediaBytesPerMonth: t.Optional(OrNull(Amount('media bytes (sent and received) per UTC calendar month; null: unlimited'))),
  rateLimit: t.Optional(OrNull(RateLimit, 'must be an object {perKey?, perTenant?}, or null (both unlimited)')),
  allowedProviders: t.Optional(OrNull(Providers, `must be a list of providers (${PROVIDERS.join(', ')}), or null (all)`)),
  features: t.Optional(OrNull(Features, `must be a list of features (${FEATURE_NAMES.join(', ')}), or null (all)`)),
};

export const PlanBody = t.Object(
  { name: Name, ...limits, default: t.Optional(t.Boolean({ description: 'make this the default plan (the previous default stops being it)' })) },
  { additionalProperties: false },
);
export const PlanPatch = t.Object(
  {
    name: t.Optional(Name),
    ...limits,
    default: t.Optional(t.Boolean({ description: 'true: make this the default plan; false is refused on the default plan (make another one the default)' })),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type PlanBody = typeof PlanBody.static;
export type PlanPatch = typeof PlanPatch.static;

export const PlanView = t.Object({
  id: t.Integer(),
  name: t.String(),
  default: t.Boolean({ description: 'users without a plan of their own are on it' }),
  maxInstances: t.Nullable(t.Integer()),
  messagesPerMonth: t.Nullable(t.Integer()),
  mediaBytesPerMonth: t.Nullable(t.Integer()),
  rateLimit: t.Object({ perKey: t.Nullable(t.Integer()), perTenant: t.Nullable(t.Integer()) }),
  allowedProviders: t.Nullable(t.Array(t.String())),
  features: t.Nullable(t.Array(t.String())),
});
export const AdminPlanView = t.Composite([
  PlanView,
  t.Object({ users: t.Integer({ description: 'users on this plan (for the default plan: with those without a plan of their own)' }), createdAt: t.Date(), updatedAt: t.Date() }),
]);

const invalid = (field: string, message: string) => new ApiError(400, 'validation_failed', `invalid field '${field}': ${message}`);

function names(field: string, given: string[], known: readonly string[], what: string): string[] {
  given.forEach((name, i) => {
    if (!known.includes(name)) throw invalid(`${field}.${i}`, `unknown ${what} "${name}"; one of ${known.join(', ')}`);
  });
  return [...new Set(given)];
}

type PlanColumns = Partial<Omit<typeof plans.$inferInsert, 'id' | 'isDefault' | 'createdAt' | 'updatedAt'>>;

/** The columns a body sets (only the fields it has; null clears a limit to unlimited). */
export function planColumns(body: PlanPatch): PlanColumns {
  const out: PlanColumns = {};
  if (body.name !== undefined) out.name = body.name.trim();
  if (body.maxInstances !== undefined) out.maxInstances = body.maxInstances;
  if (body.messagesPerMonth !== undefined) out.messagesPerMonth = body.messagesPerMonth;
  if (body.mediaBytesPerMonth !== undefined) out.mediaBytesPerMonth = body.mediaBytesPerMonth;
  if (body.rateLimit === null) {
    out.rateLimitPerKey = null;
    out.rateLimitPerTenant = null;
  } else if (body.rateLimit) {
    if (body.rateLimit.perKey !== undefined) out.rateLimitPerKey = body.rateLimit.perKey;
    if (body.rateLimit.perTenant !== undefined) out.rateLimitPerTenant = body.rateLimit.perTenant;
  }
  if (body.allowedProviders !== undefined) {
    out.allowedProviders = body.allowedProviders && names('allowedProviders', body.allowedProviders, PROVIDERS, 'provider');
  }
  if (body.features !== undefined) {
    out.features = body.features && names('features', body.features, FEATURE_NAMES, 'feature');
  }
  return out;
}
