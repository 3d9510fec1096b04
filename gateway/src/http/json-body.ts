/**
 * Strict JSON request bodies, checked as sent.
 *
 * Elysia's `normalize` step (exact-mirror) rebuilds a body from its schema
 * *before* checking it, so a schema's `additionalProperties: false` is never
 * enforced and wrong shapes are quietly reshaped: an unknown field vanishes,
 * a string or array given for a record becomes an object of its characters or
 * items (`"abc"` → `{"0":"a","1":"b","2":"c"}`), and a number or string given
 * for an `Object | null` field becomes `{}` (which the handler then reads as
 * "nothing set"). A body that is not an object at all passes a schema whose
 * fields are all optional. Elysia's `t.Integer` also accepts numeric strings
 * (`" "` is 0): body schemas checked here use TypeBox's own `Type.Integer`.
 *
 * `strictJsonBody(schema)` is a route's `transform` hook: it runs after the
 * body is parsed and before that step, and answers 400 naming the field for
 * anything the schema does not accept as sent.
 */
import type { TObject } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { ApiError, describeValidation } from './errors';

const invalidBody = (message: string) => new ApiError(400, 'invalid_body', message);

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'empty';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'string' ? 'a string' : typeof value === 'object' ? 'form data' : `a ${typeof value}`;
}

/** `/a/0/b` → `a[0].b`, as describeValidation names fields. */
const fieldName = (path: string) => path.replace(/\/(\d+)(?=\/|$)/g, '[$1]').replace(/^\//, '').replaceAll('/', '.');

/** The first unknown field, at any depth: also inside an object given for an `Object | null` field. */
function unknownField(errors: Iterable<ValueError>): ValueError | undefined {
  for (const error of errors) {
    if (error.type === ValueErrorType.ObjectAdditionalProperties) return error;
    if (error.type === ValueErrorType.Union && typeof error.value === 'object' && error.value !== null) {
      for (const variant of error.errors) {
        const found = unknownField(variant);
        if (found) return found;
      }
    }
  }
  return undefined;
}

/**
 * A `transform` hook refusing, with 400, a body that is not a JSON object sent
 * as `application/json`, has a field the schema does not name, or does not
 * match the schema; `minProperties: 1` on the schema refuses an empty change.
 */
export function strictJsonBody(schema: TObject) {
  const compiled = TypeCompiler.Compile(schema);
  const fields = Object.keys(schema.properties);
  return function checkJsonBody({ request, body }: { request: Request; body: unknown }): void {
    const type = request.headers.get('content-type')?.split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') {
      throw invalidBody(`request body must be a JSON object sent as content-type application/json${type ? `, not ${type}` : ''}`);
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalidBody(`request body must be a JSON object, not ${kindOf(body)}`);
    if (compiled.Check(body)) return;
    const unknown = unknownField(compiled.Errors(body));
    if (unknown) {
      const known = Object.keys((unknown.schema as TObject).properties ?? {});
      throw new ApiError(400, 'validation_failed', `invalid field '${fieldName(unknown.path)}': unknown field; one of ${known.join(', ')}`);
    }
    const first = compiled.Errors(body).First();
    if (first?.type === ValueErrorType.ObjectMinProperties && first.path === '') {
      throw new ApiError(400, 'validation_failed', `nothing to change: give at least one of ${fields.join(', ')}`);
    }
    throw new ApiError(400, 'validation_failed', describeValidation('body', [...compiled.Errors(body)]));
  };
}
