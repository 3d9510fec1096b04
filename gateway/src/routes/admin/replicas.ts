import { Elysia, t } from 'elysia';
import { sql } from 'drizzle-orm';
import type { AppDeps } from '../../http/context';
import { adminSecurity } from '../../http/auth';
import { errorResponses } from '../../http/errors';
import { liveOwners } from '../../claims/owner';
import { leaderOwner } from '../../claims/leader';
import { gatewayReplicas, instances } from '../../db/schema';

const ReplicaView = t.Object({
  replicaId: t.String({ description: 'GATEWAY_REPLICA_ID (or the generated name)' }),
  ownerId: t.Integer({ description: 'the liveness id of this gateway process (claims/owner.ts): new at every start' }),
  workerUrl: t.String({ description: 'WORKER_GATEWAY_URL of the replica' }),
  startedAt: t.Date(),
  leader: t.Boolean({ description: 'whether it leads: runs the control loop, drains and node checks' }),
  workers: t.Integer({ description: 'worker sockets it holds' }),
});

/**
 * The live gateway replicas on this database, read from Postgres: any replica
 * answers the same. Live means holding its liveness lock; the leader is the
 * holder of the leader lock (claims/leader.ts).
 */
export function adminReplicaRoutes({ database, replica }: AppDeps) {
  const { db } = database;
  return new Elysia({ name: 'admin-replicas', prefix: '/admin/replicas', detail: { tags: ['admin'], security: adminSecurity } }).get(
    '',
    async () => {
      const rows = await db
        .select({
          replicaId: gatewayReplicas.replicaId,
          ownerId: gatewayReplicas.ownerId,
          workerUrl: gatewayReplicas.workerUrl,
          startedAt: gatewayReplicas.startedAt,
          leader: sql<boolean>`coalesce(${gatewayReplicas.ownerId} = ${leaderOwner}, false)`,
          workers: sql<number>`(select count(*)::int from ${instances} where ${instances.workerOwner} = ${gatewayReplicas.ownerId})`,
        })
        .from(gatewayReplicas)
        .where(sql`${gatewayReplicas.ownerId} in ${liveOwners}`)
        .orderBy(gatewayReplicas.startedAt);
      const leader = rows.find((r) => r.leader);
      return { self: replica?.id ?? null, leader: leader?.replicaId ?? null, replicas: rows };
    },
    {
      detail: {
        summary: 'The live gateway replicas and which one leads',
        description:
          'Every replica serves the whole API and accepts worker sockets; one at a time leads (a Postgres advisory lock): it runs the control loop, ' +
          'drains and node health checks. `self` is the replica that answered. `leader` is null for the moment between a leader dying and the next taking over (≤ 2 s).',
      },
      response: {
        200: t.Object({ self: t.Union([t.String(), t.Null()]), leader: t.Union([t.String(), t.Null()]), replicas: t.Array(ReplicaView) }),
        ...errorResponses(401),
      },
    },
  );
}
