import { eq } from 'drizzle-orm';
import type { Db } from '../db/client';
import { instances } from '../db/schema';
import type { Logger } from '../logging/logger';
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
import { workerTokenMatches } from './tokens';

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
  event(instanceId: number, eventId: string, event: WorkerEvent): Promise<void>;
  result(instanceId: number, commandId: number, ok: boolean, data?: Record<string, unknown>, error?: { code: string; message: string }): Promise<void>;
  disconnected(instanceId: number): Promise<void>;
}

const HELLO_TIMEOUT_MS = 10_000;

interface Session {
  socket: WorkerSocket;
  instanceId?: number;
  helloTimer?: Timer;
  /** Frames are handled one at a time per socket, in arrival order. */
  queue: Promise<void>;
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

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
  ) {}

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

  open(socket: WorkerSocket): void {
    const session: Session = { socket, queue: Promise.resolve() };
    session.helloTimer = setTimeout(() => socket.close(CloseCodes.unauthorized, 'no hello'), HELLO_TIMEOUT_MS);
    this.sessions.set(socket, session);
  }

  message(socket: WorkerSocket, raw: unknown): void {
    const session = this.sessions.get(socket);
    if (!session) return;
    session.queue = session.queue
      .then(() => this.handle(session, raw))
      .catch((err) => this.logger.error({ err, instanceId: session.instanceId }, 'failed to handle worker frame'));
  }

  close(socket: WorkerSocket): void {
    const session = this.sessions.get(socket);
    if (!session) return;
    this.sessions.delete(socket);
    clearTimeout(session.helloTimer);
    const id = session.instanceId;
    if (id !== undefined && this.byInstance.get(id) === session) {
      this.byInstance.delete(id);
      session.queue = session.queue.then(() => this.handlers?.disconnected(id)).catch(() => {});
    }
  }

  /** Closes every worker socket (gateway shutdown). */
  closeAll(): void {
    for (const session of this.sessions.values()) session.socket.close(1001, 'gateway stopping');
  }

  private async handle(session: Session, raw: unknown): Promise<void> {
    if (session.instanceId === undefined) return this.hello(session, raw);
    const frame = parseFrame(WorkerFrame, raw);
    const id = session.instanceId;
    const h = this.handlers!;
    if (!frame) {
      this.logger.warn({ instanceId: id }, 'invalid frame from worker');
      return;
    }
    switch (frame.type) {
      case 'state':
        return h.state(id, frame.state, frame.reason);
      case 'qr':
        return h.qr(id, frame.code, new Date(frame.expiresAt));
      case 'event':
        await h.event(id, frame.eventId, frame.event);
        session.socket.send(JSON.stringify({ type: 'ack', eventId: frame.eventId } satisfies GatewayFrame));
        return;
      case 'result':
        return h.result(id, frame.commandId, frame.ok, frame.data, frame.error);
      case 'ping':
        session.socket.send(JSON.stringify({ type: 'pong', t: frame.t } satisfies GatewayFrame));
        return;
      case 'pong':
      case 'hello':
        return;
    }
  }

  private async hello(session: Session, raw: unknown): Promise<void> {
    const hello = parseFrame(Hello, raw);
    const reject = (code: number, reason: string) => {
      this.logger.warn({ instanceId: hello?.instanceId, reason }, 'worker rejected');
      session.socket.close(code, reason);
    };
    if (!hello) return reject(CloseCodes.unauthorized, 'first frame must be hello');
    if (hello.protocol !== PROTOCOL_VERSION) return reject(CloseCodes.unsupportedProtocol, `protocol ${hello.protocol} not supported`);
    const [instance] = await this.db
      .select({ id: instances.id, phone: instances.phoneNumber, tokenHash: instances.workerTokenHash })
      .from(instances)
      .where(eq(instances.id, hello.instanceId));
    if (!instance || !workerTokenMatches(hello.token, instance.tokenHash)) return reject(CloseCodes.unauthorized, 'invalid token');
    if (!this.sessions.has(session.socket)) return; // closed while we looked

    clearTimeout(session.helloTimer);
    const previous = this.byInstance.get(instance.id);
    session.instanceId = instance.id;
    this.byInstance.set(instance.id, session);
    if (previous && previous !== session) {
      previous.instanceId = undefined;
      previous.socket.close(CloseCodes.replaced, 'replaced by a newer connection');
    }
    session.socket.send(JSON.stringify({ type: 'welcome', protocol: PROTOCOL_VERSION, instanceId: instance.id, phone: instance.phone } satisfies GatewayFrame));
    this.logger.info({ instanceId: instance.id, provider: hello.provider, workerVersion: hello.workerVersion }, 'worker connected');
    await this.handlers!.connected(instance.id);
  }
}
