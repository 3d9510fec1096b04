/**
 * Test support: a minimal gateway on 127.0.0.1 that speaks protocol v1 over
 * a real WebSocket. It checks every worker frame with the protocol schema and
 * records what each connection sent, so tests assert on the wire.
 */
import type { Server, ServerWebSocket } from 'bun';
import { PROTOCOL_VERSION, WORKER_WS_PATH, WorkerFrame, parseFrame, type GatewayFrame } from '../../protocol/frames';

export interface GatewayConn {
  ws: ServerWebSocket<{ conn: GatewayConn }>;
  /** Valid worker frames in arrival order. */
  frames: WorkerFrame[];
  /** Raw frames that matched no schema (must stay empty). */
  invalid: string[];
  closed: { code: number; reason: string } | undefined;
  send(frame: GatewayFrame): void;
  close(code: number, reason?: string): void;
  /** Frames of one type, typed. */
  ofType<T extends WorkerFrame['type']>(type: T): Extract<WorkerFrame, { type: T }>[];
}

export interface FakeGatewayOptions {
  /** Answer a valid hello with a welcome at once (default true). */
  autoWelcome?: boolean;
  phone?: string;
  /** Answer the worker's pings (default true); false makes the gateway look dead. */
  answerPings?: boolean;
}

export class FakeGateway {
  readonly connections: GatewayConn[] = [];
  private readonly server: Server<{ conn: GatewayConn }>;

  constructor(private readonly opts: FakeGatewayOptions = {}) {
    this.server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: (req, server) => {
        if (new URL(req.url).pathname !== WORKER_WS_PATH) return new Response('not found', { status: 404 });
        const conn = this.newConn();
        return server.upgrade(req, { data: { conn } }) ? undefined : new Response('upgrade failed', { status: 400 });
      },
      websocket: {
        data: {} as { conn: GatewayConn },
        open: (ws) => {
          ws.data.conn.ws = ws;
          this.connections.push(ws.data.conn);
        },
        message: (ws, message) => this.onMessage(ws.data.conn, typeof message === 'string' ? message : message.toString()),
        close: (ws, code, reason) => {
          ws.data.conn.closed = { code, reason };
        },
      },
    });
  }

  /** The base URL a worker is given as WGS_GATEWAY_URL. */
  get baseUrl(): string {
    return `ws://127.0.0.1:${this.server.port}`;
  }

  get workerUrl(): string {
    return `${this.baseUrl}${WORKER_WS_PATH}`;
  }

  /** The newest connection; throws when there is none. */
  get latest(): GatewayConn {
    const conn = this.connections.at(-1);
    if (!conn) throw new Error('no worker connection yet');
    return conn;
  }

  async stop(): Promise<void> {
    await this.server.stop(true);
  }

  private newConn(): GatewayConn {
    const conn: GatewayConn = {
      ws: undefined as unknown as GatewayConn['ws'],
      frames: [],
      invalid: [],
      closed: undefined,
      send: (frame) => conn.ws.send(JSON.stringify(frame)),
      close: (code, reason) => conn.ws.close(code, reason),
      ofType: <T extends WorkerFrame['type']>(type: T) =>
        conn.frames.filter((f): f is Extract<WorkerFrame, { type: T }> => f.type === type),
    };
    return conn;
  }

  private onMessage(conn: GatewayConn, text: string): void {
    const frame = parseFrame(WorkerFrame, text);
    if (!frame) {
      conn.invalid.push(text);
      return;
    }
    conn.frames.push(frame);
    if (frame.type === 'hello' && (this.opts.autoWelcome ?? true)) {
      conn.send({ type: 'welcome', protocol: PROTOCOL_VERSION, instanceId: frame.instanceId, phone: this.opts.phone ?? '15550001111' });
    }
    if (frame.type === 'ping' && (this.opts.answerPings ?? true)) conn.send({ type: 'pong', t: frame.t });
  }
}

/** Polls `probe` until it returns a truthy value, which it resolves to, or fails after `timeoutMs`. */
export async function waitFor<T>(probe: () => T | undefined | null | false | 0 | '', what: string, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value as T;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(5);
  }
}
