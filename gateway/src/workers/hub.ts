import { randomUUID } from 'node:crypto';
import { and, eq, sql } from 'drizzle-orm';
import { GatewayMetrics } from '../metrics/metrics';
import type { Db } from '../db/client';
import { instances, nodes } from '../db/schema';
import type { Logger } from '../logging/logger';
import { InstanceTenants } from '../logging/instance-tenants';
import {
  CloseCodes,
  Hello,
  parseFrame,
  PROTOCOL_VERSION,
  WorkerFrame,
  type GatewayFrame,
  type SessionState,
  type WorkerEvent,
} from '../../../workers/protocol/frames';
import type { Static } from '@sinclair/typebox';
import type { ResultFrame as ResultFrameSchema } from '../../../workers/protocol/frames';

export type ResultFrame = Static<typeof ResultFrameSchema>;
type Frame = Static<typeof WorkerFrame>;
import { workerTokenMatches } from './tokens';
import { WorkerUsageMetrics } from './usage';

/** One WebSocket as the hub sees it. */
export interface WorkerSocket {
  send(text: string): void;
  close(code: number, reason: string): void;
}

/** What the hub reports; implemented by the instance runtime. */
export interface WorkerHandlers {
  connected(instanceId: number): Promise<void>;
  state(instanceId: number, state: SessionState, reason: string | undefined): Promise<void>;
  qr(instanceId: number, code: string, expiresAt: Date): Promise<void>;
  /** A run of consecutive event frames, in order; acked by the hub once this resolves. */
  events(instanceId: number, events: { eventId: string; event: WorkerEvent }[]): Promise<void>;
  /** A run of consecutive result frames. */
  results(instanceId: number, results: ResultFrame[]): Promise<void>;
  disconnected(instanceId: number): Promise<void>;
}

const HELLO_TIMEOUT_MS = 10_000;

interface Session {
  socket: WorkerSocket;
  instanceId?: number;
  helloTimer?: Timer;
  /** Frames not handled yet, in arrival order. */
  inbox: unknown[];
  /** The loop handling `inbox`, while it runs. */
  draining?: Promise<void>;
  /** Set while the socket counts in wgs_worker_connections (from its hello until it closes or is replaced). */
  countedAs?: string;
  /** This socket's id in `instances.worker_socket` (gateway replicas: who holds the worker). */
  socketId: string;
  /** The token hash the worker authenticated with: a newer worker start replaces it. */
  tokenHash?: string;
}

/**
 * The gateway's end of the worker protocol (workers/protocol/README.md):
 * authenticates each worker by its instance-scoped token, keeps one socket
 * per instance, and hands frames to the runtime in order.
 */
