import type { Db } from '../db/client';
import { instances, nodes } from '../db/schema';
import { parseCpu, parseMemory } from '../lib/resources';
import type { NodeLoad } from './placement';

/** An instance's stored limits ("0.5" cores, "512m") as a placement request; absent ones are not asked for. */
export function limitsOf(limits: { cpuLimit: string | null; memoryLimit: string | null }): { millicpu?: number; memoryBytes?: number } {
  return {
    millicpu: limits.cpuLimit ? (parseCpu(Number(limits.cpuLimit)) ?? undefined) : undefined,
    memoryBytes: limits.memoryLimit ? (parseMemory(limits.memoryLimit) ?? undefined) : undefined,
  };
}

/** Every node with the sum of the limits of the instances placed on it. */
export async function nodeLoads(db: Db): Promise<NodeLoad[]> {
  const [allNodes, placed] = await Promise.all([
    db.select().from(nodes),
    db.select({ nodeId: instances.nodeId, cpuLimit: instances.cpuLimit, memoryLimit: instances.memoryLimit }).from(instances),
  ]);
  const loads = new Map<number, NodeLoad>(
    allNodes.map((n) => [
      n.id,
      {
        id: n.id,
        name: n.name,
        status: n.status,
        labels: n.labels,
        // Configured capacity wins; else what the node reported; else unlimited.
        capacity: { millicpu: n.capacityMillicpu ?? n.reportedMillicpu, memoryBytes: n.capacityMemoryBytes ?? n.reportedMemoryBytes },
        used: { millicpu: 0, memoryBytes: 0, instances: 0 },
      },
    ]),
  );
  for (const p of placed) {
    const load = p.nodeId === null ? undefined : loads.get(p.nodeId);
    if (!load) continue;
    const { millicpu = 0, memoryBytes = 0 } = limitsOf(p);
    load.used.instances++;
    load.used.millicpu += millicpu;
    load.used.memoryBytes += memoryBytes;
  }
  return [...loads.values()];
}
