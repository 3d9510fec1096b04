import { eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { events, instances, type Command } from '../db/schema';
import { NEEDS_CONNECTION, type CommandQueue } from '../commands/queue';
import { storeReceivedMedia } from '../messages/media';
import { retryTransient } from '../db/retry';
import { instanceUsageInsert } from '../usage/ledger';
import { advanceMessage, advanceMessages, type Advance } from '../messages/messages';
import { routeSandboxMessages } from '../sandbox/network';
import type { ResultFrame, WorkerHandlers, WorkerHub } from '../workers/hub';
import type { SessionState, WorkerEvent } from '../../../workers/protocol/frames';
import type { InstanceSessions } from './sessions';
import { pauseInstance, PAUSING_ERRORS } from '../pacing/pause';
import { markRequeued, requeueRefusedSends, type Requeued } from '../pacing/requeue';
import type { PacedDispatcher } from '../pacing/dispatcher';

/**
 * The gateway end of the worker protocol's frames: turns what workers report
 * (hello, session state, QR, events, command results) into database facts,
 * and hands queued commands to a worker whenever it can take them.
 */
export class WorkerFrames implements WorkerHandlers {
  /** Phone and provider never change after creation: read once per instance. */
  private readonly identities = new Map<number, { id: number; phone: string; provider: string }>();
  /** Sends paced commands when due; started with the first worker connection. */
  pacer: PacedDispatcher | undefined;
  /** Where a command whose worker is not connected here goes (the runtime routes it to another replica). */
  elsewhere: ((command: Command) => void) | undefined;

  constructor(
    private readonly db: Db,
    private readonly queue: CommandQueue,
    private readonly hub: WorkerHub,
    private readonly sessions: InstanceSessions,
    /** True once the gateway shuts down: a closing socket is then no news. */
    private readonly stopping: () => boolean,
  ) {}

  /** The instance is gone: forget what was cached about it. */
  forget(instanceId: number): void {
    this.identities.delete(instanceId);
  }

  // ------------------------------------------------------------ commands

  /** Sends a stored command to its worker now if the worker can take it; else it waits in the queue. */
  dispatch(command: Command): boolean {
    if (this.sessions.isMoving(command.instanceId)) return false;
    if (NEEDS_CONNECTION.has(command.name) && this.sessions.stateOf(command.instanceId) !== 'connected') return false;
    // sent_at and attempts record redeliveries (deliverPending); a live dispatch costs no extra write.
    return this.hub.send(command.instanceId, { type: 'command', commandId: command.id, name: command.name as never, args: command.args });
  }

  /** Every pending command the worker can take now, in order. */
  async deliverPending(instanceId: number): Promise<void> {
    const pending = await this.queue.pending(instanceId, this.sessions.stateOf(instanceId) === 'connected');
    for (const command of pending) {
      if (!this.hub.send(instanceId, { type: 'command', commandId: command.id, name: command.name as never, args: command.args })) return;
    }
    await this.queue.markSent(pending.map((c) => c.id));
  }

  // ------------------------------------------------------------ frames

  async connected(instanceId: number): Promise<void> {
    void this.pacer?.start();
    // A worker started for a move by another replica is the new one: it may take commands (and a mover that died announces nothing more).
    this.sessions.remoteMove(instanceId, false);
    await this.sessions.setStatus(instanceId, 'running', 'worker connected');
    await this.deliverPending(instanceId);
  }

  async disconnected(instanceId: number): Promise<void> {
    this.sessions.drop(instanceId);
    if (this.stopping()) return;
    const [row] = await this.db.select({ desired: instances.desiredState, holder: instances.workerOwner }).from(instances).where(eq(instances.id, instanceId));
    // A newer socket (here or on another replica) already holds the worker: nothing to report.
    if (row?.desired === 'running' && row.holder === null) await this.sessions.setStatus(instanceId, 'starting', 'worker disconnected; waiting for it to reconnect');
  }

  async state(instanceId: number, state: SessionState, reason: string | undefined): Promise<void> {
    await this.sessions.report(instanceId, state, reason);
    if (state === 'connected') await this.deliverPending(instanceId);
    if (state === 'logged_out' || state === 'qr') {
      const failed = await this.queue.failPending(instanceId, ['send', 'sandbox.inbound', 'presence'], {
        code: 'not_connected',
        message: state === 'qr' ? 'the WhatsApp session needs a new QR scan' : 'the WhatsApp session was logged out',
      });
      const { provider } = failed.length > 0 ? await this.identity(instanceId) : { provider: '' };
      for (const c of failed) {
        if (c.name === 'send') {
          this.hub.metrics.sends.inc({ provider, type: sendType(c.args), result: 'failed' });
          await advanceMessage(this.db, instanceId, String(c.args.messageId), 'failed', { error: c.errorMessage ?? 'not connected' });
        }
        this.queue.notify(c.id, { ok: false, error: { code: c.errorCode!, message: c.errorMessage! } });
      }
    }
  }

  async qr(instanceId: number, code: string, expiresAt: Date): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.update(instances).set({ qrCode: code, qrExpiresAt: expiresAt }).where(eq(instances.id, instanceId));
      await tx.insert(events).values({ instanceId, type: 'instance.qr', data: { qr: code, expiresAt: expiresAt.toISOString() } });
    });
    this.sessions.changed(instanceId);
  }

  async events(instanceId: number, received: { eventId: string; event: WorkerEvent }[]): Promise<void> {
    // Media bytes go to the media table; the stored event points at them.
    const batch = await storeReceivedMedia(this.db, instanceId, received);
    if (batch.length === 0) return;
    // One statement for the run; rows keep the order the worker sent them in. Each fresh
    // message.received counts in the usage ledger in the same statement (`received:<event id>`).
    const values = batch.map(({ eventId, event }, n) => sql`(${n}::int, ${eventId}::text, ${event.type}::text, ${JSON.stringify(event.data)}::jsonb)`);
    const receipts: Advance[] = [];
    let receivedCount = 0;
    // Stored and applied in one transaction: a worker sends an event again until it sees the ack, and only a
    // first store is applied, so a gateway killed between the store and the receipts' update would leave the
    // receipt stored and never applied (a message stuck at `delivered` with its `read` in the log).
    await retryTransient(() => this.db.transaction(async (tx) => {
      receipts.length = 0; // a run again starts afresh
      receivedCount = 0;
      const inserted = await tx.execute<{ worker_event_id: string }>(sql`
        with ins as (
          insert into ${events} (instance_id, worker_event_id, type, data)
          select ${instanceId}::int, v.worker_event_id, v.type, v.data
          from (values ${sql.join(values, sql`, `)}) as v(n, worker_event_id, type, data)
          order by v.n
          on conflict do nothing
          returning id, worker_event_id, type
        ), counted as (${instanceUsageInsert(instanceId, sql`select 'messages_received', 1, 'received:' || id from ins where type = 'message.received'`)})
        select worker_event_id from ins`);
      const fresh = new Set(inserted.map((r) => r.worker_event_id));
      for (const { eventId, event } of batch) {
        if (!fresh.has(eventId)) continue;
        if (event.type === 'message.received') receivedCount++;
        if (event.type !== 'message.status') continue;
        const { messageId, status, error, timestamp } = event.data;
        receipts.push({ messageId, status, error, at: new Date(timestamp) });
      }
      // Receipts only move messages forward: the whole run is one statement.
      await advanceMessages(tx, instanceId, receipts);
    }));
    // Only what was stored for the first time: a worker sending an event again (no ack seen) is not counted twice.
    if (receivedCount > 0 || receipts.length > 0) {
      const { provider } = await this.identity(instanceId);
      if (receivedCount > 0) this.hub.metrics.messagesReceived.inc({ provider }, receivedCount);
      for (const r of receipts) this.hub.metrics.messageStatuses.inc({ provider, status: r.status });
    }
  }

  /** A run of results: completed, applied and routed in a few statements whatever its length. */
  async results(instanceId: number, batch: ResultFrame[]): Promise<void> {
    const outcomes = new Map(batch.map((r) => [r.commandId, { ok: r.ok, data: r.data, error: r.error }]));
    // In id order: every statement that locks several commands locks them in the same order.
    const list = [...outcomes].map(([commandId, outcome]) => ({ commandId, outcome })).sort((x, y) => x.commandId - y.commandId);
    const identity = await this.identity(instanceId);
    // What reached WhatsApp, with the id WhatsApp knows it by (a sandbox recipient sees the same id).
    const deliveredOf = (done: Pick<Command, 'id' | 'name' | 'args'>[]) =>
      done
        .filter((c) => c.name === 'send' && outcomes.get(c.id)!.ok)
        .map((c) => ({ ...c.args, providerMessageId: outcomes.get(c.id)!.data?.providerMessageId }));
    // A send's messages move to `sent`/`failed` (and count in the usage ledger) in the transaction that
    // completes its command, and the simulated network delivers in it too: a gateway killed in between
    // leaves neither a completed send whose message stays `queued` nor a message routed twice.
    // A provider's rate limit pauses the number (pacing/pause.ts) and sends the refused messages back to
    // the queue for the pause's end (pacing/requeue.ts), in the same transaction.
    const now = new Date();
    const pausing = (c: Pick<Command, 'id' | 'name'>) => c.name === 'send' && PAUSING_ERRORS.has(outcomes.get(c.id)!.error?.code ?? '');
    // Run again when Postgres aborts it (a deadlock victim): the commands stay pending otherwise until the worker reconnects.
    const { completed, routed, requeued } = await retryTransient(() =>
      this.db.transaction(async (tx) => {
        const done = await this.queue.completeMany(instanceId, list, tx);
        const limited = done.filter(pausing);
        let requeued = new Map<number, Requeued>();
        if (limited.length > 0) {
          const { code, message, retryAfter } = outcomes.get(limited[0]!.id)!.error!;
          // Queued again first, so the pause moves them to its end ahead of what was queued after them.
          const successors = await requeueRefusedSends(tx, instanceId, limited.map((c) => c.id));
          await pauseInstance(tx as unknown as Db, instanceId, `${code}: ${message}`, retryAfter);
          requeued = await markRequeued(tx, successors);
        }
        await advanceMessages(
          tx,
          instanceId,
          done
            .filter((c) => c.name === 'send' && !requeued.has(c.id))
            .map((c) => {
              const o = outcomes.get(c.id)!;
              const providerMessageId = typeof o.data?.providerMessageId === 'string' ? o.data.providerMessageId : undefined;
              return o.ok
                ? { messageId: String(c.args.messageId), status: 'sent' as const, at: now, providerMessageId, mediaBytes: inlineMediaBytes(c.args) }
                : { messageId: String(c.args.messageId), status: 'failed' as const, at: now, error: o.error?.message ?? 'send failed' };
            }),
        );
        const routed = identity.provider === 'sandbox' ? await routeSandboxMessages(tx, this.queue, identity, deliveredOf(done)) : [];
        return { completed: done, routed, requeued };
      }),
    );
    try {
      const sends = completed.filter((c) => c.name === 'send');
      for (const c of sends) {
        const result = requeued.has(c.id) ? 'requeued' : outcomes.get(c.id)!.ok ? 'sent' : 'failed';
        this.hub.metrics.sends.inc({ provider: identity.provider, type: sendType(c.args), result });
      }
      for (const c of routed) if (!this.dispatch(c) && !this.hub.isConnected(c.instanceId)) this.elsewhere?.(c);
      if (sends.some(pausing)) this.sessions.changed(instanceId);
    } finally {
      for (const c of completed) {
        const outcome = outcomes.get(c.id)!;
        const again = requeued.get(c.id);
        this.queue.notify(c.id, again ? { ...outcome, data: { ...outcome.data, requeued: again } } : outcome);
      }
    }
  }

  private async identity(instanceId: number) {
    let found = this.identities.get(instanceId);
    if (!found) {
      const [row] = await this.db
        .select({ id: instances.id, phone: instances.phoneNumber, provider: instances.provider })
        .from(instances)
        .where(eq(instances.id, instanceId));
      if (!row) return { id: instanceId, phone: '', provider: 'unknown' };
      this.identities.set(instanceId, (found = row));
    }
    return found;
  }
}

/** A send command's message type (text, image, ...: the protocol's short list) as a metric label. */
function sendType(args: Record<string, unknown>): string {
  return typeof args.type === 'string' ? args.type : 'unknown';
}

/** Bytes of a send's inline media (base64 `media.data`), 0 for none or media by URL (its size is the worker's to know). */
function inlineMediaBytes(args: Record<string, unknown>): number {
  const data = (args.media as { data?: unknown } | undefined)?.data;
  return typeof data === 'string' ? Buffer.byteLength(data, 'base64') : 0;
}
