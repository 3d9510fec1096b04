/**
 * Moving a live number between nodes. The session is in Postgres and one
 * worker at a time holds it (the single-owner lock), so a move is: stop the
 * old worker gracefully (it finishes its command and releases the lock),
 * start one on the target node, and wait until it holds the session again.
 * Meanwhile the instance is `migrating` and commands wait in the queue (sends
 * answer 202); the new worker gets them when it connects. A move that fails
 * puts the instance back on its old node.
 */
import { and, asc, count, eq, isNotNull, or, sql } from 'drizzle-orm';
import type { GatewayMetrics } from '../metrics/metrics';
import { liveOwners, ownerDead } from '../claims/owner';
import type { Db } from '../db/client';
import { events, instances, nodes, type Instance } from '../db/schema';
import { ApiError, conflict } from '../http/errors';
import type { Logger } from '../logging/logger';
import { limitsOf, placeAndAssign } from '../scheduler/loads';
import type { InstanceRuntime } from './runtime';

/** How long the new worker has to hold the session again. */
const DEFAULT_MOVE_TIMEOUT_MS = 30_000;
/** Instances a drain moves at the same time. */
const DRAIN_CONCURRENCY = 3;
/** How long a delete waits for another replica's move of the instance to end before answering 409. */
const DEFAULT_CLAIM_WAIT_MS = 60_000;

export interface MoveResult {
  instanceId: number;
  from: string;
  to: string;
  durationMs: number;
}

export interface DrainProgress {
  startedAt: Date;
  /** Instances on the node when the drain (or its latest pass) began. */
  total: number;
  moved: number;
  failed: { instanceId: number; reason: string }[];
  finishedAt: Date | null;
}

export class Migrator {
  /** One operation at a time per instance (migrate, delete); see exclusive(). */
  private readonly locks = new Map<number, Promise<unknown>>();
  private readonly drains = new Map<number, DrainProgress>();
  private readonly draining = new Set<number>();
  private timer?: ReturnType<typeof setTimeout>;
  private stopped = false;
  private sweeping = false;

  constructor(
    private readonly db: Db,
    private readonly runtime: InstanceRuntime,
    private readonly logger: Logger,
    /** ownerId: this gateway process (claims/owner.ts), recorded on the moves and drains it runs. */
    private readonly opts: { overcommit: number; moveTimeoutMs?: number; ownerId: number; metrics?: GatewayMetrics; claimWaitMs?: number },
  ) {}

