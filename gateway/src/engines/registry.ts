import Dockerode from 'dockerode';
import { eq } from 'drizzle-orm';
import type { Db } from '../db/client';
import { instances, nodes, type Node } from '../db/schema';
import type { Logger } from '../logging/logger';
import { DockerEngine } from './docker';
import { EngineError, type Engine, type WorkerExit } from './engine';

/** Dockerode options for a node endpoint: unix:///path, tcp://host:port, ssh://user@host. */
export function dockerOptions(endpoint: string): Dockerode.DockerOptions {
  const url = new URL(endpoint);
  switch (url.protocol) {
    case 'unix:':
      return { socketPath: url.pathname };
    case 'tcp:':
    case 'http:':
      return { protocol: 'http', host: url.hostname, port: Number(url.port || 2375) };
    case 'https:':
      return { protocol: 'https', host: url.hostname, port: Number(url.port || 2376) };
    case 'ssh:':
      return { protocol: 'ssh', host: url.hostname, port: Number(url.port || 22), username: url.username || undefined };
    default:
      throw new EngineError('unavailable', `unsupported Docker endpoint ${endpoint}`);
  }
}

/**
 * The engine for each node: the process engine for `process` nodes, one
 * DockerEngine per `docker` node (made on first use). Exit listeners reach
 * every engine, present and future.
 */
export class EngineRegistry {
  private readonly docker = new Map<number, { endpoint: string; engine: DockerEngine }>();
  private readonly listeners: ((exit: WorkerExit) => void)[] = [];

  constructor(
    private readonly db: Db,
    readonly process: Engine,
    private readonly opts: { workerImage: string; gatewayId: string; logger: Logger },
  ) {
    process.onExit((exit) => this.listeners.forEach((l) => l(exit)));
  }

  onExit(listener: (exit: WorkerExit) => void): void {
    this.listeners.push(listener);
  }

  all(): Engine[] {
    return [this.process, ...[...this.docker.values()].map((d) => d.engine)];
  }

  async forNode(node: Node): Promise<Engine> {
    if (node.engine === 'process') return this.process;
    if (node.engine !== 'docker') throw new EngineError('unavailable', `engine ${node.engine} of node ${node.name} is not implemented yet`);
    const cached = this.docker.get(node.id);
    if (cached && cached.endpoint === node.endpoint) return cached.engine;
    cached?.engine.unwatch();
    const engine = new DockerEngine(new Dockerode(dockerOptions(node.endpoint)), {
      node: { name: node.name, network: node.network ?? 'host' },
      image: this.opts.workerImage,
      gatewayId: this.opts.gatewayId,
      logger: this.opts.logger.child({ node: node.name }),
    });
    engine.onExit((exit) => this.listeners.forEach((l) => l(exit)));
    await engine.watch();
    this.docker.set(node.id, { endpoint: node.endpoint, engine });
    return engine;
  }

  /** The daemon's `docker info` for a docker node (health checks). */
  async dockerInfo(node: Node): Promise<{ NCPU: number; MemTotal: number }> {
    return new Dockerode(dockerOptions(node.endpoint)).info();
  }

  async forInstance(instanceId: number): Promise<Engine> {
    const [row] = await this.db.select({ node: nodes }).from(instances).innerJoin(nodes, eq(nodes.id, instances.nodeId)).where(eq(instances.id, instanceId));
    return row ? this.forNode(row.node) : this.process;
  }

  close(): void {
    for (const { engine } of this.docker.values()) engine.unwatch();
  }
}
