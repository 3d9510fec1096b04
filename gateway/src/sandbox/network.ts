import { and, eq, inArray, ne } from 'drizzle-orm';
import type { Db } from '../db/client';
import { instances, type Command } from '../db/schema';
import type { CommandQueue } from '../commands/queue';
import type { CommandArgs, MessageRef } from '../../../workers/protocol/frames';

/** A send that reached the (simulated) network, with the provider id both sides know it by. */
export type DeliveredSend = Record<string, unknown> & { providerMessageId?: unknown };

/** A reference as the recipient sees it: the chat is the sender, and "from me" flips. */
function flip(ref: unknown, senderPhone: string): MessageRef | undefined {
  if (!ref || typeof ref !== 'object') return undefined;
  const r = ref as MessageRef;
  return { id: r.id, chat: senderPhone, fromMe: !r.fromMe };
}

/**
 * The message a recipient receives for a send, in the received shape. Media
 * sent inline arrives inline (and is stored by the recipient's gateway side);
 * media sent by URL arrives without bytes, since the sandbox fetches nothing.
 */
export function inboundFor(send: DeliveredSend, senderPhone: string): CommandArgs<'sandbox.inbound'> {
  const media = send.media as { data?: string; mimetype: string; filename?: string } | undefined;
  const pick = <K extends string>(key: K) => (send[key] === undefined ? {} : { [key]: send[key] });
  const target = flip(send.target, senderPhone);
  const replyTo = flip(send.replyTo, senderPhone);
  return {
    from: senderPhone,
    ...(typeof send.providerMessageId === 'string' && { id: send.providerMessageId }),
    type: send.type as CommandArgs<'sandbox.inbound'>['type'],
    ...pick('text'),
    ...pick('caption'),
    ...pick('ptt'),
    ...pick('location'),
    ...pick('contact'),
    ...pick('emoji'),
    ...(media && { media: { mimetype: media.mimetype, ...(media.filename && { filename: media.filename }), ...(media.data && { data: media.data }) } }),
    ...(target && { target }),
    ...(replyTo && { replyTo }),
  };
}

/**
 * The simulated WhatsApp network: a message sent by a sandbox instance to the
 * phone number of another sandbox instance on this gateway (of any tenant, as
 * on WhatsApp) arrives there as an inbound message of the same type, under
 * the same provider id. Returns the queued commands for the caller to dispatch.
 */
export async function routeSandboxMessages(
  db: Pick<Db, 'select' | 'insert'>,
  queue: CommandQueue,
  sender: { id: number; phone: string; provider: string },
  sends: DeliveredSend[],
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
      queued.push(await queue.enqueue(target.id, 'sandbox.inbound', inboundFor(send, sender.phone), db));
    }
  }
  return queued;
}
