import type { GatewayMetrics } from '../metrics/metrics';
import type { WorkerUsage } from '../../../workers/protocol/frames';

/** Where a connected worker runs: the labels its usage is counted under. */
export interface WorkerPlace {
  node: string;
  provider: string;
}

interface Reporter extends WorkerPlace {
  /** The latest report on this connection; undefined until the first one. */
  last?: WorkerUsage;
}

/**
 * The resources the workers connected to this replica report in their pings
 * (workers/protocol/README.md), turned into metrics:
 * - `wgs_worker_memory_rss_bytes{node, provider}`: the sum of the latest RSS
 *   of each connected worker; a worker stops counting when it disconnects.
 * - `wgs_worker_cpu_seconds_total{node, provider}`: the CPU time the workers
 *   used between two reports on one connection. The first report of a
 *   connection is the baseline (the gateway cannot tell a fresh worker from
 *   one that reconnects after a gateway restart), and a report lower than
 *   the previous one (a restarted process) is a new baseline: the counter
 *   never goes down and never counts a worker's past twice.
 * - with `perInstance` (METRICS_PER_INSTANCE=true) the same per instance,
 *   `wgs_instance_worker_*{instance, node, provider}`, removed when the
 *   worker disconnects (and so when its instance is deleted).
 * Held in memory, for this replica's connections only.
 */
export class WorkerUsageMetrics {
  private readonly workers = new Map<number, Reporter>();
  /** Per node and provider: the summed RSS and how many workers it sums. */
  private readonly memory = new Map<string, { node: string; provider: string; bytes: number; workers: number }>();

  constructor(
    private readonly metrics: GatewayMetrics,
    private readonly opts: { perInstance: boolean },
  ) {}

  /** A worker connected for the instance (a new connection: a new baseline; what an earlier one reported no longer counts). */
  connected(instanceId: number, place: WorkerPlace): void {
    this.disconnected(instanceId);
    this.workers.set(instanceId, { node: place.node, provider: place.provider });
  }

  /** A ping's usage from the instance's current connection. */
  report(instanceId: number, usage: WorkerUsage): void {
    const worker = this.workers.get(instanceId);
    if (!worker) return;
    const labels = { node: worker.node, provider: worker.provider };
    const instance = { instance: String(instanceId), ...labels };
    const previous = worker.last;
    worker.last = usage;

    const cpu = previous && usage.cpuSeconds > previous.cpuSeconds ? usage.cpuSeconds - previous.cpuSeconds : 0;
    this.metrics.workerCpu.inc(labels, cpu);
    if (this.opts.perInstance) this.metrics.instanceCpu.inc(instance, cpu);

    const key = `${worker.node}\u0000${worker.provider}`;
    const sum = this.memory.get(key) ?? { ...labels, bytes: 0, workers: 0 };
    sum.bytes += usage.rssBytes - (previous?.rssBytes ?? 0);
    if (!previous) sum.workers += 1;
    this.memory.set(key, sum);
    this.metrics.workerMemory.set(labels, sum.bytes);
    if (this.opts.perInstance) this.metrics.instanceMemory.set(instance, usage.rssBytes);
  }

  /** The instance's worker is gone from this replica: it stops counting and its own series go. */
  disconnected(instanceId: number): void {
    const worker = this.workers.get(instanceId);
    if (!worker) return;
    this.workers.delete(instanceId);
    if (!worker.last) return;
    const labels = { node: worker.node, provider: worker.provider };
    const key = `${worker.node}\u0000${worker.provider}`;
    const sum = this.memory.get(key);
    if (sum) {
      sum.bytes -= worker.last.rssBytes;
      sum.workers -= 1;
      if (sum.workers > 0) {
        this.metrics.workerMemory.set(labels, sum.bytes);
      } else {
        this.memory.delete(key);
        this.metrics.workerMemory.remove(labels);
      }
    }
    if (this.opts.perInstance) {
      const instance = { instance: String(instanceId), ...labels };
      this.metrics.instanceMemory.remove(instance);
      this.metrics.instanceCpu.remove(instance);
    }
  }
}
