import { sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client';
import { instances, nodes } from '../db/schema';
import { parseCpu, parseMemory } from '../lib/resources';
import { place, type NodeLoad, type Placement, type PlacementRequest } from './placement';

/** An instance's stored limits ("0.5" cores, "512m") as a placement request; absent ones are not asked for. */
export function limitsOf(limits: { cpuLimit: string | null; memoryLimit: string | null }): { millicpu?: number; memoryBytes?: number } {
  return {
    millicpu: limits.cpuLimit ? (parseCpu(Number(limits.cpuLimit)) ?? undefined) : undefined,
    memoryBytes: limits.memoryLimit ? (parseMemory(limits.memoryLimit) ?? undefined) : undefined,
  };
}

/** Every node with the sum of the limits of the instances placed on it. */
export async function nodeLoads(db: Db | Tx): Promise<NodeLoad[]> {
  const [allNodes, placed] = await Promise.all([
    db.select().from(nodes),
    db
      .select({ nodeId: instances.nodeId, targetNodeId: instances.targetNodeId, cpuLimit: instances.cpuLimit, memoryLimit: instances.memoryLimit })
      .from(instances),
  ]);
  const loads = new Map<number, NodeLoad>(
    allNodes.map((n) => [
      n.id,
      {
        id: n.id,
        name: n.name,
        engine: n.engine,
        status: n.status,
        draining: n.drainingSince !== null,
        labels: n.labels,
        // Configured capacity wins; else what the node reported; else unlimited.
        capacity: { millicpu: n.capacityMillicpu ?? n.reportedMillicpu, memoryBytes: n.capacityMemoryBytes ?? n.reportedMemoryBytes },
        used: { millicpu: 0, memoryBytes: 0, instances: 0 },
      },
    ]),
  );
  for (const p of placed) {
    // A moving instance holds its place on both nodes until the move ends.
    const on = new Set([p.nodeId, p.targetNodeId].filter((id) => id !== null));
    const { millicpu = 0, memoryBytes = 0 } = limitsOf(p);
    for (const nodeId of on) {
      const load = loads.get(nodeId);
      if (!load) continue;
      load.used.instances++;
      load.used.millicpu += millicpu;
      load.used.memoryBytes += memoryBytes;
    }
  }
  return [...loads.values()];
}

/** pg_advisory_xact_lock key for placement: "wgs" and 2. */
const PLACEMENT_LOCK = 2003268354;

/**
 * Places an instance and records where it went in one transaction, under a
 * cluster-wide lock: two creates racing for a node's last slot (in one
 * gateway or several) are decided one after the other, so capacity is never
 * oversold. `assign` writes the instance's node; a failed placement rolls
 * nothing back because nothing was written.
 */
export async function placeAndAssign<T>(
  db: Db,
  req: PlacementRequest,
  overcommit: number,
  assign: (tx: Tx, node: NodeLoad) => Promise<T>,
): Promise<{ ok: true; node: NodeLoad; value: T } | Extract<Placement, { ok: false }>> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${PLACEMENT_LOCK})`);
    const placement = place(await nodeLoads(tx), req, overcommit);
    if (!placement.ok) return placement;
    return { ok: true as const, node: placement.node, value: await assign(tx, placement.node) };
  });
}
