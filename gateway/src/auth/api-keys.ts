import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { and, eq, isNull, lt, or, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { apiKeys, users, type User } from '../db/schema';

export const API_KEY_PREFIX = 'wgs_';
/** 32 random bytes: 256 bits of entropy, base64url (43 characters). */
const KEY_BYTES = 32;
const KEY_RE = /^wgs_[A-Za-z0-9_-]{43}$/;
/** Characters of the key kept in clear so a person can tell keys apart. */
const DISPLAY_PREFIX_LENGTH = API_KEY_PREFIX.length + 8;

export function generateApiKey(): string {
  return API_KEY_PREFIX + randomBytes(KEY_BYTES).toString('base64url');
}

/**
 * Keys carry 256 random bits, so a fast hash is enough: SHA-256 cannot be
 * reversed and brute force over the key space is out of reach.
 */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function displayPrefix(key: string): string {
  return key.slice(0, DISPLAY_PREFIX_LENGTH);
}

/** Creates a key for a user; the clear key is returned once and never stored. */
export async function issueApiKey(db: Pick<Db, 'insert'>, userId: number) {
  const key = generateApiKey();
  const [row] = await db
    .insert(apiKeys)
    .values({ userId, prefix: displayPrefix(key), hash: hashApiKey(key) })
    .returning({ id: apiKeys.id, prefix: apiKeys.prefix, createdAt: apiKeys.createdAt });
  return { ...row!, apiKey: key };
}

/** The user holding this key, or null. Hashes are compared in constant time. */
export async function authenticateApiKey(db: Db, presented: string): Promise<User | null> {
  return (await resolveApiKey(db, presented))?.user ?? null;
}

/** The user holding this key and the key's id (rate limits count per key), or null. */
export async function resolveApiKey(db: Db, presented: string): Promise<{ user: User; keyId: number } | null> {
  if (!KEY_RE.test(presented)) return null;
  const hash = hashApiKey(presented);
  const [row] = await db
    .select({ keyId: apiKeys.id, hash: apiKeys.hash, user: users })
    .from(apiKeys)
    .innerJoin(users, eq(users.id, apiKeys.userId))
    .where(eq(apiKeys.hash, hash))
    .limit(1);
  if (!row || !timingSafeEqual(Buffer.from(row.hash, 'hex'), Buffer.from(hash, 'hex'))) return null;
  touchKey(db, row.keyId);
  return { user: row.user, keyId: row.keyId };
}

const TOUCH_INTERVAL_MS = 60_000;
/** When this process last recorded each key's use, per database (key ids are per database); bounded by clearing. */
const touched = new WeakMap<Db, Map<number, number>>();

/** Records use at most once a minute per key, off the request path. */
function touchKey(db: Db, keyId: number): void {
  let touchedAt = touched.get(db);
  if (!touchedAt) touched.set(db, (touchedAt = new Map()));
  const now = Date.now();
  if (now - (touchedAt.get(keyId) ?? 0) < TOUCH_INTERVAL_MS) return;
  if (touchedAt.size >= 10_000) touchedAt.clear();
  touchedAt.set(keyId, now);
  // The WHERE keeps several gateway replicas to one write a minute as well.
  db.update(apiKeys)
    .set({ lastUsedAt: sql`now()` })
    .where(and(eq(apiKeys.id, keyId), or(isNull(apiKeys.lastUsedAt), lt(apiKeys.lastUsedAt, sql`now() - interval '1 minute'`))))
    .execute()
    .catch(() => {});
}

/** Constant-time comparison of two secrets of any length. */
export function secretsEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}