  /**
   * Runs `fn` when no other exclusive operation on the instance runs, on this
   * replica or any other: a delete racing a migration waits for it to finish
   * (or roll back). Within a process the operations queue; across replicas the
   * instance's `op_owner` claim decides (a dead owner's claim is free). With
   * `wait: false` a claim held elsewhere is a 409 at once; otherwise it is
   * retried for up to a minute, then 409.
   */
  async exclusive<T>(instanceId: number, fn: () => Promise<T>, opts: { wait?: boolean } = {}): Promise<T> {
    const before = this.locks.get(instanceId) ?? Promise.resolve();
    const run = before.catch(() => {}).then(async () => {
      await this.claim(instanceId, opts.wait ?? true);
      try {
        return await fn();
      } finally {
        await this.db
          .update(instances)
          .set({ opOwner: null })
          .where(and(eq(instances.id, instanceId), eq(instances.opOwner, this.opts.ownerId)))
          .catch((err) => this.logger.warn({ err, instanceId }, 'could not release the instance claim; it is free once this gateway stops'));
      }
    });
    const tail = run.catch(() => {});
    this.locks.set(instanceId, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(instanceId) === tail) this.locks.delete(instanceId);
    }
  }

  /** Takes the instance's cross-replica claim (`op_owner`); throws 409 when another live replica keeps it, 404 when the row is gone. */
  private async claim(instanceId: number, wait: boolean): Promise<void> {
    const deadline = Date.now() + (this.opts.claimWaitMs ?? DEFAULT_CLAIM_WAIT_MS);
    for (;;) {
      const [row] = await this.db
        .select({
          id: instances.id,
          claimed: sql<boolean>`${instances.opOwner} is not null and ${instances.opOwner} <> ${this.opts.ownerId} and ${instances.opOwner} in ${liveOwners}`,
        })
        .from(instances)
        .where(eq(instances.id, instanceId));
      if (!row) throw new ApiError(404, 'not_found', `instance ${instanceId} not found`);
      if (!row.claimed) {
        const taken = await this.db
          .update(instances)
          .set({ opOwner: this.opts.ownerId })
          .where(and(eq(instances.id, instanceId), or(eq(instances.opOwner, this.opts.ownerId), ownerDead(instances.opOwner))))
          .returning({ id: instances.id });
        if (taken.length > 0) return;
      }
      if (!wait || Date.now() > deadline) {
        throw conflict('migration_in_progress', `instance ${instanceId} is being moved or deleted by another gateway replica; try again when that is done`);
      }
      await Bun.sleep(200);
    }
  }

  /**
   * Moves the instance to `targetNode` (a name), or to the node the scheduler
   * picks among the others. Resolves once the new worker holds the session.
   */
  async migrate(instanceId: number, targetNode?: string): Promise<MoveResult> {
    // A move on another replica is its op_owner claim's to refuse (its announced mark may outlive a dead mover).
    if (this.runtime.sessions.isMovingHere(instanceId) || this.locks.has(instanceId)) {
      throw conflict('migration_in_progress', `instance ${instanceId} is already being moved or changed; try again when that is done`);
    }
    return this.exclusive(instanceId, () => this.move(instanceId, targetNode), { wait: false });
  }

  private async move(instanceId: number, targetNode: string | undefined): Promise<MoveResult> {
    const [current] = await this.db
      .select({ instance: instances, node: nodes })
      .from(instances)
      .innerJoin(nodes, eq(nodes.id, instances.nodeId))
      .where(eq(instances.id, instanceId));
    if (!current) throw new ApiError(404, 'not_found', `instance ${instanceId} not found`);
    const { instance, node: from } = current;
    if (instance.status === 'migrating') throw conflict('migration_in_progress', `instance ${instanceId} is already migrating`);
    if (targetNode !== undefined) await this.checkTarget(targetNode, from.name);

    // Reserve the target: the instance's limits count there from now on.
    const placed = await placeAndAssign(this.db, { ...limitsOf(instance), node: targetNode, excludeNodeId: from.id }, this.opts.overcommit, (tx, node) =>
      tx
        .update(instances)
        .set({ targetNodeId: node.id, moveOwner: this.opts.ownerId })
        .where(and(eq(instances.id, instanceId), sql`${instances.status} <> 'migrating'`))
        .returning({ id: instances.id }),
    );
    if (!placed.ok) throw new ApiError(503, 'no_capacity', `no other node can take instance ${instanceId}: ${placed.reason}`);
    if (placed.value.length === 0) throw conflict('migration_in_progress', `instance ${instanceId} is already migrating`);
    const to = placed.node;

    const started = Date.now();
    let result: 'ok' | 'failed' = 'failed';
    await this.runtime.beginMove(instanceId);
    try {
      await this.runtime.recordStatus(instanceId, 'migrating', `moving from ${from.name} to ${to.name}`);
      const oldEngine = await this.runtime.engines.forNode(from);
      try {
        await this.switchOver(instance, oldEngine, to.id);
      } catch (err) {
        const reason = (err as Error).message;
        this.logger.warn({ ...this.runtime.tenants.fields(instanceId), from: from.name, to: to.name, reason }, 'migration failed; moving back');
        await this.rollBack(instance, from.id);
        await this.runtime.endMove(instanceId);
        await this.runtime.recordStatus(instanceId, instance.desiredState === 'running' ? 'running' : 'stopped', `migration to ${to.name} failed: ${reason}; back on ${from.name}`);
        throw new ApiError(503, 'migration_failed', `moving instance ${instanceId} to ${to.name} failed: ${reason}; it is back on ${from.name}`);
      }
      const durationMs = Date.now() - started;
      await this.db.transaction(async (tx) => {
        await tx.update(instances).set({ targetNodeId: null, moveOwner: null }).where(eq(instances.id, instanceId));
        await tx.insert(events).values({ instanceId, type: 'instance.migrated', data: { from: from.name, to: to.name, durationMs } });
      });
      await this.runtime.endMove(instanceId);
      await this.runtime.recordStatus(
        instanceId,
        instance.desiredState === 'running' ? 'running' : 'stopped',
        `migrated from ${from.name} to ${to.name} in ${durationMs} ms`,
      );
      this.logger.info({ ...this.runtime.tenants.fields(instanceId), from: from.name, to: to.name, durationMs }, 'instance migrated');
      result = 'ok';
      return { instanceId, from: from.name, to: to.name, durationMs };
    } finally {
      // An exception above (the database gone, say) must not leave the instance held.
      if (this.runtime.sessions.isMovingHere(instanceId)) await this.runtime.endMove(instanceId).catch(() => {});
      // A move counts once it has begun (the target reserved): refusals before that are the API's answer.
      this.opts.metrics?.migrations.inc({ result });
      this.opts.metrics?.migrationDuration.observe({ result }, (Date.now() - started) / 1000);
    }
  }

  /** A named target must exist and be able to take work; the scheduler checks capacity and labels. */
  private async checkTarget(name: string, fromName: string): Promise<void> {
    const [target] = await this.db.select().from(nodes).where(eq(nodes.name, name));
    if (!target) throw new ApiError(422, 'invalid_field', `invalid field 'target_node': no node named ${name}`);
    if (name === fromName) throw conflict('same_node', `instance is already on node ${name}`);
    if (target.drainingSince) throw conflict('node_not_ready', `node ${name} is draining and takes no instances`);
    if (target.status === 'unreachable') throw conflict('node_not_ready', `node ${name} is unreachable${target.statusReason ? `: ${target.statusReason}` : ''}`);
  }

  /**
   * Old worker out (graceful stop: its running command finishes, the lock is
   * released), instance onto the target, new worker in; then waits until the
   * new worker holds the session as the old one did.
   */
  private async switchOver(instance: Instance, oldEngine: Awaited<ReturnType<InstanceRuntime['engines']['forNode']>>, toNodeId: number): Promise<void> {
    const id = instance.id;
    await oldEngine.remove(id);
    // The old worker's socket record goes with it (it may sit on another replica, whose close comes later).
    await this.db.update(instances).set({ nodeId: toNodeId, workerOwner: null, workerSocket: null }).where(eq(instances.id, id));
    if (instance.desiredState !== 'running') return;
    await this.runtime.start(id);
    await this.waitHeld(instance);
  }

  /** Waits until the instance's new worker holds the session as before the move (connected if it was paired); throws why not. */
  private async waitHeld(instance: Instance): Promise<void> {
    const id = instance.id;
    const timeoutMs = this.opts.moveTimeoutMs ?? DEFAULT_MOVE_TIMEOUT_MS;
    // A paired number must come back connected (no new QR); an unpaired one just needs its worker reporting again.
    // Connected to any replica: a new worker may dial another one than this.
    const held = (row: Instance) => row.workerOwner !== null && (instance.paired ? row.state === 'connected' : row.state !== 'starting');
    const row = await this.runtime.waitUntil(id, (r) => held(r) || r.state === 'failed' || r.state === 'logged_out', timeoutMs);
    if (!row) throw new Error('the instance was deleted');
    if (!held(row)) {
      throw new Error(
        row.state === 'starting' || row.state === 'reconnecting'
          ? `the new worker did not hold the session within ${timeoutMs / 1000} s (state ${row.state}${row.stateReason ? `: ${row.stateReason}` : ''})`
          : `the new worker reported ${row.state}${row.stateReason ? `: ${row.stateReason}` : ''}`,
      );
    }
  }

  /** Back to the old node: whatever runs on the target goes, the old node gets a fresh worker. */
  private async rollBack(instance: Instance, fromNodeId: number): Promise<void> {
    const id = instance.id;
    try {
      await (await this.runtime.engines.forInstance(id)).remove(id);
    } catch (err) {
      this.logger.error({ err, ...this.runtime.tenants.fields(id) }, 'rollback: removing the new worker failed');
    }
    await this.db.update(instances).set({ nodeId: fromNodeId, targetNodeId: null, moveOwner: null }).where(eq(instances.id, id));
    if (instance.desiredState !== 'running') return;
    // Still `migrating` until the old node holds the session again, so the recorded reason is the last word.
    await this.runtime
      .start(id)
      .then(() => this.waitHeld(instance))
      .catch((err) => this.logger.error({ err, ...this.runtime.tenants.fields(id) }, 'rollback: the worker on the old node did not come back'));
  }

  // ------------------------------------------------------------ drain

  /** Marks the node draining (nothing new goes there) and starts moving its instances off. */
  async drain(nodeId: number): Promise<void> {
    await this.db.update(nodes).set({ drainingSince: sql`coalesce(${nodes.drainingSince}, now())`, updatedAt: sql`now()` }).where(eq(nodes.id, nodeId));
    void this.kick(nodeId);
  }

  /** Takes the node back: nothing more moves off it (moves under way finish). */
  async undrain(nodeId: number): Promise<void> {
    await this.db.update(nodes).set({ drainingSince: null, drainOwner: null, updatedAt: sql`now()` }).where(eq(nodes.id, nodeId));
    const progress = this.drains.get(nodeId);
    if (progress && !progress.finishedAt) progress.finishedAt = new Date();
  }

  progress(nodeId: number): DrainProgress | undefined {
    return this.drains.get(nodeId);
  }

  /** Instances still on the node. */
  async remaining(nodeId: number): Promise<number> {
    const [row] = await this.db.select({ n: count() }).from(instances).where(eq(instances.nodeId, nodeId));
    return row!.n;
  }

  /**
   * Resumes drains (after a restart, a dead driver, or instances that failed
   * to move) every `intervalMs`: the leader's job with gateway replicas
   * (`stopSweeps` when it steps down; drains it drives keep their claim until
   * they end, a new leader takes a dead driver's over).
   */
  start(intervalMs: number): void {
    this.sweeping = true;
    clearTimeout(this.timer);
    const loop = async () => {
      if (!this.sweeping || this.stopped) return;
      void this.sweep();
      this.timer = setTimeout(loop, intervalMs);
    };
    this.timer = setTimeout(loop, 0);
  }

  /** Stops the sweeps (this replica no longer leads); drain passes under way finish. */
  stopSweeps(): void {
    this.sweeping = false;
    clearTimeout(this.timer);
  }

  /** A drain pass for every drained node this gateway drives or may take over; resolves when they end. */
  async sweep(): Promise<void> {
    const drained = await this.db
      .select({ id: nodes.id })
      .from(nodes)
      .where(isNotNull(nodes.drainingSince))
      .catch(() => []);
    await Promise.all(drained.map(({ id }) => this.kick(id)));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Starts a drain pass on the node unless one runs; resolves when the pass ends. */
  private kick(nodeId: number): Promise<void> {
    if (this.draining.has(nodeId) || this.stopped) return Promise.resolve();
    this.draining.add(nodeId);
    return this.drainPass(nodeId)
      .catch((err) => this.logger.error({ err, nodeId }, 'drain pass failed'))
      .finally(() => this.draining.delete(nodeId));
  }

  /**
   * One gateway drives a node's drain: the one whose claim is on the node.
   * The claim passes to another gateway as soon as its owner is dead.
   */
  private async claimDrain(nodeId: number): Promise<boolean> {
    const claimed = await this.db
      .update(nodes)
      .set({ drainOwner: this.opts.ownerId })
      .where(
        and(
          eq(nodes.id, nodeId),
          isNotNull(nodes.drainingSince),
          or(eq(nodes.drainOwner, this.opts.ownerId), ownerDead(nodes.drainOwner)),
        ),
      )
      .returning({ id: nodes.id });
    return claimed.length > 0;
  }

  /** Moves every instance off the node, DRAIN_CONCURRENCY at a time, while the node stays drained. */
  private async drainPass(nodeId: number): Promise<void> {
    if (!(await this.claimDrain(nodeId))) return; // another live gateway drives it
    const onNode = await this.db.select({ id: instances.id }).from(instances).where(eq(instances.nodeId, nodeId)).orderBy(asc(instances.id));
    const previous = this.drains.get(nodeId);
    if (onNode.length === 0) {
      if (previous && !previous.finishedAt) previous.finishedAt = new Date();
      return;
    }
    const progress: DrainProgress =
      previous && !previous.finishedAt ? previous : { startedAt: new Date(), total: onNode.length, moved: 0, failed: [], finishedAt: null };
    this.drains.set(nodeId, progress);
    const passStarted = Date.now();
    const queue = onNode.map((r) => r.id);
    const stillDrained = async () => {
      const [n] = await this.db.select({ since: nodes.drainingSince }).from(nodes).where(eq(nodes.id, nodeId));
      return Boolean(n?.since) && !this.stopped;
    };
    const worker = async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        if (!(await stillDrained())) return;
        try {
          await this.migrate(id);
          progress.moved++;
          progress.failed = progress.failed.filter((f) => f.instanceId !== id);
        } catch (err) {
          if (err instanceof ApiError && err.status === 404) continue; // deleted meanwhile
          const reason = (err as Error).message;
          progress.failed = [...progress.failed.filter((f) => f.instanceId !== id), { instanceId: id, reason }];
        }
      }
    };
    await Promise.all(Array.from({ length: DRAIN_CONCURRENCY }, worker));
    const emptied = (await this.remaining(nodeId)) === 0;
    if (emptied) progress.finishedAt = new Date();
    // Per pass with instances to move: ok when the node is empty after it, failed when some are left (the sweep tries again).
    const result = emptied ? 'ok' : 'failed';
    this.opts.metrics?.drains.inc({ result });
    this.opts.metrics?.drainDuration.observe({ result }, (Date.now() - passStarted) / 1000);
  }
}
