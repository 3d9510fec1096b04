import { and, eq, inArray, ne } from 'drizzle-orm';
import type { Db } from '../db/client';
import { instances, type Command } from '../db/schema';
import type { CommandQueue } from '../commands/queue';

/**
 * The simulated WhatsApp network: a text sent by a sandbox instance to the
 * phone number of another sandbox instance on this gateway (of any tenant, as
 * on WhatsApp) arrives there as an inbound message. Returns the queued
 * commands for the caller to dispatch.
 */
export async function routeSandboxMessages(
  db: Db,
  queue: CommandQueue,
  sender: { id: number; phone: string; provider: string },
  sends: Record<string, unknown>[],
): Promise<Command[]> {
  if (sender.provider !== 'sandbox' || sends.length === 0) return [];
  const phones = [...new Set(sends.map((s) => String(s.to)))];
  const targets = await db
    .select({ id: instances.id, phone: instances.phoneNumber })
    .from(instances)
    .where(and(inArray(instances.phoneNumber, phones), eq(instances.provider, 'sandbox'), ne(instances.id, sender.id)));
  const queued: Command[] = [];
  for (const send of sends) {
    for (const target of targets.filter((t) => t.phone === send.to)) {
      queued.push(await queue.enqueue(target.id, 'sandbox.inbound', { from: sender.phone, type: 'text', text: String(send.text) }));
    }
  }
  return queued;
}
