/**
 * Fleet gauges: what the database says about the whole fleet (instances,
 * queues, outbox, nodes, sizes), read once per scrape. Every replica reports
 * the same values (aggregate them with max(), not sum()).
 *
 * Each collector issues exactly one query (`query` below is the only way they
 * reach the database; fleet.test.ts counts), resets its gauges once the rows
 * are in and sets what they hold, so a label set whose rows are gone
 * disappears. A collector whose query fails resets its gauges too: an absent
 * series says "unknown", a stale one would lie.
 */
import { statfs } from 'node:fs/promises';
import { sql, type SQL } from 'drizzle-orm';
import type { Database } from '../db/client';
import { limitsOf } from '../scheduler/loads';
import type { GatewayMetrics } from './metrics';

/** Runs one statement and returns its rows. */
export type Query = (statement: SQL) => Promise<Record<string, unknown>[]>;

/** Every collector statement starts with this comment: the pool gauge leaves the scrape's own queries out. */
export const FLEET_QUERY_TAG = '/* wgs fleet metrics */';

/** Tables that grow with traffic: their on-disk size (indexes and TOAST included). */
export const SIZED_TABLES = ['events', 'webhook_deliveries', 'media', 'messages', 'commands'] as const;

/**
 * Sizes are read at most this often, in the background: pg_database_size stats every file of the database, and
 * each instance's session schema adds tables (measured: 105 ms with 20,000 tables, docs/architecture.md).
 */
export const STORAGE_REFRESH_MS = 60_000;

export interface FleetOptions {
  /** How often sizes are read again (STORAGE_REFRESH_MS). */
  storageRefreshMs?: number;
  /** DATA_DIR when the gateway runs the embedded Postgres there: its free space is reported. */
  dataDir?: string;
  /** This replica's pool connections in pg_stat_activity (Database.applicationName). */
  applicationName?: string;
}

/** The collectors by name, for the given query function. */
export function fleetCollectors(metrics: GatewayMetrics, query: Query, opts: FleetOptions = {}): Record<string, () => Promise<void>> {
  /** One query; on success `fill` sets the (reset) gauges, on failure they are reset and the error goes on. */
  const collect =
    (gauges: { reset(): void }[], statement: SQL, fill: (rows: Record<string, unknown>[]) => void) =>
    async (): Promise<void> => {
      let rows: Record<string, unknown>[];
      try {
        rows = await query(statement);
      } catch (err) {
        for (const g of gauges) g.reset();
        throw err;
      }
      for (const g of gauges) g.reset();
      fill(rows);
    };

  const collectors: Record<string, () => Promise<void>> = {
    instances: collect(
      [metrics.instances],
      sql`select i.provider, coalesce(n.name, 'none') as node, i.status, i.state, count(*)::int as n
          from instances i left join nodes n on n.id = i.node_id
          group by 1, 2, 3, 4`,
      (rows) => {
        for (const r of rows) metrics.instances.set({ provider: str(r.provider), node: str(r.node), status: str(r.status), state: str(r.state) }, num(r.n));
      },
    ),

    // Both from the partial index commands_pending_idx (name, created_at) where status = 'pending'.
    commands: collect(
      [metrics.commandsPending, metrics.commandsOldestPending],
      sql`select name, count(*)::int as n, extract(epoch from now() - min(created_at))::float8 as oldest
          from commands where status = 'pending' group by name`,
      (rows) => {
        let oldest = 0;
        for (const r of rows) {
          metrics.commandsPending.set({ name: str(r.name) }, num(r.n));
          oldest = Math.max(oldest, num(r.oldest));
        }
        metrics.commandsOldestPending.set(oldest);
      },
    ),

    // The outbox from the partial index webhook_deliveries_pending_idx (created_at) where status = 'pending'.
    outbox: collect(
      [metrics.outboxPending, metrics.outboxOldestPending, metrics.subscriptionsDisabled],
      sql`select count(*)::int as pending,
                 coalesce(extract(epoch from now() - min(created_at)), 0)::float8 as oldest,
                 (select count(*)::int from webhooks where not enabled) as disabled
          from webhook_deliveries where status = 'pending'`,
      (rows) => {
        const r = rows[0] ?? {};
        metrics.outboxPending.set(num(r.pending));
        metrics.outboxOldestPending.set(num(r.oldest));
        metrics.subscriptionsDisabled.set(num(r.disabled));
      },
    ),

    // Reservations as the scheduler counts them (scheduler/loads.ts nodeLoads): an instance's limits count on its
    // node and, while it moves, on its target too; limits are parsed by the same limitsOf. Grouped by the limit
    // strings, so the rows are a few per node whatever the number of instances.
    nodes: collect(
      [metrics.nodeUp, metrics.nodeCapacityCpu, metrics.nodeCapacityMemory, metrics.nodeReservedCpu, metrics.nodeReservedMemory],
      sql`with placed as (
            select node_id as node, cpu_limit, memory_limit from instances where node_id is not null
            union all
            select target_node_id, cpu_limit, memory_limit from instances
            where target_node_id is not null and target_node_id is distinct from node_id
          )
          select n.name, n.engine, n.status, n.draining_since is not null as draining,
                 coalesce(n.capacity_millicpu, n.reported_millicpu) as millicpu,
                 coalesce(n.capacity_memory_bytes, n.reported_memory_bytes)::float8 as memory,
                 p.cpu_limit, p.memory_limit, count(p.node)::int as placed
          from nodes n left join placed p on p.node = n.id
          group by n.id, p.cpu_limit, p.memory_limit`,
      (rows) => {
        const reserved = new Map<string, { millicpu: number; memoryBytes: number }>();
        for (const r of rows) {
          const node = str(r.name);
          if (!reserved.has(node)) {
            reserved.set(node, { millicpu: 0, memoryBytes: 0 });
            // Up: the last health check reached it (ready) and it takes instances (not drained).
            const draining = r.draining === true;
            metrics.nodeUp.set({ node, engine: str(r.engine), status: draining ? 'draining' : str(r.status) }, r.status === 'ready' && !draining ? 1 : 0);
            // No capacity configured or reported yet: no series (the scheduler treats it as unlimited).
            if (r.millicpu !== null) metrics.nodeCapacityCpu.set({ node }, num(r.millicpu) / 1000);
            if (r.memory !== null) metrics.nodeCapacityMemory.set({ node }, num(r.memory));
          }
          const placed = num(r.placed);
          if (placed === 0) continue;
          const { millicpu = 0, memoryBytes = 0 } = limitsOf({ cpuLimit: (r.cpu_limit as string | null) ?? null, memoryLimit: (r.memory_limit as string | null) ?? null });
          const sum = reserved.get(node)!;
          sum.millicpu += millicpu * placed;
          sum.memoryBytes += memoryBytes * placed;
        }
        for (const [node, sum] of reserved) {
          metrics.nodeReservedCpu.set({ node }, sum.millicpu / 1000);
          metrics.nodeReservedMemory.set({ node }, sum.memoryBytes);
        }
      },
    ),

    storage: refreshedEvery(opts.storageRefreshMs ?? STORAGE_REFRESH_MS, collect(
      [metrics.tableSize, metrics.databaseSize],
      sql`select t as table, coalesce(pg_total_relation_size(to_regclass(t)), 0)::float8 as bytes
          from unnest(${sql.raw(`array[${SIZED_TABLES.map((t) => `'${t}'`).join(', ')}]::text[]`)}) as t
          union all
          select null, pg_database_size(current_database())::float8`,
      (rows) => {
        for (const r of rows) {
          if (r.table === null) metrics.databaseSize.set(num(r.bytes));
          else metrics.tableSize.set({ table: str(r.table) }, num(r.bytes));
        }
      },
    )),
  };

  // postgres.js 3.4.9 keeps its pool's queues private (no statistics API): read the server's view of this
  // replica's connections, told apart by their unique application_name. The scrape's own queries (this one
  // and the other collectors', running side by side) hold connections that count as open, not as in use.
  if (opts.applicationName) {
    collectors.pool = collect(
      [metrics.dbPoolSize, metrics.dbPoolInUse],
      sql`select count(*)::int as open,
                 (count(*) filter (where state is distinct from 'idle' and pid <> pg_backend_pid()
                                   and not (state = 'active' and starts_with(query, ${FLEET_QUERY_TAG}))))::int as in_use
          from pg_stat_activity where application_name = ${opts.applicationName}`,
      (rows) => {
        metrics.dbPoolSize.set(num(rows[0]?.open));
        metrics.dbPoolInUse.set(num(rows[0]?.in_use));
      },
    );
  }

  // No query: the filesystem of the embedded Postgres' data directory.
  if (opts.dataDir) {
    const dir = opts.dataDir;
    collectors.dataDir = async () => {
      try {
        const s = await statfs(dir);
        metrics.dataDirFree.set(s.bavail * s.bsize);
      } catch (err) {
        metrics.dataDirFree.reset();
        throw err;
      }
    };
  }
  return collectors;
}

