import { and, eq, ne, or, isNull, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { events, instances, nodes, type Instance } from '../db/schema';
import type { SessionState } from '../../../workers/protocol/frames';
import { liveOwners, ownerDead } from '../claims/owner';

export type InstanceStatus = Instance['status'];

/**
 * Records a change of the worker's lifecycle `status`, with reason and time,
 * and an `instance.status` event. Nothing is written when nothing changed.
 */
export async function recordStatus(db: Db, instanceId: number, status: InstanceStatus, reason: string): Promise<boolean> {
  return db.transaction(async (tx) => {
    const changed = await tx
      .update(instances)
      .set({ status, statusReason: reason, statusChangedAt: sql`now()`, updatedAt: sql`now()` })
      .where(and(eq(instances.id, instanceId), or(ne(instances.status, status), ne(instances.statusReason, reason), isNull(instances.statusReason))))
      .returning({ state: instances.state, stateReason: instances.stateReason });
    if (changed.length === 0) return false;
    await tx.insert(events).values({
      instanceId,
      type: 'instance.status',
      data: { status, statusReason: reason, state: changed[0]!.state, stateReason: changed[0]!.stateReason },
    });
    return true;
  });
}

/**
 * Records the WhatsApp session `state` a worker reports. `connected` marks the
 * number paired; `qr` and `logged_out` mean the session is gone.
 */
export async function recordState(db: Db, instanceId: number, state: SessionState, reason: string | undefined): Promise<boolean> {
  const paired = state === 'connected' ? true : state === 'qr' || state === 'logged_out' ? false : undefined;
  return db.transaction(async (tx) => {
    const changed = await tx
      .update(instances)
      .set({
        state,
        stateReason: reason ?? null,
        stateChangedAt: sql`now()`,
        updatedAt: sql`now()`,
        ...(paired !== undefined && { paired }),
        ...(state !== 'qr' && { qrCode: null, qrExpiresAt: null }),
      })
      .where(and(eq(instances.id, instanceId), or(ne(instances.state, state), sql`${instances.stateReason} is distinct from ${reason ?? null}`)))
      .returning({ status: instances.status, statusReason: instances.statusReason });
    if (changed.length === 0) return false;
    await tx.insert(events).values({
      instanceId,
      type: 'instance.status',
      data: { status: changed[0]!.status, statusReason: changed[0]!.statusReason, state, stateReason: reason ?? null },
    });
    return true;
  });
}

/**
 * At gateway start, what the database says about workers no live replica
 * holds is stale: process workers died with the previous gateway, containers
 * are about to be replaced or to dial again. Every such instance that
 * should run goes to `starting` (status and session) in one statement, with
 * its `instance.status` event, before the API answers anyone. Instances whose
 * worker is held or run by another live gateway replica are left alone.
 */
export async function markWorkersStarting(db: Db, reason: string): Promise<number> {
  const rows = await db.execute(sql`
    with changed as (
      update ${instances} i set
        status = 'starting', status_reason = ${reason}, status_changed_at = now(),
        state = 'starting', state_reason = 'worker starting', state_changed_at = now(),
        qr_code = null, qr_expires_at = null, updated_at = now()
      from ${nodes} n
      where n.id = i.node_id and n.engine in ('process', 'docker', 'swarm') and i.desired_state = 'running' and i.status <> 'error'
        and not coalesce(i.worker_owner in ${liveOwners}, false) and not coalesce(i.started_by in ${liveOwners}, false)
      returning i.id
    )
    insert into ${events} (instance_id, type, data)
    select id, 'instance.status',
           jsonb_build_object('status', 'starting', 'statusReason', ${reason}::text, 'state', 'starting', 'stateReason', 'worker starting')
    from changed
    returning instance_id`);
  return rows.length;
}

/**
 * A move whose gateway process died (its owner's liveness lock is free,
 * claims/owner.ts) died with it. The instance stays where its row says (the
 * control loop or boot starts it there), its reserved target is released, and
 * its status is `starting` (or `stopped`, if it should not run) rather than
 * `migrating` forever. Moves of live gateways are left alone. Returns the
 * instances whose moves were abandoned.
 */
export async function abandonMigrations(db: Db): Promise<number[]> {
  const rows = await db.execute<{ id: number }>(sql`
    update ${instances} set
      target_node_id = null,
      move_owner = null,
      status = case when status <> 'migrating' then status when desired_state = 'running' then 'starting' else 'stopped' end,
      status_reason = case when status = 'migrating' then 'the gateway running the migration stopped; the move was abandoned' else status_reason end,
      updated_at = now()
    where (target_node_id is not null or status = 'migrating') and ${ownerDead(instances.moveOwner)}
    returning id`);
  return rows.map((r) => Number(r.id));
}
