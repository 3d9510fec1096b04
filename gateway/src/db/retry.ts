import { sqlState } from '../http/errors';

/** SQLSTATEs of a transaction Postgres gave up on that succeeds when run again: a deadlock victim, a serialization failure. */
const TRANSIENT = new Set(['40P01', '40001']);
const ATTEMPTS = 3;

/**
 * Runs `fn` (one transaction) again, up to three times in all, when Postgres
 * aborted it as a deadlock victim or a serialization failure: nothing of it
 * was committed, so running it again is safe. Any other error is thrown at once.
 */
export async function retryTransient<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= ATTEMPTS || !TRANSIENT.has(sqlState(err) ?? '')) throw err;
      await Bun.sleep(10 * attempt + Math.random() * 20);
    }
  }
}
