/**
 * Meta's webhooks for Cloud API numbers: the subscription handshake, the
 * `X-Hub-Signature-256` check, and the routing of each change to the
 * instance of its phone number id. Nothing is parsed before the signature
 * holds; what is accepted becomes durable `waba.inbound` commands, so the
 * answer to Meta is fast and the worker does the rest (media downloads,
 * events), even after a restart.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { and, eq } from 'drizzle-orm';
import type { Db } from '../db/client';
import { instances, wabaAccounts, type Command, type WabaAccount } from '../db/schema';
import type { CommandQueue } from '../commands/queue';
import { secretsEqual } from '../auth/api-keys';
import type { SecretBox } from '../lib/secret-box';
import type { Logger } from '../logging/logger';

/** The largest webhook body accepted (Meta batches at most a few hundred KB). */
export const MAX_WEBHOOK_BYTES = 3 * 1024 * 1024;

/** `sha256=<hex>` of the raw body under the app secret, compared in constant time. */
export function signatureValid(appSecret: string, raw: Uint8Array, header: string | null): boolean {
  if (!header) return false;
  const match = /^sha256=([0-9a-fA-F]{64})$/.exec(header.trim());
  if (!match) return false;
  const expected = createHmac('sha256', appSecret).update(raw).digest();
  return timingSafeEqual(expected, Buffer.from(match[1]!, 'hex'));
}

/** The account of a waba instance, with the instance's tenant. */
export async function accountOf(db: Db, instanceId: number): Promise<WabaAccount | undefined> {
  const [row] = await db
    .select({ account: wabaAccounts })
    .from(wabaAccounts)
    .innerJoin(instances, eq(instances.id, wabaAccounts.instanceId))
    .where(and(eq(wabaAccounts.instanceId, instanceId), eq(instances.provider, 'waba')));
  return row?.account;
}

interface Change {
  field?: unknown;
  value?: { metadata?: { phone_number_id?: unknown } } & Record<string, unknown>;
}

export interface RouteOutcome {
  /** Changes queued for an instance. */
  routed: number;
  /** Changes for a number no instance of this tenant with this app secret has (logged, dropped). */
  unrouted: number;
  /** Changes of other fields (account updates, template status...), not handled yet. */
  ignored: number;
  commands: Command[];
}

/**
 * Routes a verified payload: every `messages` change goes to the instance of
 * the same tenant whose phone number id it names and whose app secret is the
 * one that signed it (one callback URL serves every number of a Meta app).
 * All its commands are queued in one transaction.
 */
export async function routeWebhook(
  db: Db,
  queue: CommandQueue,
  secrets: SecretBox,
  log: Logger,
  via: WabaAccount,
  appSecret: string,
  payload: unknown,
): Promise<RouteOutcome> {
  const outcome: RouteOutcome = { routed: 0, unrouted: 0, ignored: 0, commands: [] };
  const entries = (payload as { entry?: unknown })?.entry;
  if (!Array.isArray(entries)) return outcome;
  const targets = new Map<string, number | null>();
  const targetFor = async (phoneNumberId: string): Promise<number | null> => {
    if (targets.has(phoneNumberId)) return targets.get(phoneNumberId)!;
    let found: number | null = null;
    if (phoneNumberId === via.phoneNumberId) found = via.instanceId;
    else {
      const [other] = await db
        .select()
        .from(wabaAccounts)
        .where(and(eq(wabaAccounts.userId, via.userId), eq(wabaAccounts.phoneNumberId, phoneNumberId)));
      if (other && secretsEqual(secrets.open(other.appSecretSealed), appSecret)) found = other.instanceId;
    }
    targets.set(phoneNumberId, found);
    return found;
  };

  const queued: { instanceId: number; value: Record<string, unknown> }[] = [];
  for (const entry of entries) {
    const changes = (entry as { changes?: unknown })?.changes;
    if (!Array.isArray(changes)) continue;
    for (const change of changes as Change[]) {
      const phoneNumberId = change?.value?.metadata?.phone_number_id;
      if (change?.field !== 'messages' || !change.value || typeof phoneNumberId !== 'string') {
        outcome.ignored += 1;
        continue;
      }
      const instanceId = await targetFor(phoneNumberId);
      if (instanceId === null) {
        outcome.unrouted += 1;
        log.warn({ instanceId: via.instanceId, tenantId: via.userId, phoneNumberId }, 'Cloud API webhook for a phone number id no instance of this tenant and app has; dropped');
        continue;
      }
      queued.push({ instanceId, value: change.value });
    }
  }
  if (queued.length > 0) {
    outcome.commands = await db.transaction(async (tx) => {
      const rows: Command[] = [];
      for (const q of queued) rows.push(await queue.enqueue(q.instanceId, 'waba.inbound', { value: q.value }, tx));
      return rows;
    });
  }
  outcome.routed = queued.length;
  return outcome;
}
