/**
 * The replicas table (db/schema/replicas.ts): who each gateway process is,
 * for operators (GET /admin/replicas). Liveness and leadership are locks, not
 * rows; a row only names a liveness id.
 */
import { sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { gatewayReplicas } from '../db/schema';
import { liveOwners } from './owner';

/** Records this process; rows of replicas dead for a day go (at most a handful per restart). */
export async function registerReplica(db: Db, replica: { ownerId: number; replicaId: string; workerUrl: string }): Promise<void> {
  await db.insert(gatewayReplicas).values(replica).onConflictDoUpdate({ target: gatewayReplicas.ownerId, set: { replicaId: replica.replicaId, workerUrl: replica.workerUrl, startedAt: sql`now()` } });
  await db.delete(gatewayReplicas).where(sql`${gatewayReplicas.ownerId} not in ${liveOwners} and ${gatewayReplicas.startedAt} < now() - interval '1 day'`);
}
