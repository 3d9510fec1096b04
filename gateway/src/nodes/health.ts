import { cpus, totalmem } from 'node:os';
import { eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { nodes, type Node } from '../db/schema';
import type { EngineRegistry } from '../engines/registry';
import { withTimeout } from '../lib/timeout';
import { LABELS } from '../engines/docker-spec';
import { swarmHealth } from '../engines/swarm';

const CHECK_TIMEOUT_MS = 3000;

export interface NodeHealth {
  status: 'ready' | 'unreachable';
  reason: string | null;
  millicpu: number | null;
  memoryBytes: number | null;
  /** Docker Engine version; null for process nodes. */
  version: string | null;
  /** Running worker containers of this gateway on the node; null for process nodes. */
  workers: number | null;
}

const UNREACHABLE = { status: 'unreachable', millicpu: null, memoryBytes: null, version: null, workers: null } as const;

/** Reads one node: the gateway's own machine for `process`, the daemon's info for `docker`, the swarm's nodes for `swarm`. */
export async function checkNode(node: Node, engines: EngineRegistry): Promise<NodeHealth> {
  if (node.engine === 'process') {
    return { status: 'ready', reason: null, millicpu: cpus().length * 1000, memoryBytes: totalmem(), version: null, workers: null };
  }
  if (node.engine !== 'docker' && node.engine !== 'swarm') return { ...UNREACHABLE, reason: `engine ${node.engine} is not implemented yet` };
  try {
    // A swarm node: a manager that answers, with ready nodes its labels allow (capacity: their sum).
    if (node.engine === 'swarm') return await withTimeout(swarmHealth(engines.client(node), node, engines.gatewayId), CHECK_TIMEOUT_MS);
    const docker = engines.client(node);
    const [info, workers] = await withTimeout(
      Promise.all([docker.info(), docker.listContainers({ filters: { label: [`${LABELS.gateway}=${engines.gatewayId}`], status: ['running'] } })]),
      CHECK_TIMEOUT_MS,
    );
    return {
      status: 'ready',
      reason: null,
      millicpu: info.NCPU * 1000,
      memoryBytes: info.MemTotal,
      version: info.ServerVersion ?? null,
      workers: workers.filter((c) => c.Labels[LABELS.node] === node.name).length,
    };
  } catch (err) {
    return { ...UNREACHABLE, reason: (err as Error).message };
  }
}

/** Checks every node and records status, reason, totals and when it was last seen. */
export async function checkNodes(db: Db, engines: EngineRegistry): Promise<Map<string, NodeHealth>> {
  const all = await db.select().from(nodes);
  const results = new Map<string, NodeHealth>();
  await Promise.all(
    all.map(async (node) => {
      const h = await checkNode(node, engines);
      results.set(node.name, h);
      await db
        .update(nodes)
        .set({
          status: h.status,
          statusReason: h.reason,
          ...(h.status === 'ready' && {
            reportedMillicpu: h.millicpu,
            reportedMemoryBytes: h.memoryBytes,
            reportedVersion: h.version,
            reportedWorkers: h.workers,
            lastSeenAt: sql`now()`,
          }),
        })
        .where(eq(nodes.id, node.id));
    }),
  );
  return results;
}
