import { pgSequence } from 'drizzle-orm/pg-core';

/**
 * One id per gateway process start. A live process holds a session advisory
 * lock on its id (claims/owner.ts); work it claims records the id, so others
 * see at once when the claimant has died.
 */
export const gatewayProcessIds = pgSequence('gateway_process_ids', { startWith: 1, maxValue: 2147483647, cycle: true });
