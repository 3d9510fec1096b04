/** Reading a set of gateway replicas on one database, for tests and benches. */
import type { Sql } from 'postgres';
import { gatewayApi, type GatewayProcess } from './gateway-process';

export interface ReplicasView {
  self: string;
  leader: string | null;
  replicas: { replicaId: string; leader: boolean; workers: number }[];
}

/** GET /admin/replicas of one replica: itself, the leader, the live replicas. */
export async function replicasView(g: Pick<GatewayProcess, 'url'>): Promise<ReplicasView> {
  return (await gatewayApi(g, 'GET', '/admin/replicas')).body as ReplicasView;
}

/** The replica (GATEWAY_REPLICA_ID) whose live process holds the instance's worker socket, from the instance row. */
export async function workerHolder(sql: Sql, instanceId: number): Promise<string | undefined> {
  const [row] = await sql`select r.replica_id from instances i join gateway_replicas r on r.owner_id = i.worker_owner where i.id = ${instanceId}`;
  return row?.replica_id as string | undefined;
}
