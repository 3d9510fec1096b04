/**
 * Where an instance goes: a pure function over the nodes' capacity and what
 * is already placed on them, so it can be tested without a database.
 */

export interface NodeLoad {
  id: number;
  name: string;
  engine: 'process' | 'docker' | 'swarm';
  status: 'unknown' | 'ready' | 'unreachable';
  /** A drained node takes nothing new. */
  draining: boolean;
  labels: Record<string, string>;
  /** Configured or reported capacity; null = not limited in that dimension. */
  capacity: { millicpu: number | null; memoryBytes: number | null };
  /** Sum of the limits of the instances placed on the node. */
  used: { millicpu: number; memoryBytes: number; instances: number };
}

export interface PlacementRequest {
  millicpu?: number;
  memoryBytes?: number;
  /** An explicit node name: only that node is considered. */
  node?: string;
  /** Every label must be on the node. */
  labels?: Record<string, string>;
  /** A node that must not be chosen (the one an instance moves away from). */
  excludeNodeId?: number;
}

export type Placement = { ok: true; node: NodeLoad } | { ok: false; reason: string; unknownNode?: boolean };

/**
 * The node where the request fits under capacity × overcommit, least loaded
 * first (the fullest dimension after placement decides, then fewer
 * instances, then the older node). Unreachable and draining nodes never qualify.
 */
export function place(nodes: NodeLoad[], req: PlacementRequest, overcommit = 1): Placement {
  let candidates = nodes.filter((n) => n.id !== req.excludeNodeId);
  if (req.node !== undefined) {
    const named = nodes.find((n) => n.name === req.node);
    if (!named) return { ok: false, reason: `no node named ${req.node}`, unknownNode: true };
    if (named.id === req.excludeNodeId) return { ok: false, reason: `the instance is already on ${req.node}` };
    candidates = [named];
  }
  const wanted = Object.entries(req.labels ?? {});
  const why: string[] = [];
  const fitting: { node: NodeLoad; load: number }[] = [];
  for (const node of candidates) {
    if (node.status === 'unreachable') {
      why.push(`${node.name}: unreachable`);
      continue;
    }
    if (node.draining) {
      why.push(`${node.name}: draining`);
      continue;
    }
    const missing = wanted.find(([k, v]) => node.labels[k] !== v);
    if (missing) {
      why.push(`${node.name}: lacks label ${missing[0]}=${missing[1]}`);
      continue;
    }
    const cpu = node.used.millicpu + (req.millicpu ?? 0);
    const mem = node.used.memoryBytes + (req.memoryBytes ?? 0);
    const cpuCap = node.capacity.millicpu === null ? null : node.capacity.millicpu * overcommit;
    const memCap = node.capacity.memoryBytes === null ? null : node.capacity.memoryBytes * overcommit;
    if (cpuCap !== null && cpu > cpuCap) {
      why.push(`${node.name}: cpu ${cpu / 1000} of ${cpuCap / 1000} cores`);
      continue;
    }
    if (memCap !== null && mem > memCap) {
      why.push(`${node.name}: memory ${mem} of ${memCap} bytes`);
      continue;
    }
    fitting.push({ node, load: Math.max(cpuCap ? cpu / cpuCap : 0, memCap ? mem / memCap : 0) });
  }
  fitting.sort((a, b) => a.load - b.load || a.node.used.instances - b.node.used.instances || a.node.id - b.node.id);
  const best = fitting[0];
  if (best) return { ok: true, node: best.node };
  return { ok: false, reason: why.length ? `no node fits: ${why.join('; ')}` : req.excludeNodeId === undefined ? 'no nodes registered' : 'no other node registered' };
}
