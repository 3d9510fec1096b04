import { createHash } from 'node:crypto';
import Dockerode from 'dockerode';
import { eq } from 'drizzle-orm';
import type { Db } from '../db/client';
import { instances, nodes, type Node } from '../db/schema';
import type { Logger } from '../logging/logger';
import type { SecretBox } from '../lib/secret-box';
import { DockerEngine, type WorkerImages } from './docker';
import { SwarmEngine } from './swarm';
import { EngineError, type Engine, type WorkerExit } from './engine';

export interface TlsClient {
  ca: string;
  cert: string;
  key: string;
}

/**
 * Dockerode options for a node endpoint: unix:///path, tcp://host:port
 * (TLS when client certificates are given, as with `dockerd --tlsverify`),
 * https://host:port, ssh://user@host.
 */
export interface SshLogin {
  privateKey: string;
  passphrase?: string;
  /** `SHA256:…` fingerprint; any other host key is refused. */
  hostKey?: string | null;
}

/** OpenSSH's fingerprint of a raw host key blob: `SHA256:` and unpadded base64. */
export function sshFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

export function dockerOptions(endpoint: string, tls?: TlsClient, ssh?: SshLogin): Dockerode.DockerOptions {
  const url = new URL(endpoint);
  switch (url.protocol) {
    case 'unix:':
      return { socketPath: url.pathname };
    case 'tcp:':
    case 'http:':
    case 'https:':
      if (tls || url.protocol === 'https:') {
        return { protocol: 'https', host: url.hostname, port: Number(url.port || 2376), ...(tls && { ca: tls.ca, cert: tls.cert, key: tls.key }) };
      }
      return { protocol: 'http', host: url.hostname, port: Number(url.port || 2375) };
    case 'ssh:': {
      const hostKey = ssh?.hostKey;
      const sshOptions = {
        ...(ssh && { privateKey: ssh.privateKey, ...(ssh.passphrase !== undefined && { passphrase: ssh.passphrase }) }),
        ...(hostKey && { hostVerifier: (key: Buffer) => sshFingerprint(key) === hostKey }),
        readyTimeout: 5_000,
      };
      return { protocol: 'ssh', host: url.hostname, port: Number(url.port || 22), username: url.username || undefined, sshOptions } as Dockerode.DockerOptions;
    }
    default:
      throw new EngineError('unavailable', `unsupported Docker endpoint ${endpoint}`);
  }
}

/**
 * The engine for each node: the process engine for `process` nodes, one
 * DockerEngine per `docker` node and one SwarmEngine per `swarm` node (made
 * on first use). Exit listeners reach
 * every engine, present and future.
 */
export class EngineRegistry {
  /** Keyed by node id; `version` is the node's updatedAt, so an edited endpoint or certificate makes a new client. */
  private readonly docker = new Map<number, { version: number; engine: DockerEngine | SwarmEngine }>();
  private readonly listeners: ((exit: WorkerExit) => void)[] = [];

  constructor(
    private readonly db: Db,
    readonly process: Engine,
    private readonly opts: { images: WorkerImages; gatewayId: string; logger: Logger; secrets: SecretBox },
  ) {
    process.onExit((exit) => this.listeners.forEach((l) => l(exit)));
  }

  get gatewayId(): string {
    return this.opts.gatewayId;
  }

  onExit(listener: (exit: WorkerExit) => void): void {
    this.listeners.push(listener);
  }

  all(): Engine[] {
    return [this.process, ...[...this.docker.values()].map((d) => d.engine)];
  }

  async forNode(node: Node): Promise<Engine> {
    if (node.engine === 'process') return this.process;
    if (node.engine !== 'docker' && node.engine !== 'swarm') throw new EngineError('unavailable', `engine ${node.engine} of node ${node.name} is not implemented yet`);
    const version = node.updatedAt.getTime();
    const cached = this.docker.get(node.id);
    if (cached && cached.version === version) return cached.engine;
    cached?.engine.unwatch();
    const settings = { images: this.opts.images, gatewayId: this.opts.gatewayId, logger: this.opts.logger.child({ node: node.name }) };
    // A swarm node is a Swarm manager endpoint: one service per worker, placed by its labels (engines/swarm.ts).
    const engine =
      node.engine === 'swarm'
        ? new SwarmEngine(this.client(node), { ...settings, node: { name: node.name, network: node.network ?? 'host', labels: node.labels } })
        : new DockerEngine(this.client(node), { ...settings, node: { name: node.name, network: node.network ?? 'host' } });
    engine.onExit((exit) => this.listeners.forEach((l) => l(exit)));
    await engine.watch();
    this.docker.set(node.id, { version, engine });
    return engine;
  }

  /** A Docker client for the node, with its TLS client certificate or SSH login when it has one. */
  client(node: Node): Dockerode {
    const tls =
      node.tlsKeyEncrypted && node.tlsCa && node.tlsCert
        ? { ca: node.tlsCa, cert: node.tlsCert, key: this.opts.secrets.open(node.tlsKeyEncrypted) }
        : undefined;
    const ssh = node.sshKeyEncrypted ? { ...(JSON.parse(this.opts.secrets.open(node.sshKeyEncrypted)) as SshLogin), hostKey: node.sshHostKey } : undefined;
    return new Dockerode(dockerOptions(node.endpoint, tls, ssh));
  }

  async forInstance(instanceId: number): Promise<Engine> {
    const [row] = await this.db.select({ node: nodes }).from(instances).innerJoin(nodes, eq(nodes.id, instances.nodeId)).where(eq(instances.id, instanceId));
    return row ? this.forNode(row.node) : this.process;
  }

  close(): void {
    for (const { engine } of this.docker.values()) engine.unwatch();
  }
}
