import { t } from 'elysia';

/** Database ids are Postgres `integer`: bounded here so no id reaches SQL out of range. */
export const Id = (description: string) => t.Numeric({ minimum: 1, maximum: 2_147_483_647, description, error: 'must be a positive integer' });

export const IdParams = t.Object({ id: Id('id') });
