import { and, eq, inArray, ne, sql } from 'drizzle-orm';
import { liveOwners, ownerDead } from '../claims/owner';
import type { GatewayMetrics } from '../metrics/metrics';
import type { Db } from '../db/client';
import type { Sql } from 'postgres';
import { commands, instances, nodes, type Command, type Instance } from '../db/schema';
import type { Logger } from '../logging/logger';
import type { InstanceTenants } from '../logging/instance-tenants';
import type { Engine, WorkerExit } from '../engines/engine';
import type { EngineRegistry } from '../engines/registry';
import { CommandQueue } from '../commands/queue';
import type { WorkerHub } from '../workers/hub';
import { newWorkerToken } from '../workers/tokens';
import { PACING_CHANNEL } from '../pacing/reserve';
import { NEEDS_CONNECTION } from '../commands/queue';
import { abandonMigrations, markWorkersStarting, recordStatus, type InstanceStatus } from './lifecycle';
import { dropInstanceState, grantInstanceState } from './state-store';
import { limitsOf, placeAndAssign } from '../scheduler/loads';
import type { SessionState } from '../../../workers/protocol/frames';
import { InstanceSessions } from './sessions';
import { WorkerFrames } from './worker-frames';
import { PacedDispatcher } from '../pacing/dispatcher';
import { ClusterSignals, MOVES_CHANNEL } from './cluster';

export interface RuntimeOptions {
  /** ws:// URL of this gateway as workers reach it (settable once the port is known). */
  gatewayUrl: string;
  /** The gateway's own connection and URL: instance roles and schemas are made there, workers connect there. */
  state: { sql: Sql; databaseUrl: string };
  /** Extra environment for every worker (sandbox timings, log level). */
  workerEnv?: Record<string, string>;
  /** Environment for one instance's worker on top (e.g. a waba instance's account), read at every start. */
  instanceEnv?: (instance: { id: number; provider: string }) => Promise<Record<string, string>>;
  /** Restart backoff after the first (immediate) restart: first delay and cap. */
  backoffMs?: { initial: number; max: number };
  /** SCHEDULER_OVERCOMMIT, for instances the runtime places itself (moves). Default 1. */
  overcommit?: number;
  /** This gateway process's id (claims/owner.ts): recorded on the moves it runs. */
  ownerId: number;
  /** WORKER_CA_FILE: the CA bundle workers trust instead of the system's. */
  caFile?: string;
  /** Where restarts, crash loops, sends and receipts are counted. */
  metrics?: GatewayMetrics;
}

/** Node engines this gateway runs workers on. */
const RUNNABLE_ENGINES: ('process' | 'docker' | 'swarm')[] = ['process', 'docker', 'swarm'];

/** A worker that ran at least this long before exiting resets the backoff. */
const HEALTHY_RUN_MS = 60_000;
/** This many fast crashes in a row mark the instance `error` instead of restarting again. */
const CRASH_LOOP_LIMIT = 10;
/** NOTIFY channel: a new worker was started for the instance (payload: its id); older ones elsewhere let go. */
export const WORKERS_CHANNEL = 'wgs_workers';
/** The workers' single-owner lock namespace (workers/src/state/store.ts STATE_LOCK_CLASS): held while a worker lives. */
const STATE_LOCK_CLASS = 0x77_67_73_01;
/**
 * An instance no live replica holds or runs, whose worker still holds the
 * single-owner lock somewhere (a dead replica's orphaned child, a container),
 * gets this long to dial another replica before the control loop starts a
 * new worker anyway.
 */
const ORPHAN_GRACE_MS = 15_000;
/** How long a gateway shutdown waits for worker starts under way. */
const SHUTDOWN_START_WAIT_MS = 15_000;

/**
 * Runs instances: starts their workers on the engine, restarts crashed ones
 * with backoff, and keeps what runs in line with what should (the control
 * loop). Worker frames are handled by `WorkerFrames`; what this process knows
 * of sessions and moves is in `InstanceSessions`.
 */
