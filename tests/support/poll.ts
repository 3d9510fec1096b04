/**
 * Polls until `fn` returns something truthy, or throws with `what` at the deadline.
 * An empty array counts as "not yet": `until('rows', () => sql\`select …\`)` waits for a row
 * (an empty result is truthy in JavaScript, and returned early it raced the writer).
 */
export async function until<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 15_000, everyMs = 25): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value && !(Array.isArray(value) && value.length === 0)) return value as NonNullable<T>;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await Bun.sleep(everyMs);
  }
}
