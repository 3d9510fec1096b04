import { EventEmitter } from 'node:events';
import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { events, instances, nodes } from '../db/schema';
import type { Logger } from '../logging/logger';
import type { Engine, WorkerExit } from '../engines/engine';
import { CommandQueue, NEEDS_CONNECTION } from '../commands/queue';
import type { Command } from '../db/schema';
import { WorkerHub, type WorkerHandlers } from '../workers/hub';
import { newWorkerToken } from '../workers/tokens';
import { advanceMessage } from '../messages/messages';
import { recordState, recordStatus, type InstanceStatus } from './lifecycle';
import { routeSandboxMessage } from '../sandbox/network';
import type { SessionState, WorkerEvent } from '../../../workers/protocol/frames';

export interface RuntimeOptions {
  /** ws:// URL of this gateway as workers reach it (settable once the port is known). */
  gatewayUrl: string;
  /** Extra environment for every worker (sandbox timings, log level). */
  workerEnv?: Record<string, string>;
  /** Restart backoff: first delay and cap. */
  backoffMs?: { initial: number; max: number };
}

/** A worker that ran at least this long before exiting resets the backoff. */
const HEALTHY_RUN_MS = 60_000;
/** This many fast crashes in a row mark the instance `error` instead of restarting again. */
const CRASH_LOOP_LIMIT = 10;

/**
 * Runs instances: starts their workers on the engine, restarts crashed ones
 * with backoff, turns worker frames into database facts, and delivers queued
 * commands whenever a worker can take them.
 */
export class InstanceRuntime implements WorkerHandlers {
  readonly queue: CommandQueue;
  private readonly changes = new EventEmitter();
  /** Last session state each connected worker reported. */
  private readonly sessionState = new Map<number, SessionState>();
  private readonly restartTimers = new Map<number, Timer>();
  private readonly crashes = new Map<number, number>();
  private stopping = false;

  constructor(
    private readonly db: Db,
    private readonly engine: Engine,
    readonly hub: WorkerHub,
    private readonly logger: Logger,
    private readonly opts: RuntimeOptions,
  ) {
    this.queue = new CommandQueue(db);
    this.changes.setMaxListeners(0);
    hub.setHandlers(this);
    engine.onExit((exit) => void this.workerExited(exit));
  }

  setGatewayUrl(url: string): void {
    this.opts.gatewayUrl = url;
  }

  // ------------------------------------------------------------ lifecycle

  /** Starts (or re-starts) the worker of an instance with a fresh token. */
  async start(instanceId: number): Promise<void> {
    clearTimeout(this.restartTimers.get(instanceId));
    this.restartTimers.delete(instanceId);
    const { token, hash } = newWorkerToken();
    const [instance] = await this.db
      .update(instances)
      .set({ workerTokenHash: hash, desiredState: 'running', updatedAt: sql`now()` })
      .where(eq(instances.id, instanceId))
      .returning();
    if (!instance) return;
    await recordStatus(this.db, instanceId, 'starting', 'starting worker');
    try {
      await this.engine.ensure({
        instanceId,
        name: instance.name,
        provider: instance.provider,
        resources: { cpu: instance.cpuLimit, memory: instance.memoryLimit },
        env: {
          ...this.opts.workerEnv,
          WGS_GATEWAY_URL: this.opts.gatewayUrl,
          WGS_INSTANCE_ID: String(instanceId),
          WGS_WORKER_TOKEN: token,
          WGS_PROVIDER: instance.provider,
        },
      });
    } catch (err) {
      await recordStatus(this.db, instanceId, 'error', (err as Error).message);
      throw err;
    }
  }

  /** Stops the worker for good (desired state `stopped`). */
  async stop(instanceId: number, opts: { remove?: boolean } = {}): Promise<void> {
    clearTimeout(this.restartTimers.get(instanceId));
    this.restartTimers.delete(instanceId);
    await this.db.update(instances).set({ desiredState: 'stopped', workerTokenHash: null }).where(eq(instances.id, instanceId));
    if (opts.remove) await this.engine.remove(instanceId);
    else await this.engine.stop(instanceId);
    this.sessionState.delete(instanceId);
  }

