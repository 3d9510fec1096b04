/**
 * One WebSocket from a client: prologue and frames, the Noise handshake,
 * then encrypted binary nodes in both directions. Protocol decisions belong
 * to the Simulator; a session only moves bytes and matches IQ responses to
 * the requests the server sent. Any malformed input closes the socket.
 */
import type { proto } from 'baileys';
import { randomBytes } from './crypto';
import { ServerHandshake, type NoiseTransport, type ServerIdentity } from './noise';
import { PROLOGUE, FrameReader, decodeNode, encodeNode, frame, type Node } from './wire';

/** The WebSocket operations a session needs (Bun's ServerWebSocket has them). */
export interface SocketLike {
  send(data: Uint8Array): unknown;
  close(code?: number, reason?: string): void;
  terminate(): void;
}

export interface SessionHandler {
  onAuthenticated(session: Session): void;
  onNode(session: Session, node: Node): void | Promise<void>;
  onProblem(session: Session, problem: string): void;
}

/** How long a client has to finish the handshake. */
const HANDSHAKE_TIMEOUT_MS = 20_000;

let nextSessionId = 1;

export class Session {
  readonly id = nextSessionId++;
  phase: 'hello' | 'finish' | 'open' | 'closed' = 'hello';
  clientStatic: Buffer | undefined;
  payload: proto.ClientPayload | undefined;
  /** Set by the Simulator: what this socket is (registration or a device's login). */
  role: unknown;
  private readonly reader = new FrameReader();
  private readonly handshake: ServerHandshake;
  private transport: NoiseTransport | undefined;
  private queue: Promise<void> = Promise.resolve();
  private readonly waiters = new Map<string, { resolve: (n: Node) => void; reject: (e: Error) => void }>();
  private readonly closeListeners: (() => void)[] = [];
  private readonly handshakeTimer: ReturnType<typeof setTimeout>;

  constructor(
    private readonly ws: SocketLike,
    server: ServerIdentity,
    private readonly handler: SessionHandler,
  ) {
    this.handshake = new ServerHandshake(server, PROLOGUE);
    this.handshakeTimer = setTimeout(() => {
      if (this.phase !== 'open') this.fail('handshake not finished in time');
    }, HANDSHAKE_TIMEOUT_MS);
  }

  private isClosed(): boolean {
    return this.phase === 'closed';
  }

  get isOpen(): boolean {
    return this.phase === 'open';
  }

  /** Raw WebSocket data, processed strictly in arrival order. */
  receive(data: Uint8Array): void {
    const copy = Buffer.from(data);
    this.queue = this.queue.then(() => this.process(copy)).catch((err: unknown) => this.fail(err instanceof Error ? err.message : String(err)));
  }

  private async process(data: Buffer): Promise<void> {
    if (this.phase === 'closed') return;
    for (const f of this.reader.push(data)) {
      if (this.isClosed()) return;
      if (this.phase === 'hello') {
        this.sendRaw(this.handshake.onClientHello(f));
        this.phase = 'finish';
      } else if (this.phase === 'finish') {
        const done = this.handshake.onClientFinish(f);
        this.transport = done.transport;
        this.clientStatic = done.clientStatic;
        this.payload = done.payload;
        this.phase = 'open';
        clearTimeout(this.handshakeTimer);
        this.handler.onAuthenticated(this);
      } else {
        const plaintext = this.transport!.decrypt(f);
        const n = await decodeNode(plaintext);
        if (!n?.tag) throw new Error('frame without a node');
        const id = typeof n.attrs?.id === 'string' ? n.attrs.id : undefined;
        const waiter = id && n.tag === 'iq' && (n.attrs.type === 'result' || n.attrs.type === 'error') ? this.waiters.get(id) : undefined;
        if (waiter && id) {
          this.waiters.delete(id);
          waiter.resolve(n);
        } else {
          await this.handler.onNode(this, n);
        }
      }
    }
  }

  private sendRaw(data: Uint8Array): void {
    this.ws.send(frame(data));
  }

  send(n: Node): void {
    if (this.phase !== 'open' || !this.transport) return;
    this.sendRaw(this.transport.encrypt(encodeNode(n)));
  }

  /** Sends an IQ the server starts and resolves with the client's result or error node. */
  request(n: Node, timeoutMs: number): Promise<Node> {
    const id = n.attrs.id ?? newStanzaId();
    n.attrs.id = id;
    return new Promise<Node>((resolve, reject) => {
      if (!this.isOpen) return reject(new Error('the socket is closed'));
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new Error(`no answer to ${n.tag} ${id} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.send(n);
    });
  }

  onClose(listener: () => void): void {
    this.closeListeners.push(listener);
  }

  /** Sends a stream error, then closes the socket shortly after (the client reads the error first). */
  streamError(attrs: Record<string, string>, content?: Node[], closeAfterMs = 500): void {
    this.send({ tag: 'stream:error', attrs, content });
    setTimeout(() => this.close(), closeAfterMs);
  }

  close(code = 1000, reason = ''): void {
    if (this.phase === 'closed') return;
    try {
      this.ws.close(code, reason);
    } catch {
      // already gone
    }
    this.closed();
  }

  /** Drops the TCP connection without a close frame. */
  terminate(): void {
    if (this.phase === 'closed') return;
    try {
      this.ws.terminate();
    } catch {
      // already gone
    }
    this.closed();
  }

  /** Called when the socket went away (either side). */
  closed(): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    clearTimeout(this.handshakeTimer);
    for (const w of this.waiters.values()) w.reject(new Error('the socket closed'));
    this.waiters.clear();
    for (const l of this.closeListeners.splice(0)) l();
  }

  private fail(problem: string): void {
    if (this.phase === 'closed') return;
    this.handler.onProblem(this, problem);
    this.close(1002, 'protocol error');
  }
}

export const newStanzaId = (): string => randomBytes(8).toString('hex').toUpperCase();
