import { t } from 'elysia';
import { badRequest } from './errors';

/** Database ids are Postgres `integer`: bounded here so no id reaches SQL out of range. */
export const Id = (description: string) => t.Numeric({ minimum: 1, maximum: 2_147_483_647, description, error: 'must be a positive integer' });

export const IdParams = t.Object({ id: Id('id') });

/** Up to as many digits as `max` has: no number that long can be out of a safe integer's range. */
const digitsUpTo = (max: number) => `^[0-9]{1,${String(max).length}}$`;

/**
 * A positive integer query or path parameter, a string to the schema and ranged by `positiveInt`:
 * Elysia's coerced numbers report a failed range without the parameter's name.
 */
export const PositiveIntString = (description: string, max: number) =>
  t.String({ pattern: digitsUpTo(max), error: `must be an integer from 1 to ${max}`, description });

/** The parameter's value, or 400 `validation_failed` naming it (the schema's message, for values it let through). */
export function positiveInt(where: 'query parameter' | 'path parameter', name: string, raw: string, max: number): number {
  const n = new RegExp(digitsUpTo(max)).test(raw) ? Number(raw) : NaN;
  if (!(n >= 1 && n <= max)) throw badRequest('validation_failed', `invalid ${where} '${name}': must be an integer from 1 to ${max}`);
  return n;
}
