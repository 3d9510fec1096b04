import { t } from 'elysia';

/** Database ids are Postgres `integer`: bounded here so no id reaches SQL out of range. */
export const MAX_ID = 2_147_483_647;

/**
 * The decimal integers from `min` (0 or 1) to `max` as a regular expression: digits only (no sign,
 * point, exponent, hex or blank), leading zeros allowed up to as many digits as `max` has (so no
 * value that long can be out of a safe integer's range). The range is in the pattern so the validator rejects it, naming the parameter.
 */
export function integerPattern(min: 0 | 1, max: number): string {
  const m = String(max);
  const alternatives: string[] = [];
  // Fewer digits than max: anything from 1 on.
  if (m.length > 1) alternatives.push(m.length === 2 ? '[1-9]' : `[1-9][0-9]{0,${m.length - 2}}`);
  // As many digits as max: its first i digits, a smaller one at i, then any.
  for (let i = 0; i < m.length; i++) {
    const lo = i === 0 ? 1 : 0;
    const hi = Number(m[i]) - 1;
    if (hi < lo) continue;
    const rest = m.length - i - 1;
    alternatives.push(`${m.slice(0, i)}${lo === hi ? String(lo) : `[${lo}-${hi}]`}${rest === 0 ? '' : rest === 1 ? '[0-9]' : `[0-9]{${rest}}`}`);
  }
  alternatives.push(m);
  return `^(?=[0-9]{1,${m.length}}$)0*(?:${min === 0 ? '0|' : ''}${alternatives.join('|')})$`;
}

/**
 * A positive integer path or query parameter, 1 to `max`, handed to the handler as a number. Strict where
 * `t.Numeric` is not (it takes `0x1`, `1.5`, `1e3`, ` 1`), and a value out of range is refused by the schema,
 * so the 400 `validation_failed` names the parameter.
 */
export const PositiveInt = (description: string, max: number, error = `must be an integer from 1 to ${max}`) =>
  t
    .Transform(t.String({ pattern: integerPattern(1, max), error, description }))
    .Decode((value) => Number(value))
    .Encode((value) => String(value));

/** A database id in a path or query: a decimal integer from 1 to 2147483647, a number to the handler. */
export const Id = (description: string) => PositiveInt(description, MAX_ID, 'must be a positive integer');

export const IdParams = t.Object({ id: Id('id') });

/**
 * An integer field of a JSON body, `min` (0 or 1) to `max`: a JSON integer or a string of digits (`"5"`),
 * a number to the handler. Elysia's `t.Integer` would also take `" "` (as 0), `"0x10"` or `"1e2"`.
 */
export const IntegerField = (description: string, min: 0 | 1, max: number) =>
  t
    .Transform(
      t.Union([t.String({ pattern: integerPattern(min, max) }), t.Number({ multipleOf: 1, minimum: min, maximum: max })], {
        error: `must be an integer from ${min} to ${max}`,
        description,
      }),
    )
    .Decode((value) => Number(value))
    .Encode((value) => value);

/** The instants a time parameter may name: years 1970 to 9999 (UTC), which JS Date and Postgres timestamptz both hold. */
export const MIN_INSTANT_MS = 0;
export const MAX_INSTANT_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

const ISO_INSTANT = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|([+-])(\d{2}):?(\d{2}))?)?$/;

/**
 * An ISO 8601 date (midnight UTC) or date-time (UTC when it names no offset) as a Date; undefined
 * unless it is a real calendar date and time (no 2026-02-31, no 25:00) from 1970 to 9999.
 */
export function isoInstant(value: string): Date | undefined {
  const m = ISO_INSTANT.exec(value);
  if (!m) return undefined;
  const [year, month, day, hour = 0, minute = 0, second = 0] = m.slice(1, 7).map((s) => (s === undefined ? undefined : Number(s)));
  const ms = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0;
  const offsetMin = m[9] ? (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 60 + Number(m[11])) : 0;
  if (year! < 1970 || month! < 1 || month! > 12 || day! < 1) return undefined;
  if (day! > new Date(Date.UTC(year!, month!, 0)).getUTCDate()) return undefined; // the month's last day
  if (hour > 23 || minute > 59 || second > 59 || (m[10] !== undefined && (Number(m[10]) > 23 || Number(m[11]) > 59))) return undefined;
  const at = Date.UTC(year!, month! - 1, day!, hour, minute, second, ms) - offsetMin * 60_000;
  return at >= MIN_INSTANT_MS && at <= MAX_INSTANT_MS ? new Date(at) : undefined;
}
