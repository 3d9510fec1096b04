import type Dockerode from 'dockerode';
import type { Logger } from '../logging/logger';
import { EngineError, type Engine, type WorkerExit, type WorkerInfo, type WorkerSpec } from './engine';
import { containerSpec, LABELS, type DockerNodeSettings } from './docker-spec';

const DEFAULT_STOP_TIMEOUT_MS = 10_000;

/** The image for each worker family: the Go whatsmeow worker, and the TypeScript worker for every other provider. */
export interface WorkerImages {
  /** The TypeScript worker on Bun (sandbox). */
  typescript: string;
  whatsmeow: string;
  /** The TypeScript worker on Node, for the providers that need Node (baileys). */
  node: string;
}

/** Providers whose TypeScript worker runs on Node, not Bun (Baileys does not run reliably on Bun). */
export const NODE_PROVIDERS: ReadonlySet<string> = new Set(['baileys']);

export function imageFor(images: WorkerImages, provider: string): string {
  if (provider === 'whatsmeow') return images.whatsmeow;
  return NODE_PROVIDERS.has(provider) ? images.node : images.typescript;
}

/**
 * One container per worker on one Docker Engine endpoint (a node), through
 * the Engine API (dockerode). Containers carry the gateway's label, so
 * `list` sees only this gateway's workers. Specs come from docker-spec.ts.
 */
export class DockerEngine implements Engine {
  readonly kind = 'docker' as const;
  private readonly listeners: ((exit: WorkerExit) => void)[] = [];
  /** Instances whose container this engine is stopping: their exit is `requested`. */
  private readonly stopping = new Set<number>();
  private events?: NodeJS.ReadableStream;
  private watching = false;
  private refollowTimer?: ReturnType<typeof setTimeout>;
  /** Images seen on the node; a create with one of them skips the check. */
  private readonly present = new Set<string>();

  constructor(
    private readonly docker: Dockerode,
    private readonly opts: {
      node: DockerNodeSettings;
      images: WorkerImages;
      gatewayId: string;
      cmd?: string[];
      logger: Logger;
    },
  ) {}

  /**
   * Follows the daemon's `die` events for this gateway's containers (for
   * onExit). When the stream ends (the daemon restarted, the connection
   * broke) it is followed again, 1 s doubling to 30 s between tries; exits
   * in the gap are the control loop's to find.
   */
  async watch(): Promise<void> {
    this.watching = true;
    await this.follow();
  }