export class InstanceRuntime {
  readonly queue: CommandQueue;
  readonly sessions: InstanceSessions;
  private readonly frames: WorkerFrames;
  /** Sends paced (scheduled) commands to this replica's workers when due. */
  readonly pacer: PacedDispatcher;
  private readonly restartTimers = new Map<number, Timer>();
  private readonly crashes = new Map<number, number>();
  private stopping = false;
  /** Instances whose start() is under way (not yet visible in the engine's list), with that start. */
  private readonly starting = new Map<number, Promise<void>>();
  /** Instances whose worker's unasked exit is being handled (workerExited). */
  private readonly exiting = new Set<number>();
  private reconcileTimer: Timer | undefined;
  /** Instances seen without a live holder while a worker of theirs still lived (control loop: orphan grace). */
  private readonly orphanSince = new Map<number, number>();
  /** Whether this replica runs the control loop (the leader). */
  private leading = false;
  /** Instance → tenant for log lines: every line about an instance carries both ids. Shared with the hub. */
  readonly tenants: InstanceTenants;

  constructor(
    private readonly db: Db,
    readonly engines: EngineRegistry,
    readonly hub: WorkerHub,
    private readonly logger: Logger,
    private readonly opts: RuntimeOptions,
  ) {
    this.tenants = hub.tenants;
    this.queue = new CommandQueue(db);
    this.sessions = new InstanceSessions(db);
    this.frames = new WorkerFrames(db, this.queue, hub, this.sessions, () => this.stopping);
    this.pacer = new PacedDispatcher(db, opts.state.sql, this.pacerTarget(), logger.child({ component: 'pacer' }));
    this.frames.pacer = this.pacer;
    // Commands the frames queue for other instances (the sandbox network) may be for workers on other replicas.
    this.frames.elsewhere = (c) => void this.dispatch(c).catch(() => {});
    hub.setHandlers(this.frames);
    engines.onExit(
      (exit) =>
        void this.workerExited(exit).catch((err) => {
          // The database is away (restarting, say): start the worker again once it answers.
          this.logger.error({ err, ...this.tenants.fields(exit.instanceId) }, 'handling a worker exit failed; starting the worker again once the database answers');
          this.retryStart(exit.instanceId, 0);
        }),
    );
  }

  setGatewayUrl(url: string): void {
    this.opts.gatewayUrl = url;
  }

  // ------------------------------------------------------------ lifecycle

  /** Starts (or re-starts) the worker of an instance with a fresh token. */
  async start(instanceId: number): Promise<void> {
    const started = this.startWorker(instanceId);
    this.starting.set(instanceId, started);
    try {
      await started;
    } finally {
      if (this.starting.get(instanceId) === started) this.starting.delete(instanceId);
    }
  }

  private async startWorker(instanceId: number): Promise<void> {
    clearTimeout(this.restartTimers.get(instanceId));
    this.restartTimers.delete(instanceId);
    const { token, hash } = newWorkerToken();
    const [instance] = await this.db
      .update(instances)
      .set({ workerTokenHash: hash, desiredState: 'running', startedBy: this.opts.ownerId, updatedAt: sql`now()` })
      .where(eq(instances.id, instanceId))
      .returning();
    if (!instance) return;
    // An older worker of the instance on another replica (or its socket there) lets go: the new token replaced its own.
    await this.announceWorker(instanceId);
    this.tenants.remember(instanceId, instance.userId);
    if (!this.sessions.isMoving(instanceId)) await recordStatus(this.db, instanceId, 'starting', 'starting worker');
    // Until the new worker reports, the session state is unknown (it keeps `paired`).
    await this.sessions.forget(instanceId, 'worker starting');
    const state = await grantInstanceState(this.opts.state.sql, this.opts.state.databaseUrl, instanceId);
    try {
      const own = (await this.opts.instanceEnv?.(instance)) ?? {};
      const engine = await this.engines.forInstance(instanceId);
      // A worker still running (e.g. a container from before a gateway restart) holds an old token: replace it.
      if ((await engine.inspect(instanceId))?.state === 'running') await engine.remove(instanceId);
      await engine.ensure({
        instanceId,
        tenantId: instance.userId,
        name: instance.name,
        provider: instance.provider,
        resources: { cpu: instance.cpuLimit, memory: instance.memoryLimit },
        ...(this.opts.caFile && { caFile: this.opts.caFile }),
        env: {
          ...this.opts.workerEnv,
          ...own,
          WGS_GATEWAY_URL: this.opts.gatewayUrl,
          WGS_INSTANCE_ID: String(instanceId),
          WGS_WORKER_TOKEN: token,
          WGS_PROVIDER: instance.provider,
          WGS_STATE_DSN: state.dsn,
          WGS_STATE_SCHEMA: state.schema,
        },
      });
    } catch (err) {
      if (!this.sessions.isMoving(instanceId)) await recordStatus(this.db, instanceId, 'error', (err as Error).message);
      throw err;
    }
  }

