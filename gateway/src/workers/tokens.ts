import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A fresh worker token: 256 random bits. Only its SHA-256 is stored. */
export function newWorkerToken(): { token: string; hash: string } {
  const token = `wgsw_${randomBytes(32).toString('base64url')}`;
  return { token, hash: hashWorkerToken(token) };
}

export function hashWorkerToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function workerTokenMatches(token: string, storedHash: string | null): boolean {
  if (!storedHash) return false;
  const given = Buffer.from(hashWorkerToken(token), 'hex');
  const stored = Buffer.from(storedHash, 'hex');
  return given.length === stored.length && timingSafeEqual(given, stored);
}
