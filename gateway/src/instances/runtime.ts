import { EventEmitter } from 'node:events';
import { and, eq, inArray, ne, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import type { Sql } from 'postgres';
import { events, instances, nodes, type Command, type Instance } from '../db/schema';
import type { Logger } from '../logging/logger';
import type { Engine, WorkerExit } from '../engines/engine';
import type { EngineRegistry } from '../engines/registry';
import { CommandQueue, NEEDS_CONNECTION } from '../commands/queue';
import { storeReceivedMedia } from '../messages/media';
import { WorkerHub, type ResultFrame, type WorkerHandlers } from '../workers/hub';
import { newWorkerToken } from '../workers/tokens';
import { advanceMessage, advanceMessages, type Advance } from '../messages/messages';
import { routeSandboxMessages } from '../sandbox/network';
import { abandonMigrations, markWorkersStarting, recordState, recordStatus, type InstanceStatus } from './lifecycle';
import { dropInstanceState, grantInstanceState } from './state-store';
import { limitsOf, placeAndAssign } from '../scheduler/loads';
import type { SessionState, WorkerEvent } from '../../../workers/protocol/frames';

export interface RuntimeOptions {
  /** ws:// URL of this gateway as workers reach it (settable once the port is known). */
  gatewayUrl: string;
  /** The gateway's own connection and URL: instance roles and schemas are made there, workers connect there. */
  state: { sql: Sql; databaseUrl: string };
  /** Extra environment for every worker (sandbox timings, log level). */
  workerEnv?: Record<string, string>;
  /** Restart backoff after the first (immediate) restart: first delay and cap. */
  backoffMs?: { initial: number; max: number };
  /** SCHEDULER_OVERCOMMIT, for instances the runtime places itself (moves). Default 1. */
  overcommit?: number;
}

/** Node engines this gateway runs workers on. */
const RUNNABLE_ENGINES: ('process' | 'docker')[] = ['process', 'docker'];

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
  /** Phone and provider never change after creation: read once per instance. */
  private readonly identities = new Map<number, { id: number; phone: string; provider: string }>();
  private stopping = false;
  /** Instances whose start() is under way (not yet visible in the engine's list). */
  private readonly starting = new Set<number>();
  /**
   * Instances a migration is moving: their status stays `migrating` (the
   * migration writes it), commands wait in the queue, and the control loop
   * leaves them alone.
   */
  private readonly moving = new Set<number>();
  private reconcileTimer: Timer | undefined;

  constructor(
    private readonly db: Db,
    readonly engines: EngineRegistry,
    readonly hub: WorkerHub,
    private readonly logger: Logger,
    private readonly opts: RuntimeOptions,
  ) {
    this.queue = new CommandQueue(db);
    this.changes.setMaxListeners(0);
    hub.setHandlers(this);
    engines.onExit((exit) => void this.workerExited(exit));
  }

  setGatewayUrl(url: string): void {
    this.opts.gatewayUrl = url;
  }

  // ------------------------------------------------------------ lifecycle

  /** Starts (or re-starts) the worker of an instance with a fresh token. */
  async start(instanceId: number): Promise<void> {
    this.starting.add(instanceId);
    try {
      await this.startWorker(instanceId);
    } finally {
      this.starting.delete(instanceId);
    }
  }

  private async startWorker(instanceId: number): Promise<void> {
    clearTimeout(this.restartTimers.get(instanceId));
    this.restartTimers.delete(instanceId);
    const { token, hash } = newWorkerToken();
    const [instance] = await this.db
      .update(instances)
      .set({ workerTokenHash: hash, desiredState: 'running', updatedAt: sql`now()` })
      .where(eq(instances.id, instanceId))
      .returning();
    if (!instance) return;
    if (!this.moving.has(instanceId)) await recordStatus(this.db, instanceId, 'starting', 'starting worker');
    // Until the new worker reports, the session state is unknown (it keeps `paired`).
    await this.forgetSession(instanceId, 'worker starting');
    const state = await grantInstanceState(this.opts.state.sql, this.opts.state.databaseUrl, instanceId);
    try {
      const engine = await this.engines.forInstance(instanceId);
      // A worker still running (e.g. a container from before a gateway restart) holds an old token: replace it.
      if ((await engine.inspect(instanceId))?.state === 'running') await engine.remove(instanceId);
      await engine.ensure({
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
          WGS_STATE_DSN: state.dsn,
          WGS_STATE_SCHEMA: state.schema,
        },
      });
    } catch (err) {
      if (!this.moving.has(instanceId)) await recordStatus(this.db, instanceId, 'error', (err as Error).message);
      throw err;
    }
  }

  /** Stops the worker for good (desired state `stopped`). */
  async stop(instanceId: number, opts: { remove?: boolean } = {}): Promise<void> {
    clearTimeout(this.restartTimers.get(instanceId));
    this.restartTimers.delete(instanceId);
    await this.db.update(instances).set({ desiredState: 'stopped', workerTokenHash: null }).where(eq(instances.id, instanceId));
    const engine = await this.engines.forInstance(instanceId);
    if (opts.remove) {
      await engine.remove(instanceId);
      this.identities.delete(instanceId);
    } else await engine.stop(instanceId);
    this.sessionState.delete(instanceId);
  }

  /** Stops and removes the worker, then drops the instance's schema and role (the row is the caller's). */
  async destroy(instanceId: number): Promise<void> {
    await this.stop(instanceId, { remove: true });
    await dropInstanceState(this.opts.state.sql, instanceId);
  }

  async restart(instanceId: number): Promise<void> {
    await (await this.engines.forInstance(instanceId)).stop(instanceId);
    this.crashes.delete(instanceId);
    await this.start(instanceId);
  }

  /** Before the API serves: forget what the previous gateway's workers reported. */
  async prepareBoot(): Promise<void> {
    const abandoned = await abandonMigrations(this.db);
    if (abandoned) this.logger.warn({ instances: abandoned }, 'migrations cut short by the previous gateway were abandoned; the instances start where they are');
    await markWorkersStarting(this.db, 'gateway started; starting worker');
  }

  /** Starts every instance that should run on this gateway's process nodes. */
  async boot(): Promise<number> {
    const rows = await this.db
      .select({ id: instances.id })
      .from(instances)
      .innerJoin(nodes, eq(nodes.id, instances.nodeId))
      .where(and(eq(instances.desiredState, 'running'), inArray(nodes.engine, RUNNABLE_ENGINES)));
    for (const { id } of rows) {
      await this.start(id).catch((err) => this.logger.error({ err, instanceId: id }, 'failed to start instance at boot'));
    }
    return rows.length;
  }

  /**
   * One pass of the control loop: what should run (desired `running` on a
   * process node, not given up on as `error`) against what the engine runs.
   * A missing worker is started, a worker that should not run is removed.
   * Crashes are handled as they happen (workerExited); this catches the rest.
   */
  async reconcile(): Promise<{ started: number[]; removed: number[]; moved: number[] }> {
    const moved = await this.moveOffUnreachableNodes();
    const wanted = await this.db
      .select({ id: instances.id, status: instances.status })
      .from(instances)
      .innerJoin(nodes, eq(nodes.id, instances.nodeId))
      .where(and(eq(instances.desiredState, 'running'), inArray(nodes.engine, RUNNABLE_ENGINES), ne(nodes.status, 'unreachable')));
    const running = new Set<number>();
    const engineOf = new Map<number, Engine>();
    for (const engine of this.engines.all()) {
      // One node that cannot be listed must not stop the loop for the others.
      const workers = await engine.list().catch((err) => {
        this.logger.warn({ err }, 'reconciler: an engine could not list its workers');
        return [];
      });
      for (const w of workers) {
        if (w.state !== 'running') continue;
        running.add(w.instanceId);
        engineOf.set(w.instanceId, engine);
      }
    }
    const wantedIds = new Set(wanted.map((w) => w.id));
    const started: number[] = [];
    const removed: number[] = [];
    for (const { id, status } of wanted) {
      if (running.has(id) || this.starting.has(id) || this.moving.has(id) || this.restartTimers.has(id) || status === 'error' || this.stopping) continue;
      this.logger.warn({ instanceId: id }, 'reconciler: worker missing; starting it');
      started.push(id);
      await this.start(id).catch((err) => this.logger.error({ err, instanceId: id }, 'reconciler: start failed'));
    }
    for (const id of running) {
      if (wantedIds.has(id) || this.starting.has(id) || this.moving.has(id)) continue;
      this.logger.warn({ instanceId: id }, 'reconciler: worker should not run; removing it');
      removed.push(id);
      await engineOf
        .get(id)!
        .remove(id)
        .catch((err) => this.logger.error({ err, instanceId: id }, 'reconciler: remove failed'));
    }
    return { started, removed, moved };
  }

  /**
   * Instances whose node is unreachable move to another node where they fit
   * (their session is in Postgres, so no new scan). Their old worker, if it
   * still runs, holds an old token and the single-owner lock: the new one
   * waits for that lock, and the old one is refused when it next dials.
   */
  private async moveOffUnreachableNodes(): Promise<number[]> {
    const stranded = await this.db
      .select({ id: instances.id, cpuLimit: instances.cpuLimit, memoryLimit: instances.memoryLimit, from: nodes.name })
      .from(instances)
      .innerJoin(nodes, eq(nodes.id, instances.nodeId))
      .where(and(eq(instances.desiredState, 'running'), eq(nodes.status, 'unreachable'), ne(instances.status, 'error')));
    const moved: number[] = [];
    for (const inst of stranded) {
      if (this.stopping || this.starting.has(inst.id) || this.moving.has(inst.id)) continue;
      const target = await placeAndAssign(this.db, limitsOf(inst), this.opts.overcommit ?? 1, (tx, node) =>
        tx.update(instances).set({ nodeId: node.id }).where(eq(instances.id, inst.id)),
      );
      if (!target.ok) {
        await this.setStatus(inst.id, 'error', `node ${inst.from} is unreachable and no other node can take the instance: ${target.reason}`);
        continue;
      }
      await this.setStatus(inst.id, 'migrating', `node ${inst.from} is unreachable; moving to ${target.node.name}`);
      this.logger.warn({ instanceId: inst.id, from: inst.from, to: target.node.name }, 'reconciler: moving instance off an unreachable node');
      moved.push(inst.id);
      await this.start(inst.id).catch((err) => this.logger.error({ err, instanceId: inst.id }, 'reconciler: start after move failed'));
    }
    return moved;
  }

  /** A migration takes the instance over: see `moving`. */
  beginMove(instanceId: number): void {
    this.moving.add(instanceId);
  }

  /** The migration is over (done or rolled back): commands queued meanwhile go to the worker now. */
  async endMove(instanceId: number): Promise<void> {
    this.moving.delete(instanceId);
    if (this.hub.isConnected(instanceId)) await this.deliverPending(instanceId);
  }

  isMoving(instanceId: number): boolean {
    return this.moving.has(instanceId);
  }

  /** Records a status and wakes waiters (migrations write their own statuses). */
  async recordStatus(instanceId: number, status: InstanceStatus, reason: string): Promise<void> {
    await recordStatus(this.db, instanceId, status, reason);
    this.changes.emit('change', instanceId);
  }

  /** Runs reconcile() every `intervalMs` until shutdown. */
  startReconciler(intervalMs: number): void {
    const loop = async () => {
      await this.reconcile().catch((err) => this.logger.error({ err }, 'reconcile failed'));
      if (!this.stopping) this.reconcileTimer = setTimeout(loop, intervalMs);
    };
    this.reconcileTimer = setTimeout(loop, intervalMs);
  }

  /** Gateway shutdown: stop restarting, stop workers, record why. */
  async shutdown(stopWorkers: () => Promise<void>): Promise<void> {
    this.stopping = true;
    clearTimeout(this.reconcileTimer);
    for (const timer of this.restartTimers.values()) clearTimeout(timer);
    // Process workers die with the gateway; containers on docker nodes keep running and are replaced at the next boot.
    const ids = (await this.engines.process.list()).filter((w) => w.state === 'running').map((w) => w.instanceId);
    await stopWorkers();
    for (const id of ids) await recordStatus(this.db, id, 'stopped', 'gateway stopped').catch(() => {});
  }

  /**
   * Resolves with the instance row once `done(row)` holds, checking at every
   * status, state or QR change, or with the row as it is at the deadline.
   */
  async waitUntil(instanceId: number, done: (row: Instance) => boolean, timeoutMs: number): Promise<Instance | undefined> {
    const read = async () => (await this.db.select().from(instances).where(eq(instances.id, instanceId)))[0];
    return new Promise((resolve) => {
      let finished = false;
      const finish = (row: Instance | undefined) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        this.changes.off('change', check);
        resolve(row);
      };
      const check = (id: number) => {
        if (id === instanceId) void read().then((row) => (!row || done(row)) && finish(row));
      };
      const timer = setTimeout(() => void read().then(finish), timeoutMs);
      this.changes.on('change', check);
      check(instanceId);
    });
  }

  /** The runtime's own status changes; a migration under way writes its own. */
  private async setStatus(instanceId: number, status: InstanceStatus, reason: string): Promise<void> {
    if (!this.moving.has(instanceId)) await this.recordStatus(instanceId, status, reason);
  }

  private async forgetSession(instanceId: number, reason: string): Promise<void> {
    this.sessionState.delete(instanceId);
    await recordState(this.db, instanceId, 'starting', reason);
    this.changes.emit('change', instanceId);
  }

  private async workerExited(exit: WorkerExit): Promise<void> {
    this.sessionState.delete(exit.instanceId);
    if (exit.requested || this.stopping) return;
    await this.forgetSession(exit.instanceId, 'worker exited');
    const [instance] = await this.db.select().from(instances).where(eq(instances.id, exit.instanceId));
    if (!instance || instance.desiredState !== 'running') return;
    const crashes = exit.ranMs >= HEALTHY_RUN_MS ? 1 : (this.crashes.get(exit.instanceId) ?? 0) + 1;
    this.crashes.set(exit.instanceId, crashes);
    const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.exitCode}`;
    if (crashes >= CRASH_LOOP_LIMIT) {
      await this.setStatus(exit.instanceId, 'error', `worker crashed ${crashes} times in a row (last: ${how}); not restarting`);
      return;
    }
    // The first crash after a healthy run restarts at once; repeats back off.
    const { initial, max } = this.opts.backoffMs ?? { initial: 1000, max: 30_000 };
    const delay = crashes === 1 ? 0 : Math.min(max, initial * 2 ** (crashes - 2));
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
    if (this.moving.has(command.instanceId)) return false;
    if (NEEDS_CONNECTION.has(command.name) && this.sessionState.get(command.instanceId) !== 'connected') return false;
    // sent_at and attempts record redeliveries (deliverPending); a live dispatch costs no extra write.
    return this.hub.send(command.instanceId, { type: 'command', commandId: command.id, name: command.name as never, args: command.args });
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
    this.changes.emit('change', instanceId);
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
    await this.db.transaction(async (tx) => {
      await tx.update(instances).set({ qrCode: code, qrExpiresAt: expiresAt }).where(eq(instances.id, instanceId));
      await tx.insert(events).values({ instanceId, type: 'instance.qr', data: { qr: code, expiresAt: expiresAt.toISOString() } });
    });
    this.changes.emit('change', instanceId);
  }

  async events(instanceId: number, received: { eventId: string; event: WorkerEvent }[]): Promise<void> {
    // Media bytes go to the media table; the stored event points at them.
    const batch = await storeReceivedMedia(this.db, instanceId, received);
    // One statement for the run; rows keep the order the worker sent them in.
    const inserted = await this.db
      .insert(events)
      .values(batch.map(({ eventId, event }) => ({ instanceId, workerEventId: eventId, type: event.type, data: event.data })))
      .onConflictDoNothing()
      .returning({ workerEventId: events.workerEventId });
    const fresh = new Set(inserted.map((r) => r.workerEventId));
    const receipts: Advance[] = [];
    for (const { eventId, event } of batch) {
      if (event.type !== 'message.status' || !fresh.has(eventId)) continue;
      const { messageId, status, error, timestamp } = event.data;
      receipts.push({ messageId, status, error, at: new Date(timestamp) });
    }
    // Receipts only move messages forward: the whole run is one statement.
    await advanceMessages(this.db, instanceId, receipts);
  }

  /** A run of results: completed, applied and routed in a few statements whatever its length. */
  async results(instanceId: number, batch: ResultFrame[]): Promise<void> {
    const outcomes = new Map(batch.map((r) => [r.commandId, { ok: r.ok, data: r.data, error: r.error }]));
    const completed = await this.queue.completeMany(
      instanceId,
      [...outcomes].map(([commandId, outcome]) => ({ commandId, outcome })),
    );
    try {
      const sends = completed.filter((c) => c.name === 'send');
      const now = new Date();
      await advanceMessages(
        this.db,
        instanceId,
        sends.map((c) => {
          const o = outcomes.get(c.id)!;
          const providerMessageId = typeof o.data?.providerMessageId === 'string' ? o.data.providerMessageId : undefined;
          return o.ok
            ? { messageId: String(c.args.messageId), status: 'sent' as const, at: now, providerMessageId }
            : { messageId: String(c.args.messageId), status: 'failed' as const, at: now, error: o.error?.message ?? 'send failed' };
        }),
      );
      // What reached WhatsApp, with the id WhatsApp knows it by (a sandbox recipient sees the same id).
      const delivered = sends
        .filter((c) => outcomes.get(c.id)!.ok)
        .map((c) => ({ ...c.args, providerMessageId: outcomes.get(c.id)!.data?.providerMessageId }));
      for (const c of await routeSandboxMessages(this.db, this.queue, await this.identity(instanceId), delivered)) this.dispatch(c);
    } finally {
      for (const c of completed) this.queue.notify(c.id, outcomes.get(c.id)!);
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