  /** Stops the worker for good (desired state `stopped`). */
  async stop(instanceId: number, opts: { remove?: boolean } = {}): Promise<void> {
    clearTimeout(this.restartTimers.get(instanceId));
    this.restartTimers.delete(instanceId);
    await this.db.update(instances).set({ desiredState: 'stopped', workerTokenHash: null, startedBy: null }).where(eq(instances.id, instanceId));
    // A worker of the instance running under another replica (its process-engine child) or connected there goes too.
    await this.announceWorker(instanceId);
    const engine = await this.engines.forInstance(instanceId);
    if (opts.remove) {
      await engine.remove(instanceId);
      this.frames.forget(instanceId);
    } else await engine.stop(instanceId);
    this.sessions.drop(instanceId);
  }

  /** Stops and removes the worker, then drops the instance's schema and role (the row is the caller's). */
  async destroy(instanceId: number): Promise<void> {
    await this.stop(instanceId, { remove: true });
    await dropInstanceState(this.opts.state.sql, instanceId);
    this.tenants.forget(instanceId);
  }

  async restart(instanceId: number): Promise<void> {
    await (await this.engines.forInstance(instanceId)).stop(instanceId);
    this.crashes.delete(instanceId);
    await this.start(instanceId);
  }

  /** Before the API serves: forget what the previous gateway's workers reported. */
  async prepareBoot(): Promise<void> {
    await this.abandonDeadMoves();
    await markWorkersStarting(this.db, 'gateway started; starting worker');
  }

  /** Moves whose gateway process died are abandoned at once; the instances start where their rows say. */
  private async abandonDeadMoves(): Promise<number[]> {
    const abandoned = await abandonMigrations(this.db);
    if (abandoned.length) this.logger.warn({ instances: abandoned }, 'moves cut short by a gateway that died were abandoned; the instances start where they are');
    for (const id of abandoned) {
      // The dead mover never announces the end of its move: its mark here would hold the instance for 90 s.
      this.sessions.remoteMove(id, false);
      this.sessions.changed(id);
    }
    return abandoned;
  }