export class WorkerHub {
  private readonly sessions = new Map<WorkerSocket, Session>();
  private readonly byInstance = new Map<number, Session>();
  private handlers?: WorkerHandlers;
  /** What the connected workers report in their pings (memory, CPU), as metrics. */
  private readonly usage: WorkerUsageMetrics;
  /** Instance → tenant for log lines (learned at hello); shared with the runtime. */
  readonly tenants: InstanceTenants;

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
    /** Where connections and worker reports are counted. */
    readonly metrics: GatewayMetrics = new GatewayMetrics({ defaults: false }),
    /**
     * metricsPerInstance: METRICS_PER_INSTANCE=true, worker usage also per instance.
     * ownerId: this gateway process (claims/owner.ts), recorded as the holder of each worker's socket.
     */
    private readonly opts: { metricsPerInstance?: boolean; tenants?: InstanceTenants; ownerId?: number } = {},
  ) {
    this.tenants = opts.tenants ?? new InstanceTenants(db);
    this.usage = new WorkerUsageMetrics(metrics, { perInstance: opts.metricsPerInstance ?? false });
  }

  setHandlers(handlers: WorkerHandlers): void {
    this.handlers = handlers;
  }

  isConnected(instanceId: number): boolean {
    return this.byInstance.has(instanceId);
  }

  /** Sends a frame to an instance's worker; false when it has no socket. */
  send(instanceId: number, frame: GatewayFrame): boolean {
    const session = this.byInstance.get(instanceId);
    if (!session) return false;
    session.socket.send(JSON.stringify(frame));
    return true;
  }

  /** Instances whose workers are connected to this process. */
  connectedIds(): number[] {
    return [...this.byInstance.keys()];
  }

  /**
   * A newer worker was started for the instance (on any replica): a socket
   * here that authenticated with another token belongs to an older worker,
   * which is told to go (4409: it exits).
   */
  closeStale(instanceId: number, currentTokenHash: string | null): void {
    const session = this.byInstance.get(instanceId);
    if (!session || (currentTokenHash !== null && session.tokenHash === currentTokenHash)) return;
    session.socket.close(CloseCodes.replaced, 'replaced by a newer worker');
  }

  open(socket: WorkerSocket): void {
    const session: Session = { socket, inbox: [], socketId: randomUUID() };
    session.helloTimer = setTimeout(() => socket.close(CloseCodes.unauthorized, 'no hello'), HELLO_TIMEOUT_MS);
    this.sessions.set(socket, session);
  }

  /**
   * Frames of one socket are handled in arrival order. Whatever arrived while
   * the previous frames were being handled is taken together, and runs of
   * events or results are written in one go: a busy worker costs a few round
   * trips per batch instead of several per frame.
   */
  message(socket: WorkerSocket, raw: unknown): void {
    const session = this.sessions.get(socket);
    if (!session) return;
    session.inbox.push(raw);
    session.draining ??= this.drain(session).finally(() => {
      session.draining = undefined;
    });
  }

  private async drain(session: Session): Promise<void> {
    while (session.inbox.length > 0) {
      const batch = session.inbox.splice(0);
      try {
        await this.handleBatch(session, batch);
      } catch (err) {
        this.logger.error({ err, ...(session.instanceId !== undefined && this.tenants.fields(session.instanceId)) }, 'failed to handle worker frames');
      }
    }
  }

  close(socket: WorkerSocket): void {
    const session = this.sessions.get(socket);
    if (!session) return;
    this.sessions.delete(socket);
    clearTimeout(session.helloTimer);
    this.uncount(session);
    const id = session.instanceId;
    if (id !== undefined && this.byInstance.get(id) === session) {
      this.byInstance.delete(id);
      this.usage.disconnected(id);
      void (session.draining ?? Promise.resolve())
        .then(() => this.released(id, session))
        .then(() => this.handlers?.disconnected(id))
        .catch(() => {});
    }
  }

  /** The socket no longer holds the worker: its record goes, unless a newer socket (here or elsewhere) took over. */
  private async released(instanceId: number, session: Session): Promise<void> {
    if (this.opts.ownerId === undefined) return;
    await this.db
      .update(instances)
      .set({ workerOwner: null, workerSocket: null })
      .where(and(eq(instances.id, instanceId), eq(instances.workerSocket, session.socketId)))
      .catch((err) => this.logger.warn({ err, ...this.tenants.fields(instanceId) }, 'could not clear the worker socket record'));
  }

  /** Closes every worker socket (gateway shutdown). */
  closeAll(): void {
    for (const session of this.sessions.values()) session.socket.close(1001, 'gateway stopping');
  }

  /** A socket leaves wgs_worker_connections once: when it closes or a newer one replaces it. */
  private uncount(session: Session): void {
    if (session.countedAs === undefined) return;
    this.metrics.workerConnections.dec({ provider: session.countedAs });
    session.countedAs = undefined;
  }

  private async handleBatch(session: Session, raws: unknown[]): Promise<void> {
    let frames: Frame[] = [];
    const flush = async () => {
      if (frames.length > 0) await this.handleFrames(session, frames);
      frames = [];
    };
    for (const raw of raws) {
      if (session.instanceId === undefined) {
        await flush();
        await this.hello(session, raw);
        continue;
      }
      const frame = parseFrame(WorkerFrame, raw);
      if (frame) frames.push(frame);
      else this.logger.warn(this.tenants.fields(session.instanceId), 'invalid frame from worker');
    }
    await flush();
  }

  /**
   * Handles a batch of frames. State, QR and ping frames are handled in
   * order; between two of them, all events are stored as one run (in order)
   * and all results are applied side by side: results do not depend on each
   * other or on events, and event order is kept.
   */
  private async handleFrames(session: Session, frames: Frame[]): Promise<void> {
    const id = session.instanceId!;
    const h = this.handlers!;
    let events: Extract<Frame, { type: 'event' }>[] = [];
    let results: ResultFrame[] = [];
    const flush = async () => {
      const [e, r] = [events, results];
      events = [];
      results = [];
      await Promise.all([
        e.length > 0 &&
          h.events(id, e).then(() => {
            for (const { eventId } of e) session.socket.send(JSON.stringify({ type: 'ack', eventId } satisfies GatewayFrame));
          }),
        r.length > 0 && h.results(id, r),
      ]);
    };
    for (const frame of frames) {
      switch (frame.type) {
        case 'event':
          events.push(frame);
          break;
        case 'result':
          results.push(frame);
          break;
        case 'state':
          await flush();
          await h.state(id, frame.state, frame.reason);
          break;
        case 'qr':
          await flush();
          await h.qr(id, frame.code, new Date(frame.expiresAt));
          break;
        case 'ping':
          session.socket.send(JSON.stringify({ type: 'pong', t: frame.t } satisfies GatewayFrame));
          // Only from the instance's current socket: a closed or replaced one no longer counts.
          if (frame.usage && this.byInstance.get(id) === session) this.usage.report(id, frame.usage);
          break;
        case 'pong':
        case 'hello':
          break;
      }
    }
    await flush();
  }

  private async hello(session: Session, raw: unknown): Promise<void> {
    const hello = parseFrame(Hello, raw);
    const reject = (code: number, reason: string) => {
      // The claimed id is not authenticated: no lookup for it, the tenant only when already known.
      this.logger.warn({ instanceId: hello?.instanceId, tenantId: hello && this.tenants.tenantOf(hello.instanceId), reason }, 'worker rejected');
      session.socket.close(code, reason);
    };
    if (!hello) return reject(CloseCodes.unauthorized, 'first frame must be hello');
    if (hello.protocol !== PROTOCOL_VERSION) return reject(CloseCodes.unsupportedProtocol, `protocol ${hello.protocol} not supported`);
    const [instance] = await this.db
      .select({ id: instances.id, userId: instances.userId, phone: instances.phoneNumber, tokenHash: instances.workerTokenHash, provider: instances.provider, node: nodes.name })
      .from(instances)
      .leftJoin(nodes, eq(nodes.id, instances.nodeId))
      .where(eq(instances.id, hello.instanceId));
    if (!instance || !workerTokenMatches(hello.token, instance.tokenHash)) return reject(CloseCodes.unauthorized, 'invalid token');
    this.tenants.remember(instance.id, instance.userId);
    if (!this.sessions.has(session.socket)) return; // closed while we looked
    // Every replica learns who holds the worker (command routing, "connected" in the API); the token is
    // checked again in the write, so a worker replaced meanwhile (a newer start on any replica) is refused.
    if (this.opts.ownerId !== undefined) {
      const held = await this.db
        .update(instances)
        .set({ workerOwner: this.opts.ownerId, workerSocket: session.socketId })
        .where(and(eq(instances.id, instance.id), sql`${instances.workerTokenHash} = ${instance.tokenHash}`))
        .returning({ id: instances.id });
      if (held.length === 0) return reject(CloseCodes.unauthorized, 'invalid token');
      if (!this.sessions.has(session.socket)) return void (await this.released(instance.id, session));
    }
    session.tokenHash = instance.tokenHash ?? undefined;

    clearTimeout(session.helloTimer);
    const previous = this.byInstance.get(instance.id);
    session.instanceId = instance.id;
    this.byInstance.set(instance.id, session);
    // The node as of this connection (a migration starts a new worker, hence a new connection, after moving it).
    this.usage.connected(instance.id, { node: instance.node ?? 'none', provider: instance.provider });
    // The instance's provider, not what the worker says: a label value stays one of the known few.
    session.countedAs = instance.provider;
    this.metrics.workerConnections.inc({ provider: instance.provider });
    if (previous && previous !== session) {
      previous.instanceId = undefined;
      this.uncount(previous);
      previous.socket.close(CloseCodes.replaced, 'replaced by a newer connection');
    }
    session.socket.send(JSON.stringify({ type: 'welcome', protocol: PROTOCOL_VERSION, instanceId: instance.id, phone: instance.phone } satisfies GatewayFrame));
    this.logger.info({ instanceId: instance.id, tenantId: instance.userId, provider: hello.provider, workerVersion: hello.workerVersion }, 'worker connected');
    await this.handlers!.connected(instance.id);
  }
}
