import { cpus, totalmem } from 'node:os';
import { eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { nodes, type Node } from '../db/schema';
import type { EngineRegistry } from '../engines/registry';
import { withTimeout } from '../lib/timeout';

const CHECK_TIMEOUT_MS = 3000;

export interface NodeHealth {
  status: 'ready' | 'unreachable';
  reason: string | null;
  millicpu: number | null;
  memoryBytes: number | null;
}

/** Reads one node: the gateway's own machine for `process`, the daemon's info for `docker`. */
export async function checkNode(node: Node, engines: EngineRegistry): Promise<NodeHealth> {
  if (node.engine === 'process') {
    return { status: 'ready', reason: null, millicpu: cpus().length * 1000, memoryBytes: totalmem() };
  }
  if (node.engine !== 'docker') return { status: 'unreachable', reason: `engine ${node.engine} is not implemented yet`, millicpu: null, memoryBytes: null };
  try {
    const info = await withTimeout(engines.dockerInfo(node), CHECK_TIMEOUT_MS);
    return { status: 'ready', reason: null, millicpu: info.NCPU * 1000, memoryBytes: info.MemTotal };
  } catch (err) {
    return { status: 'unreachable', reason: (err as Error).message, millicpu: null, memoryBytes: null };
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
          ...(h.status === 'ready' && { reportedMillicpu: h.millicpu, reportedMemoryBytes: h.memoryBytes, lastSeenAt: sql`now()` }),
        })
        .where(eq(nodes.id, node.id));
    }),
  );
  return results;
}
