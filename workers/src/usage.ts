import type { WorkerUsage } from '../protocol/frames';

/**
 * This process's resident memory now and its user + system CPU time since it
 * started, for the `usage` of the worker's pings. The same calls work on Bun
 * and on Node.
 */
export function processUsage(): WorkerUsage {
  const cpu = process.cpuUsage(); // microseconds
  return { rssBytes: Math.max(0, Math.round(process.memoryUsage.rss())), cpuSeconds: Math.max(0, (cpu.user + cpu.system) / 1e6) };
}
