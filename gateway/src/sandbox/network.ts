import { and, eq, ne } from 'drizzle-orm';
import type { Db } from '../db/client';
import { instances, type Command } from '../db/schema';
import type { CommandQueue } from '../commands/queue';

/**
 * The simulated WhatsApp network: a text sent by a sandbox instance to the
 * phone number of another sandbox instance on this gateway (of any tenant, as
 * on WhatsApp) arrives there as an inbound message. Returns the queued
 * commands for the caller to dispatch.
 */
export async function routeSandboxMessage(db: Db, queue: CommandQueue, fromInstanceId: number, args: Record<string, unknown>): Promise<Command[]> {
  const [sender] = await db
    .select({ phone: instances.phoneNumber, provider: instances.provider })
    .from(instances)
    .where(eq(instances.id, fromInstanceId));
  if (!sender || sender.provider !== 'sandbox') return [];
  const targets = await db
    .select({ id: instances.id })
    .from(instances)
    .where(and(eq(instances.phoneNumber, String(args.to)), eq(instances.provider, 'sandbox'), ne(instances.id, fromInstanceId)));
  const queued: Command[] = [];
  for (const target of targets) {
    queued.push(await queue.enqueue(target.id, 'sandbox.inbound', { from: sender.phone, type: 'text', text: String(args.text) }));
  }
  return queued;
}