  /**
   * One pass of the control loop (the leader's, with gateway replicas): what
   * should run (desired `running` on a process or docker node, not given up on
   * as `error`) against what runs. An instance is left alone while a live
   * replica holds its worker's socket, or while another live replica runs the
   * worker it started (that replica restarts it). Otherwise, when no engine
   * this replica sees runs it, a worker is started here: at once when no
   * worker of it lives anywhere (nothing holds its single-owner lock), else
   * after ORPHAN_GRACE_MS, the time a worker of a dead replica has to dial
   * another one. A worker that should not run is removed.
   */
  async reconcile(): Promise<{ started: number[]; removed: number[]; moved: number[]; abandoned: number[]; waiting: number[] }> {
    const abandoned = await this.abandonDeadMoves();
    const moved = await this.moveOffUnreachableNodes();
    const wanted = await this.db
      .select({
        id: instances.id,
        status: instances.status,
        userId: instances.userId,
        held: sql<boolean>`coalesce(${instances.workerOwner} in ${liveOwners}, false)`,
        busy: sql<boolean>`(${instances.status} = 'migrating' or coalesce(${instances.moveOwner} in ${liveOwners}, false) or coalesce(${instances.opOwner} in ${liveOwners}, false))`,
        runElsewhere: sql<boolean>`coalesce(${instances.startedBy} <> ${this.opts.ownerId} and ${instances.startedBy} in ${liveOwners} and ${nodes.engine} = 'process', false)`,
        alive: sql<boolean>`exists(select 1 from pg_locks where locktype = 'advisory' and classid = ${STATE_LOCK_CLASS}::oid
          and objid = ${instances.id}::oid and objsubid = 2 and granted and database = (select oid from pg_database where datname = current_database()))`,
      })
      .from(instances)
      .innerJoin(nodes, eq(nodes.id, instances.nodeId))
      .where(and(eq(instances.desiredState, 'running'), inArray(nodes.engine, RUNNABLE_ENGINES), ne(nodes.status, 'unreachable')));
    const { running, engineOf } = await this.runningWorkers();
    for (const w of wanted) this.tenants.remember(w.id, w.userId);
    const wantedIds = new Set(wanted.map((w) => w.id));
    const started: number[] = [];
    const removed: number[] = [];
    const waiting: number[] = [];
    const now = Date.now();
    for (const { id, status, held, busy, runElsewhere, alive } of wanted) {
      if (held || runElsewhere || busy) {
        this.orphanSince.delete(id);
        continue;
      }
      // A move by another replica is `busy` above while its gateway lives (the database says so); the in-memory mark of a
      // remote move (NOTIFY) outlives a mover that died, so only this replica's own moves hold a start back here.
      if (running.has(id) || this.starting.has(id) || this.sessions.isMovingHere(id) || this.restartTimers.has(id) || status === 'error' || this.stopping) continue;
      if (alive && !this.hub.isConnected(id)) {
        const since = this.orphanSince.get(id) ?? now;
        this.orphanSince.set(id, since);
        if (now - since < ORPHAN_GRACE_MS) {
          waiting.push(id);
          continue;
        }
      }
      this.orphanSince.delete(id);
      this.logger.warn(this.tenants.fields(id), 'reconciler: worker missing; starting it');
      started.push(id);
      await this.start(id).catch((err) => this.logger.error({ err, ...this.tenants.fields(id) }, 'reconciler: start failed'));
    }
    for (const id of this.orphanSince.keys()) if (!wantedIds.has(id)) this.orphanSince.delete(id);
    for (const id of running) {
      if (wantedIds.has(id) || this.starting.has(id) || this.sessions.isMoving(id)) continue;
      this.logger.warn(this.tenants.fields(id), 'reconciler: worker should not run; removing it');
      removed.push(id);
      await engineOf
        .get(id)!
        .remove(id)
        .catch((err) => this.logger.error({ err, ...this.tenants.fields(id) }, 'reconciler: remove failed'));
    }
    return { started, removed, moved, abandoned, waiting };
  }