  async restart(instanceId: number): Promise<void> {
    await this.engine.stop(instanceId);
    this.crashes.delete(instanceId);
    await this.start(instanceId);
  }

  /** Starts every instance that should run on this gateway's process nodes. */
  async boot(): Promise<number> {
    const rows = await this.db
      .select({ id: instances.id })
      .from(instances)
      .innerJoin(nodes, eq(nodes.id, instances.nodeId))
      .where(and(eq(instances.desiredState, 'running'), eq(nodes.engine, 'process')));
    for (const { id } of rows) {
      await this.start(id).catch((err) => this.logger.error({ err, instanceId: id }, 'failed to start instance at boot'));
    }
    return rows.length;
  }

  /** Gateway shutdown: stop restarting, stop workers, record why. */
  async shutdown(stopWorkers: () => Promise<void>): Promise<void> {
    this.stopping = true;
    for (const timer of this.restartTimers.values()) clearTimeout(timer);
    const ids = (await this.engine.list()).filter((w) => w.state === 'running').map((w) => w.instanceId);
    await stopWorkers();
    for (const id of ids) await recordStatus(this.db, id, 'stopped', 'gateway stopped').catch(() => {});
  }

  /** Resolves when the instance reaches one of `statuses`, or with its status at the deadline. */
  async waitForStatus(instanceId: number, statuses: InstanceStatus[], timeoutMs: number): Promise<InstanceStatus | undefined> {
    const current = async () =>
      (await this.db.select({ status: instances.status }).from(instances).where(eq(instances.id, instanceId)))[0]?.status;
    return new Promise((resolve) => {
      const done = (status: InstanceStatus | undefined) => {
        clearTimeout(timer);
        this.changes.off('status', listener);
        resolve(status);
      };
      const listener = (id: number, status: InstanceStatus) => id === instanceId && statuses.includes(status) && done(status);
      const timer = setTimeout(() => void current().then(done), timeoutMs);
      this.changes.on('status', listener);
      void current().then((s) => s && statuses.includes(s) && done(s));
    });
  }

  private async setStatus(instanceId: number, status: InstanceStatus, reason: string): Promise<void> {
    await recordStatus(this.db, instanceId, status, reason);
    this.changes.emit('status', instanceId, status);
  }

