/**
 * The Cloud API account of a `waba` instance: what the API accepts on create
 * and update (checked here, 422 naming the field), how it is stored (Meta's
 * ids in the clear, secrets sealed), what the API shows of it (never a
 * secret), and what its worker is given.
 */
import { eq, inArray } from 'drizzle-orm';
import { t } from 'elysia';
import type { Db } from '../db/client';
import { wabaAccounts, type WabaAccount } from '../db/schema';
import { ApiError } from '../http/errors';
import type { SecretBox } from '../lib/secret-box';

export const WABA_FIELDS = ['phoneNumberId', 'wabaId', 'accessToken', 'appSecret', 'verifyToken'] as const;
type WabaField = (typeof WABA_FIELDS)[number];
export type WabaInput = Record<WabaField, string>;

const RULES: Record<WabaField, { re: RegExp; says: string }> = {
  phoneNumberId: { re: /^[0-9]{1,32}$/, says: "the Phone number ID from the app's WhatsApp → API Setup page (digits)" },
  wabaId: { re: /^[0-9]{1,32}$/, says: 'the WhatsApp Business Account ID (digits)' },
  accessToken: { re: /^[\x21-\x7e]{16,4096}$/, says: 'a Graph API access token (a system user token), 16 to 4096 characters without spaces' },
  appSecret: { re: /^[\x21-\x7e]{8,256}$/, says: "the Meta app's App secret (App settings → Basic), 8 to 256 characters without spaces" },
  verifyToken: { re: /^[\x21-\x7e]{1,256}$/, says: 'the Verify token you type into the webhook setup, 1 to 256 characters without spaces' },
};

/** The API's `waba` object: loosely typed here, checked by checkWabaInput so every problem is a 422 naming the field. */
export const WabaBody = t.Unknown({
  description:
    'provider waba only: `{phoneNumberId, wabaId, accessToken, appSecret, verifyToken}` from the Meta app (see README "WhatsApp Cloud API"). ' +
    'The secrets are stored encrypted and never shown again.',
});

const unprocessable = (field: string, message: string) => new ApiError(422, 'invalid_field', `invalid field '${field}': ${message}`);

/** A whole account (create) or, with `partial`, the fields given (update; at least one). */
export function checkWabaInput(value: unknown, opts: { partial: true }): Partial<WabaInput>;
export function checkWabaInput(value: unknown, opts?: { partial?: false }): WabaInput;
export function checkWabaInput(value: unknown, opts: { partial?: boolean } = {}): Partial<WabaInput> {
  if (value === undefined) throw unprocessable('waba', `required for provider waba: {${WABA_FIELDS.join(', ')}}`);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw unprocessable('waba', `must be an object {${WABA_FIELDS.join(', ')}}`);
  const given = value as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!(WABA_FIELDS as readonly string[]).includes(key)) throw unprocessable(`waba.${key}`, `unknown field; the fields are ${WABA_FIELDS.join(', ')}`);
  }
  const out: Partial<WabaInput> = {};
  for (const field of WABA_FIELDS) {
    const v = given[field];
    if (v === undefined) {
      if (opts.partial) continue;
      throw unprocessable(`waba.${field}`, `is required: ${RULES[field].says}`);
    }
    if (typeof v !== 'string' || !RULES[field].re.test(v)) throw unprocessable(`waba.${field}`, `must be ${RULES[field].says}`);
    out[field] = v;
  }
  if (opts.partial && Object.keys(out).length === 0) throw unprocessable('waba', `give at least one of ${WABA_FIELDS.join(', ')}`);
  return out;
}

/** The row to store for a new account. */
export function sealAccount(secrets: SecretBox, input: WabaInput, ids: { instanceId: number; userId: number }) {
  return {
    ...ids,
    phoneNumberId: input.phoneNumberId,
    wabaId: input.wabaId,
    accessTokenSealed: secrets.seal(input.accessToken),
    accessTokenLast4: input.accessToken.slice(-4),
    appSecretSealed: secrets.seal(input.appSecret),
    verifyTokenSealed: secrets.seal(input.verifyToken),
  };
}

/** The columns an update changes. */
export function sealChanges(secrets: SecretBox, input: Partial<WabaInput>) {
  return {
    ...(input.phoneNumberId !== undefined && { phoneNumberId: input.phoneNumberId }),
    ...(input.wabaId !== undefined && { wabaId: input.wabaId }),
    ...(input.accessToken !== undefined && { accessTokenSealed: secrets.seal(input.accessToken), accessTokenLast4: input.accessToken.slice(-4) }),
    ...(input.appSecret !== undefined && { appSecretSealed: secrets.seal(input.appSecret) }),
    ...(input.verifyToken !== undefined && { verifyTokenSealed: secrets.seal(input.verifyToken) }),
  };
}

/** Where Meta must send this number's webhooks, relative to the gateway's public URL. */
export const callbackPath = (instanceId: number) => `/webhooks/waba/${instanceId}`;

export const WabaView = t.Object(
  {
    phoneNumberId: t.String(),
    wabaId: t.String(),
    accessToken: t.String({ description: 'only its last 4 characters, e.g. "…a1b2"' }),
    appSecret: t.Literal(true, { description: 'set (never shown)' }),
    verifyToken: t.Literal(true, { description: 'set (never shown)' }),
    callbackPath: t.String({ description: "the Callback URL to register in the Meta app, after the gateway's public https:// origin" }),
  },
  { description: 'provider waba: the Cloud API account, without its secrets' },
);

export function toWabaView(a: WabaAccount) {
  return {
    phoneNumberId: a.phoneNumberId,
    wabaId: a.wabaId,
    accessToken: `…${a.accessTokenLast4}`,
    appSecret: true as const,
    verifyToken: true as const,
    callbackPath: callbackPath(a.instanceId),
  };
}

/** The accounts of these instances, by instance id (one query). */
export async function wabaViews(db: Db, instanceIds: number[]): Promise<Map<number, ReturnType<typeof toWabaView>>> {
  if (instanceIds.length === 0) return new Map();
  const rows = await db.select().from(wabaAccounts).where(inArray(wabaAccounts.instanceId, instanceIds));
  return new Map(rows.map((a) => [a.instanceId, toWabaView(a)]));
}

/** The worker's WABA_* variables (the token opened: it travels only in the worker's environment). */
export async function wabaWorkerEnv(db: Db, secrets: SecretBox, instanceId: number): Promise<Record<string, string>> {
  const [a] = await db.select().from(wabaAccounts).where(eq(wabaAccounts.instanceId, instanceId));
  if (!a) throw new Error(`instance ${instanceId} has no Cloud API account (waba_accounts row missing)`);
  return { WABA_PHONE_NUMBER_ID: a.phoneNumberId, WABA_ID: a.wabaId, WABA_ACCESS_TOKEN: secrets.open(a.accessTokenSealed) };
}