  /** What the engines this replica sees run: its own process workers and every docker node's containers. */
  private async runningWorkers(engines: Engine[] = this.engines.all()) {
    const running = new Set<number>();
    const engineOf = new Map<number, Engine>();
    for (const engine of engines) {
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
    return { running, engineOf };
  }

  /**
   * Every replica, leader or not: its own process workers whose instances
   * should not run here any more (deleted, stopped, or started anew by
   * another replica) are removed. The leader's pass covers containers.
   */
  async reconcileLocal(): Promise<number[]> {
    const { running } = await this.runningWorkers([this.engines.process]);
    if (running.size === 0) return [];
    const rows = await this.db
      .select({ id: instances.id, desired: instances.desiredState, startedBy: instances.startedBy })
      .from(instances)
      .where(inArray(instances.id, [...running]));
    const keep = new Set(rows.filter((r) => r.desired === 'running' && (r.startedBy === this.opts.ownerId || r.startedBy === null)).map((r) => r.id));
    const removed: number[] = [];
    for (const id of running) {
      if (keep.has(id) || this.starting.has(id) || this.sessions.isMoving(id)) continue;
      this.logger.warn(this.tenants.fields(id), 'worker should not run under this replica; removing it');
      removed.push(id);
      await this.engines.process.remove(id).catch((err) => this.logger.error({ err, ...this.tenants.fields(id) }, 'removing a worker failed'));
    }
    return removed;
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
      .where(and(eq(instances.desiredState, 'running'), eq(nodes.status, 'unreachable'), ne(instances.status, 'error'), ownerDead(instances.moveOwner)));
    const moved: number[] = [];
    for (const inst of stranded) {
      if (this.stopping || this.starting.has(inst.id) || this.sessions.isMoving(inst.id)) continue;
      const target = await placeAndAssign(this.db, limitsOf(inst), this.opts.overcommit ?? 1, (tx, node) =>
        tx.update(instances).set({ nodeId: node.id, moveOwner: this.opts.ownerId }).where(eq(instances.id, inst.id)),
      );
      if (!target.ok) {
        await this.sessions.setStatus(inst.id, 'error', `node ${inst.from} is unreachable and no other node can take the instance: ${target.reason}`);
        continue;
      }
      await this.sessions.setStatus(inst.id, 'migrating', `node ${inst.from} is unreachable; moving to ${target.node.name}`);
      this.logger.warn({ ...this.tenants.fields(inst.id), from: inst.from, to: target.node.name }, 'reconciler: moving instance off an unreachable node');
      moved.push(inst.id);
      await this.start(inst.id).catch((err) => this.logger.error({ err, ...this.tenants.fields(inst.id) }, 'reconciler: start after move failed'));
    }
    return moved;
  }

  /** Whether moves are announced to other replicas (the cluster signals run). */
  announceMoves = false;

  /** A migration takes the instance over: see `InstanceSessions.moving`; other replicas hold its commands too. */
  async beginMove(instanceId: number): Promise<void> {
    this.sessions.beginMove(instanceId);
    if (this.announceMoves) await this.db.execute(sql`select pg_notify(${MOVES_CHANNEL}, ${`+${instanceId}`})`).catch(() => {});
  }

  /**
   * The migration is over (done or rolled back): commands queued meanwhile go
   * to the worker now, here or on the replica its new worker dialled.
   */
  async endMove(instanceId: number): Promise<void> {
    this.sessions.endMove(instanceId);
    if (this.announceMoves) await this.db.execute(sql`select pg_notify(${MOVES_CHANNEL}, ${`-${instanceId}`})`).catch(() => {});
    if (this.hub.isConnected(instanceId)) await this.frames.deliverPending(instanceId);
    else await this.route(instanceId, await this.queue.pending(instanceId, true));
  }

  /** Whether a move (here, or announced by another replica) holds the instance. */
  isMoving(instanceId: number): boolean {
    return this.sessions.isMoving(instanceId);
  }

  /** Starts listening to the other replicas (cluster.ts): remote results, workers, moves and changes. */
  async startCluster(sql: Sql): Promise<ClusterSignals> {
    const signals = new ClusterSignals(sql, this, this.logger.child({ component: 'cluster' }));
    await signals.start();
    return signals;
  }

  /** Records a status and wakes waiters (migrations write their own statuses). */
  recordStatus(instanceId: number, status: InstanceStatus, reason: string): Promise<void> {
    return this.sessions.recordStatus(instanceId, status, reason);
  }

  /**
   * Runs the control loop every `intervalMs` until shutdown: `reconcileLocal`
   * on every replica, `reconcile` too while this replica leads (`lead`). A
   * pass that left orphans waiting is followed by one when their grace ends.
   */
  startReconciler(intervalMs: number): void {
    const loop = async () => {
      let next = intervalMs;
      await this.reconcileLocal().catch((err) => this.logger.error({ err }, 'reconcile (own workers) failed'));
      if (this.leading) {
        const pass = await this.reconcile().catch((err) => {
          this.logger.error({ err }, 'reconcile failed');
          return undefined;
        });
        if (pass?.waiting.length) next = Math.min(intervalMs, ORPHAN_GRACE_MS / 3);
      }
      if (!this.stopping) this.reconcileTimer = setTimeout(loop, next);
    };
    this.loopNow = () => {
      clearTimeout(this.reconcileTimer);
      this.reconcileTimer = setTimeout(loop, 0);
    };
    this.reconcileTimer = setTimeout(loop, intervalMs);
  }

  private loopNow: (() => void) | undefined;

  /** This replica leads (claims/leader.ts): the control loop's leader pass runs, the first one now. */
  lead(): void {
    this.leading = true;
    this.loopNow?.();
  }

  stepDown(): void {
    this.leading = false;
    this.orphanSince.clear();
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * Tells every replica that the instance's worker changed (a start with a
   * new token, a stop): sockets of older workers are closed (4409) and their
   * process-engine parents remove them (`letGo`). Lost notifications are
   * caught by the hello token check and `reconcileLocal`.
   */
  private async announceWorker(instanceId: number): Promise<void> {
    await this.db.execute(sql`select pg_notify(${WORKERS_CHANNEL}, ${String(instanceId)})`).catch(() => {});
  }

  /** Another replica started or stopped the instance's worker: an older one here goes. */
  async letGo(instanceId: number): Promise<void> {
    const [row] = await this.db
      .select({ tokenHash: instances.workerTokenHash, startedBy: instances.startedBy })
      .from(instances)
      .where(eq(instances.id, instanceId));
    const mine = row !== undefined && row.startedBy === this.opts.ownerId;
    let removing: Promise<void> | undefined;
    if (!mine && !this.starting.has(instanceId) && (await this.engines.process.inspect(instanceId))) {
      clearTimeout(this.restartTimers.get(instanceId));
      this.restartTimers.delete(instanceId);
      this.logger.info(this.tenants.fields(instanceId), 'another replica took the worker over; removing the one here');
      // Marked as a requested stop before its socket closes, so its exit is not taken for a crash.
      removing = this.engines.process.remove(instanceId);
    }
    this.hub.closeStale(instanceId, row?.tokenHash ?? null);
    await removing;
  }

  /** What the pacer needs of this runtime: its workers, dispatch and the queue. */
  pacerTarget() {
    return {
      isConnected: (id: number) => this.hub.isConnected(id),
      dispatch: (c: Command) => this.frames.dispatch(c),
    };
  }

  /** Gateway shutdown: stop restarting, stop workers, record why. */
  async shutdown(stopWorkers: () => Promise<void>): Promise<void> {
    this.stopping = true;
    await this.pacer.stop();
    clearTimeout(this.reconcileTimer);
    for (const timer of this.restartTimers.values()) clearTimeout(timer);
    // Starts under way finish first (for at most 15 s), so the workers they start are among those stopped below.
    const pending = Promise.allSettled(this.starting.values());
    let deadline: Timer | undefined;
    await Promise.race([pending, new Promise<void>((resolve) => (deadline = setTimeout(resolve, SHUTDOWN_START_WAIT_MS)))]);
    clearTimeout(deadline);
    // Process workers die with the gateway; containers on docker nodes keep running and are replaced at the next boot.
    const ids = (await this.engines.process.list()).filter((w) => w.state === 'running').map((w) => w.instanceId);
    await stopWorkers();
    // Only where no other replica has started a worker meanwhile (it may already be running there).
    const ours = ids.length === 0 ? [] : await this.db
      .select({ id: instances.id })
      .from(instances)
      .where(and(inArray(instances.id, ids), sql`(${instances.startedBy} is null or ${instances.startedBy} = ${this.opts.ownerId})`))
      .catch(() => ids.map((id) => ({ id })));
    for (const { id } of ours) await recordStatus(this.db, id, 'stopped', 'gateway stopped').catch(() => {});
  }

  /** See InstanceSessions.waitUntil. */
  waitUntil(instanceId: number, done: (row: Instance) => boolean, timeoutMs: number): Promise<Instance | undefined> {
    return this.sessions.waitUntil(instanceId, done, timeoutMs);
  }

  /**
   * Starts a worker again after its exit could not be handled or its restart
   * failed (the database or the node's engine did not answer), with backoff
   * (0.25 s doubling to 4 s, 20 tries: about a minute) until a start
   * succeeds. Not counted as a crash: the worker did not fail, what it needs
   * did.
   */
  private retryStart(instanceId: number, attempt: number): void {
    if (this.stopping || this.restartTimers.has(instanceId)) return;
    if (attempt >= 20) {
      // Given up here: the leader's control loop may start it elsewhere.
      void this.db.update(instances).set({ startedBy: null }).where(and(eq(instances.id, instanceId), eq(instances.startedBy, this.opts.ownerId))).catch(() => {});
      return;
    }
    const delay = Math.min(4000, 250 * 2 ** attempt);
    this.restartTimers.set(
      instanceId,
      setTimeout(() => {
        this.restartTimers.delete(instanceId);
        if (this.stopping) return;
        this.start(instanceId).catch((err) => {
          this.logger.warn({ err, ...this.tenants.fields(instanceId), attempt }, 'start after a failed exit handling did not succeed; trying again');
          this.retryStart(instanceId, attempt + 1);
        });
      }, delay),
    );
  }

  private async workerExited(exit: WorkerExit): Promise<void> {
    const id = exit.instanceId;
    if (!exit.requested && !this.stopping) {
      // Not the exit of the instance's current worker: one exit reported again (every docker node on one
      // daemon follows its die events, and only the engine that stopped a container knows it asked), or
      // the late exit of a container a start replaced. Taken for a crash, each restarted the instance,
      // and that restart's removal of the new worker was one more such exit: a restart loop.
      if (this.exiting.has(id) || this.restartTimers.has(id)) return;
      this.exiting.add(id);
      try {
        // A start under way replaces the worker: whether this exit matters is known once it is done
        // (the new worker runs: no; it died at once: a crash like any other).
        await this.starting.get(id)?.catch(() => {});
        if (this.stopping) return;
        const now = await this.engines
          .forInstance(id)
          .then((engine) => engine.inspect(id))
          .catch(() => null);
        if (now?.state === 'running') return;
        await this.crashed(exit);
      } finally {
        this.exiting.delete(id);
      }
      return;
    }
    this.sessions.drop(id);
  }

  /** The instance's worker exited unasked: report it and restart it (with backoff), or give up after a crash loop. */
  private async crashed(exit: WorkerExit): Promise<void> {
    this.sessions.drop(exit.instanceId);
    const [current] = await this.db.select().from(instances).where(eq(instances.id, exit.instanceId));
    // Another replica started a newer worker for it (a restart, a move, a takeover): not ours to report or restart.
    if (current && current.startedBy !== null && current.startedBy !== this.opts.ownerId) return;
    await this.sessions.forget(exit.instanceId, 'worker exited');
    const instance = current;
    if (!instance || instance.desiredState !== 'running') return;
    const crashes = exit.ranMs >= HEALTHY_RUN_MS ? 1 : (this.crashes.get(exit.instanceId) ?? 0) + 1;
    this.crashes.set(exit.instanceId, crashes);
    const how = (exit.signal ? `signal ${exit.signal}` : `code ${exit.exitCode}`) + (exit.reason ? `: ${exit.reason}` : '');
    if (crashes >= CRASH_LOOP_LIMIT) {
      await this.sessions.setStatus(exit.instanceId, 'error', `worker crashed ${crashes} times in a row (last: ${how}); not restarting`);
      this.opts.metrics?.workerCrashLoops.inc({ provider: instance.provider });
      return;
    }
    // The first crash after a healthy run restarts at once; repeats back off.
    const { initial, max } = this.opts.backoffMs ?? { initial: 1000, max: 30_000 };
    const delay = crashes === 1 ? 0 : Math.min(max, initial * 2 ** (crashes - 2));
    await this.sessions.setStatus(exit.instanceId, 'starting', `worker exited (${how}); restarting in ${(delay / 1000).toFixed(1)} s`);
    this.opts.metrics?.workerRestarts.inc({ provider: instance.provider });
    this.restartTimers.set(
      exit.instanceId,
      setTimeout(() => {
        this.restartTimers.delete(exit.instanceId);
        if (this.stopping) return;
        this.start(exit.instanceId).catch((err) => {
          // The engine or the database is away for a moment (a Docker daemon restarting, say): try again.
          this.logger.error({ err, ...this.tenants.fields(exit.instanceId) }, 'restart failed; trying again');
          this.retryStart(exit.instanceId, 0);
        });
      }, delay),
    );
  }

  // ------------------------------------------------------------ commands

  /**
   * Sends a stored command to its worker now if the worker can take it; else
   * it waits in the queue. A worker connected to another replica gets it
   * through the database (`route`). True when it is on its way.
   */
  async dispatch(command: Command): Promise<boolean> {
    if (this.frames.dispatch(command)) return true;
    if (this.hub.isConnected(command.instanceId)) return false; // here, but cannot take it now (moving, not connected)
    return (await this.route(command.instanceId, [command])).length > 0;
  }

  /**
   * Commands for a worker connected to another live replica are marked due
   * (`not_before`, unclaimed) and that replica is woken by NOTIFY
   * `wgs_pacing` with the instance id: its pacer claims and sends them in
   * order, and it looks every 5 s anyway. One statement. Commands that need a
   * connected session go only when the instance's session is `connected`;
   * none while it moves (the new worker gets them at its hello). Returns the
   * ids routed.
   */
  async route(instanceId: number, list: Pick<Command, 'id' | 'name'>[]): Promise<number[]> {
    if (list.length === 0) return [];
    const anyTime = list.filter((c) => !NEEDS_CONNECTION.has(c.name)).map((c) => c.id);
    const ids = list.map((c) => c.id);
    const rows = await this.db.execute<{ id: number }>(sql`
      with target as (
        select state from ${instances}
        where id = ${instanceId} and worker_owner in ${liveOwners} and worker_owner <> ${this.opts.ownerId} and status <> 'migrating'
      ), routed as (
        update ${commands} set not_before = coalesce(not_before, now()), sent_at = null
        where id in ${ids} and status = 'pending' and instance_id = ${instanceId}
          and exists (select 1 from target where state = 'connected' or ${commands.id} = any(${`{${anyTime.join(',')}}`}::int[]))
        returning id
      ), woken as (
        select pg_notify(${PACING_CHANNEL}, ${String(instanceId)}) from (select 1 from routed limit 1) r
      )
      select id, (select count(*) from woken) as woken from routed`);
    return rows.map((r) => Number(r.id));
  }

  /** Whether this replica holds the instance's worker socket (see `workerConnected` for any replica). */
  isWorkerConnected(instanceId: number): boolean {
    return this.hub.isConnected(instanceId);
  }

  /** Whether the instance's worker is connected to any live replica (this one or another). */
  async workerConnected(instanceId: number): Promise<boolean> {
    if (this.hub.isConnected(instanceId)) return true;
    const [row] = await this.db
      .select({ held: sql<boolean>`coalesce(${instances.workerOwner} in ${liveOwners}, false)` })
      .from(instances)
      .where(eq(instances.id, instanceId));
    return row?.held ?? false;
  }

  sessionStateOf(instanceId: number): SessionState | undefined {
    return this.sessions.stateOf(instanceId);
  }
}