  private async workerExited(exit: WorkerExit): Promise<void> {
    this.sessionState.delete(exit.instanceId);
    if (exit.requested || this.stopping) return;
    const [instance] = await this.db.select().from(instances).where(eq(instances.id, exit.instanceId));
    if (!instance || instance.desiredState !== 'running') return;
    const crashes = exit.ranMs >= HEALTHY_RUN_MS ? 1 : (this.crashes.get(exit.instanceId) ?? 0) + 1;
    this.crashes.set(exit.instanceId, crashes);
    const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.exitCode}`;
    if (crashes >= CRASH_LOOP_LIMIT) {
      await this.setStatus(exit.instanceId, 'error', `worker crashed ${crashes} times in a row (last: ${how}); not restarting`);
      return;
    }
    const { initial, max } = this.opts.backoffMs ?? { initial: 1000, max: 30_000 };
    const delay = Math.min(max, initial * 2 ** (crashes - 1));
    await this.setStatus(exit.instanceId, 'starting', `worker exited (${how}); restarting in ${(delay / 1000).toFixed(1)} s`);
    this.restartTimers.set(
      exit.instanceId,
      setTimeout(() => {
        this.restartTimers.delete(exit.instanceId);
        if (!this.stopping) this.start(exit.instanceId).catch((err) => this.logger.error({ err, instanceId: exit.instanceId }, 'restart failed'));
      }, delay),
    );
  }

  // ------------------------------------------------------------ commands

  /** Sends a stored command to its worker now if the worker can take it; else it waits in the queue. */
  dispatch(command: Command): boolean {
    if (NEEDS_CONNECTION.has(command.name) && this.sessionState.get(command.instanceId) !== 'connected') return false;
    const sent = this.hub.send(command.instanceId, { type: 'command', commandId: command.id, name: command.name as never, args: command.args });
    if (sent) void this.queue.markSent([command.id]).catch(() => {});
    return sent;
  }

  isWorkerConnected(instanceId: number): boolean {
    return this.hub.isConnected(instanceId);
  }

  sessionStateOf(instanceId: number): SessionState | undefined {
    return this.sessionState.get(instanceId);
  }

  private async deliverPending(instanceId: number): Promise<void> {
    const pending = await this.queue.pending(instanceId, this.sessionState.get(instanceId) === 'connected');
    for (const command of pending) {
      if (!this.hub.send(instanceId, { type: 'command', commandId: command.id, name: command.name as never, args: command.args })) return;
    }
    await this.queue.markSent(pending.map((c) => c.id));
  }

  // ------------------------------------------------------------ worker frames

  async connected(instanceId: number): Promise<void> {
    await this.setStatus(instanceId, 'running', 'worker connected');
    await this.deliverPending(instanceId);
  }

  async disconnected(instanceId: number): Promise<void> {
    this.sessionState.delete(instanceId);
    if (this.stopping) return;
    const [row] = await this.db.select({ desired: instances.desiredState }).from(instances).where(eq(instances.id, instanceId));
    if (row?.desired === 'running') await this.setStatus(instanceId, 'starting', 'worker disconnected; waiting for it to reconnect');
  }

  async state(instanceId: number, state: SessionState, reason: string | undefined): Promise<void> {
    this.sessionState.set(instanceId, state);
    await recordState(this.db, instanceId, state, reason);
    if (state === 'connected') await this.deliverPending(instanceId);
    if (state === 'logged_out' || state === 'qr') {
      const failed = await this.queue.failPending(instanceId, ['send', 'sandbox.inbound'], {
        code: 'not_connected',
        message: state === 'qr' ? 'the WhatsApp session needs a new QR scan' : 'the WhatsApp session was logged out',
      });
      for (const c of failed) {
        if (c.name === 'send') await advanceMessage(this.db, instanceId, String(c.args.messageId), 'failed', { error: c.errorMessage ?? 'not connected' });
        this.queue.notify(c.id, { ok: false, error: { code: c.errorCode!, message: c.errorMessage! } });
      }
    }
  }

  async qr(instanceId: number, code: string, expiresAt: Date): Promise<void> {
    await this.db.update(instances).set({ qrCode: code, qrExpiresAt: expiresAt }).where(eq(instances.id, instanceId));
  }

  async event(instanceId: number, eventId: string, event: WorkerEvent): Promise<void> {
    const inserted = await this.db
      .insert(events)
      .values({ instanceId, workerEventId: eventId, type: event.type, data: event.data })
      .onConflictDoNothing()
      .returning({ id: events.id });
    if (inserted.length === 0 || event.type !== 'message.status') return;
    const { messageId, status, error, timestamp } = event.data;
    await advanceMessage(this.db, instanceId, messageId, status, { error, at: new Date(timestamp) });
  }

  async result(
    instanceId: number,
    commandId: number,
    ok: boolean,
    data?: Record<string, unknown>,
    error?: { code: string; message: string },
  ): Promise<void> {
    const outcome = { ok, data, error };
    const command = await this.queue.complete(instanceId, commandId, outcome);
    if (!command) return;
    try {
      if (command.name === 'send') await this.sendCompleted(instanceId, command, outcome);
    } finally {
      this.queue.notify(commandId, outcome);
    }
  }

  private async sendCompleted(instanceId: number, command: Command, outcome: { ok: boolean; data?: Record<string, unknown>; error?: { message: string } }) {
    const messageId = String(command.args.messageId);
    if (!outcome.ok) {
      await advanceMessage(this.db, instanceId, messageId, 'failed', { error: outcome.error?.message ?? 'send failed' });
      return;
    }
    const providerMessageId = typeof outcome.data?.providerMessageId === 'string' ? outcome.data.providerMessageId : undefined;
    await advanceMessage(this.db, instanceId, messageId, 'sent', { providerMessageId });
    const routed = await routeSandboxMessage(this.db, this.queue, instanceId, command.args);
    for (const c of routed) this.dispatch(c);
  }
}

