import { EventEmitter } from 'node:events';
import { eq } from 'drizzle-orm';
import type { Db } from '../db/client';
import { instances, type Instance } from '../db/schema';
import type { SessionState } from '../../../workers/protocol/frames';
import { recordState, recordStatus, type InstanceStatus } from './lifecycle';

/** Longest a move by another replica holds an instance's commands here without its "move over" (timeout + rollback). */
const REMOTE_MOVE_MS = 90_000;

/**
 * What this gateway process knows about its instances beyond the database:
 * the session state each connected worker last reported, which instances a
 * migration holds, and a signal at every status, state or QR change. The
 * worker lifecycle (runtime.ts) and the worker frames (worker-frames.ts)
 * share it.
 */
export class InstanceSessions {
  private readonly changes = new EventEmitter();
  /** Last session state each connected worker reported. */
  private readonly reported = new Map<number, SessionState>();
  /**
   * Instances a migration is moving: their status stays `migrating` (the
   * migration writes it), commands wait in the queue, and the control loop
   * leaves them alone.
   */
  private readonly moving = new Set<number>();
  /**
   * Instances another replica is moving (NOTIFY `wgs_moves`), with when the
   * mark lapses: a lost "move over" must not hold an instance's commands for
   * ever, so a mark lasts at most REMOTE_MOVE_MS.
   */
  private readonly movingElsewhere = new Map<number, number>();

  constructor(private readonly db: Db) {
    this.changes.setMaxListeners(0);
  }

  stateOf(instanceId: number): SessionState | undefined {
    return this.reported.get(instanceId);
  }

  /** A worker reported its session: stored, and waiters woken. */
  async report(instanceId: number, state: SessionState, reason: string | undefined): Promise<void> {
    this.reported.set(instanceId, state);
    await recordState(this.db, instanceId, state, reason);
    this.changed(instanceId);
  }

  /** No worker speaks for the instance any more (its connection or process is gone). */
  drop(instanceId: number): void {
    this.reported.delete(instanceId);
  }

  /** Until a new worker reports, the session state is unknown (`starting`; `paired` is kept). */
  async forget(instanceId: number, reason: string): Promise<void> {
    this.reported.delete(instanceId);
    await recordState(this.db, instanceId, 'starting', reason);
    this.changed(instanceId);
  }

  beginMove(instanceId: number): void {
    this.moving.add(instanceId);
  }

  endMove(instanceId: number): void {
    this.moving.delete(instanceId);
  }

  isMoving(instanceId: number): boolean {
    return this.moving.has(instanceId) || this.isMovingElsewhere(instanceId);
  }

  /** Whether a migration on this process holds the instance. */
  isMovingHere(instanceId: number): boolean {
    return this.moving.has(instanceId);
  }

  /** Another replica began (`true`) or ended a move of the instance. */
  remoteMove(instanceId: number, moving: boolean): void {
    if (moving) this.movingElsewhere.set(instanceId, Date.now() + REMOTE_MOVE_MS);
    else this.movingElsewhere.delete(instanceId);
  }

  private isMovingElsewhere(instanceId: number): boolean {
    const until = this.movingElsewhere.get(instanceId);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.movingElsewhere.delete(instanceId);
    return false;
  }

  /** Records a status and wakes waiters. */
  async recordStatus(instanceId: number, status: InstanceStatus, reason: string): Promise<void> {
    await recordStatus(this.db, instanceId, status, reason);
    this.changed(instanceId);
  }

  /** The runtime's own status changes: skipped while a migration, which writes its own, holds the instance. */
  async setStatus(instanceId: number, status: InstanceStatus, reason: string): Promise<void> {
    if (!this.isMoving(instanceId)) await this.recordStatus(instanceId, status, reason);
  }

  changed(instanceId: number): void {
    this.changes.emit('change', instanceId);
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
        clearInterval(poll);
        this.changes.off('change', check);
        resolve(row);
      };
      const check = (id: number) => {
        // A failed read (the database away for a moment) waits for the next change or the deadline.
        if (id === instanceId) void read().then((row) => (!row || done(row)) && finish(row), () => {});
      };
      const timer = setTimeout(() => void read().then(finish, () => finish(undefined)), timeoutMs);
      // Changes made by other replicas wake this one through their events (cluster.ts); a lost wake-up is caught here.
      const poll = setInterval(() => check(instanceId), 1000);
      this.changes.on('change', check);
      check(instanceId);
    });
  }
}
