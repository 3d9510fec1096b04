import { timingSafeEqual } from 'node:crypto';
import { eq } from 'drizzle-orm';
import type { Db } from '../db/client';
import { apiKeys, users, type User } from '../db/schema';
import type { SecretBox } from '../lib/secret-box';

/**
 * Stream tokens: for browsers, whose EventSource cannot set an Authorization
 * header, `POST /api/stream-tokens` turns the API key into a token that opens
 * the event streams only (`?token=`), for five minutes. The token names the
 * key it came from and is signed with a key derived from WEBHOOK_SECRET_KEY,
 * so every replica checks it without a table; deleting the API key makes its
 * tokens useless at once, and ends the streams opened with them (the streams
 * check the key again every minute).
 *
 * Form: `wgst_<keyId>.<userId>.<expires, unix seconds>.<HMAC-SHA256, base64url>`.
 */
export const STREAM_TOKEN_PREFIX = 'wgst_';
export const STREAM_TOKEN_TTL_S = 300;
const PURPOSE = 'stream-token';
const TOKEN_RE = /^wgst_(\d{1,10})\.(\d{1,10})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/;

export function issueStreamToken(secrets: SecretBox, keyId: number, userId: number, nowMs = Date.now()): { token: string; expiresAt: Date } {
  const expires = Math.floor(nowMs / 1000) + STREAM_TOKEN_TTL_S;
  const body = `${keyId}.${userId}.${expires}`;
  return { token: `${STREAM_TOKEN_PREFIX}${body}.${secrets.mac(PURPOSE, body).toString('base64url')}`, expiresAt: new Date(expires * 1000) };
}

export type StreamTokenCheck = { ok: true; keyId: number; userId: number } | { ok: false; reason: string };

/** Checks form, signature and expiry (no database). */
export function verifyStreamToken(secrets: SecretBox, token: string, nowMs = Date.now()): StreamTokenCheck {
  const m = TOKEN_RE.exec(token);
  if (!m) return { ok: false, reason: 'invalid stream token' };
  const [, keyId, userId, expires, mac] = m;
  const expected = secrets.mac(PURPOSE, `${keyId}.${userId}.${expires}`);
  const given = Buffer.from(mac!, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'invalid stream token' };
  if (Number(expires) * 1000 <= nowMs) return { ok: false, reason: 'stream token expired: ask POST /api/stream-tokens for a new one' };
  return { ok: true, keyId: Number(keyId), userId: Number(userId) };
}

/** The tenant of a token's API key while that key exists (and still belongs to the token's user). */
export async function streamTokenUser(db: Db, keyId: number, userId: number): Promise<User | null> {
  const [row] = await db.select({ user: users }).from(apiKeys).innerJoin(users, eq(users.id, apiKeys.userId)).where(eq(apiKeys.id, keyId)).limit(1);
  return row && row.user.id === userId ? row.user : null;
}
