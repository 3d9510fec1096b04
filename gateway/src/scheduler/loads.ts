import type { Db } from '../db/client';
import { instances, nodes } from '../db/schema';
import { parseCpu, parseMemory } from '../lib/resources';
import type { NodeLoad } from './placement';

/** Every node with the sum of the limits of the instances placed on it. */
export async function nodeLoads(db: Db): Promise<NodeLoad[]> {
  const [allNodes, placed] = await Promise.all([
    db.select().from(nodes),
    db.select({ nodeId: instances.nodeId, cpu: instances.cpuLimit, memory: instances.memoryLimit }).from(instances),
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
    load.used.instances++;
    load.used.millicpu += p.cpu ? (parseCpu(Number(p.cpu)) ?? 0) : 0;
    load.used.memoryBytes += p.memory ? (parseMemory(p.memory) ?? 0) : 0;
  }
  return [...loads.values()];
}