  private async follow(): Promise<void> {
    const stream = (await this.docker.getEvents({
      filters: { type: ['container'], event: ['die'], label: [`${LABELS.gateway}=${this.opts.gatewayId}`] },
    })) as NodeJS.ReadableStream;
    this.events = stream;
    const lost = (why: string) => {
      if (this.events !== stream) return; // already handled, or replaced by unwatch
      this.events = undefined;
      if (!this.watching) return;
      this.opts.logger.warn({ why }, 'docker event stream lost; following it again');
      this.refollow(1000);
    };
    stream.on('end', () => lost('ended'));
    stream.on('close', () => lost('closed'));
    let buffered = '';
    stream.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line) this.died(JSON.parse(line));
      }
    });
    stream.on('error', (err) => {
      this.opts.logger.error({ err }, 'docker event stream failed');
      lost(err instanceof Error ? err.message : String(err));
    });
  }

  private refollow(delayMs: number): void {
    clearTimeout(this.refollowTimer);
    this.refollowTimer = setTimeout(() => {
      if (!this.watching) return;
      this.follow().then(
        () => this.opts.logger.info('docker event stream followed again'),
        () => this.refollow(Math.min(delayMs * 2, 30_000)),
      );
    }, delayMs);
  }

  unwatch(): void {
    this.watching = false;
    clearTimeout(this.refollowTimer);
    const stream = this.events;
    this.events = undefined;
    (stream as unknown as { destroy?: () => void } | undefined)?.destroy?.();
  }

  private died(event: { Actor?: { Attributes?: Record<string, string> }; time?: number }): void {
    const attrs = event.Actor?.Attributes ?? {};
    const instanceId = Number(attrs[LABELS.instance]);
    if (!Number.isInteger(instanceId)) return;
    const code = Number(attrs.exitCode);
    const exit: WorkerExit = {
      instanceId,
      exitCode: Number.isFinite(code) ? code : null,
      signal: code === 137 ? 'SIGKILL' : null,
      requested: this.stopping.has(instanceId),
      ranMs: 0,
    };
    for (const listener of this.listeners) listener(exit);
  }

  async ensure(spec: WorkerSpec): Promise<WorkerInfo> {
    const existing = await this.find(spec.instanceId);
    if (existing?.State === 'running') return this.inspect(spec.instanceId) as Promise<WorkerInfo>;
    const image = imageFor(this.opts.images, spec.provider);
    await this.ensureImage(image);
    try {
      // A stopped container holds an old token and environment: replace it.
      if (existing) await this.docker.getContainer(existing.Id).remove({ force: true });
      const container = await this.docker.createContainer(containerSpec(spec, this.opts.node, { ...this.opts, image }));
      this.stopping.delete(spec.instanceId);
      await container.start();
    } catch (err) {
      throw new EngineError('start_failed', `failed to start worker for instance ${spec.instanceId} on node ${this.opts.node.name}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    this.opts.logger.info({ instanceId: spec.instanceId, tenantId: spec.tenantId, node: this.opts.node.name }, 'worker container started');
    return (await this.inspect(spec.instanceId))!;
  }

  /**
   * Makes sure the node has the image: present, or pulled now. A node that
   * cannot pull it (no registry, private image) fails the start with what to
   * do, not Docker's bare "No such image".
   */
  private async ensureImage(image: string): Promise<void> {
    if (this.present.has(image)) return;
    const found = await this.docker
      .getImage(image)
      .inspect()
      .then(() => true)
      .catch((err: { statusCode?: number }) => {
        if (err.statusCode === 404) return false;
        throw new EngineError('unavailable', `node ${this.opts.node.name}: cannot check for image ${image}: ${(err as Error).message}`, { cause: err });
      });
    if (!found) {
      this.opts.logger.info({ image, node: this.opts.node.name }, 'pulling worker image');
      try {
        const stream = await this.docker.pull(image);
        await new Promise<void>((resolve, reject) =>
          this.docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve())),
        );
      } catch (err) {
        throw new EngineError(
          'unavailable',
          `image ${image} is not on node ${this.opts.node.name} and pulling it failed (${(err as Error).message.trim()}); ` +
            'build it on the node (make images) or push it to a registry the node can reach',
          { cause: err },
        );
      }
    }
    this.present.add(image);
  }

  async stop(instanceId: number, timeoutMs = DEFAULT_STOP_TIMEOUT_MS): Promise<void> {
    const found = await this.find(instanceId);
    if (!found || found.State !== 'running') return;
    this.stopping.add(instanceId);
    // `docker stop`: SIGTERM, then SIGKILL after t seconds.
    await this.docker
      .getContainer(found.Id)
      .stop({ t: Math.ceil(timeoutMs / 1000) })
      .catch((err: { statusCode?: number }) => {
        if (err.statusCode !== 304) throw err; // 304: already stopped
      });
  }

  async remove(instanceId: number): Promise<void> {
    const found = await this.find(instanceId);
    if (!found) return;
    await this.stop(instanceId);
    await this.docker
      .getContainer(found.Id)
      .remove({ force: true })
      .catch(async (err: { statusCode?: number }) => {
        // Gone already, or being removed by someone else (the control loop racing a DELETE): done once it is gone.
        if (err.statusCode === 404) return;
        if (err.statusCode !== 409) throw err;
        const deadline = Date.now() + DEFAULT_STOP_TIMEOUT_MS;
        while (await this.find(instanceId)) {
          if (Date.now() > deadline) throw err;
          await Bun.sleep(100);
        }
      });
  }

  async inspect(instanceId: number): Promise<WorkerInfo | null> {
    const found = await this.find(instanceId);
    if (!found) return null;
    const info = await this.docker.getContainer(found.Id).inspect();
    return {
      instanceId,
      state: info.State.Running ? 'running' : 'exited',
      pid: info.State.Pid || undefined,
      startedAt: new Date(info.State.StartedAt),
      exitCode: info.State.Running ? undefined : info.State.ExitCode,
    };
  }

  async list(): Promise<WorkerInfo[]> {
    const containers = await this.docker.listContainers({ all: true, filters: { label: [`${LABELS.gateway}=${this.opts.gatewayId}`] } });
    return containers.map((c) => ({
      instanceId: Number(c.Labels[LABELS.instance]),
      state: c.State === 'running' ? ('running' as const) : ('exited' as const),
      startedAt: new Date(c.Created * 1000),
    }));
  }

  async logs(instanceId: number, tail = 200): Promise<string[]> {
    const found = await this.find(instanceId);
    if (!found) throw new EngineError('not_found', `no worker container for instance ${instanceId}`);
    const raw = (await this.docker.getContainer(found.Id).logs({ stdout: true, stderr: true, tail, follow: false })) as unknown as Buffer;
    return demux(raw).split('\n').filter(Boolean);
  }

  onExit(listener: (exit: WorkerExit) => void): void {
    this.listeners.push(listener);
  }

  private async find(instanceId: number) {
    const [found] = await this.docker.listContainers({
      all: true,
      filters: { label: [`${LABELS.gateway}=${this.opts.gatewayId}`, `${LABELS.instance}=${instanceId}`] },
    });
    return found;
  }
}

/** Docker's multiplexed log stream (8-byte frame headers) as text. */
export function demux(buffer: Buffer): string {
  let out = '';
  for (let i = 0; i + 8 <= buffer.length; ) {
    const size = buffer.readUInt32BE(i + 4);
    out += buffer.subarray(i + 8, i + 8 + size).toString('utf8');
    i += 8 + size;
  }
  return out;
}