/** Adds the fleet collectors to the gateway's metrics: they run at every scrape of GET /metrics. */
export function registerFleetCollectors(metrics: GatewayMetrics, database: Pick<Database, 'db' | 'applicationName'>, opts: { dataDir?: string } = {}): void {
  const query: Query = async (statement) => [...(await database.db.execute<Record<string, unknown>>(sql`${sql.raw(FLEET_QUERY_TAG)} ${statement}`))];
  const collectors = fleetCollectors(metrics, query, { ...opts, ...(database.applicationName && { applicationName: database.applicationName }) });
  for (const collect of Object.values(collectors)) metrics.addCollector(collect);
  // A gauge nothing fills would read 0 (free bytes, open connections): leave it out instead.
  if (!collectors.dataDir) metrics.registry.removeSingleMetric('wgs_data_dir_free_bytes');
  if (!collectors.pool) for (const name of ['wgs_db_pool_connections', 'wgs_db_pool_connections_in_use']) metrics.registry.removeSingleMetric(name);
}

/**
 * A collector run at most every `everyMs`: the first scrape waits for it, later ones serve the last values
 * while a stale one refreshes in the background (its failure is reported at the next scrape).
 */
function refreshedEvery(everyMs: number, collect: () => Promise<void>): () => Promise<void> {
  let doneAt: number | undefined;
  let running: Promise<void> | undefined;
  let failed: unknown;
  return async () => {
    if (failed !== undefined) {
      const err = failed;
      failed = undefined;
      throw err;
    }
    if (!running && (doneAt === undefined || Date.now() - doneAt >= everyMs)) {
      running = collect()
        .then(() => {
          doneAt = Date.now();
        })
        .catch((err) => {
          failed = err;
        })
        .finally(() => {
          running = undefined;
        });
    }
    if (doneAt === undefined) {
      await running;
      if (failed !== undefined) {
        const err = failed;
        failed = undefined;
        throw err;
      }
    }
  };
}

function str(v: unknown): string {
  return v === null || v === undefined ? '' : String(v);
}

function num(v: unknown): number {
  const n = Number(v);
  return Number.isFinite(n) ? n : 0;
}
