/**
 * One port for both sides: WebSocket upgrades on /ws/chat (the path
 * whatsmeow and Baileys dial) go to the protocol, everything else to the
 * control API. Loopback only.
 */
import type { Server } from 'bun';
import type { Certificates } from './certs';
import { handleControl } from './control';
import { Simulator, type Log } from './simulator';
import type { Session } from './session';

export const WS_PATH = '/ws/chat';

export interface RunningSimulator {
  simulator: Simulator;
  port: number;
  /** http://127.0.0.1:port */
  url: string;
  /** ws://127.0.0.1:port/ws/chat */
  wsUrl: string;
  rootPublicKey: string;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** 0 picks a free port. */
  port?: number;
  hostname?: '127.0.0.1' | '::1';
  log?: Log;
  certificates?: Certificates;
}

export function startSimulator(opts: StartOptions = {}): RunningSimulator {
  const simulator = new Simulator({ log: opts.log, certificates: opts.certificates });
  const hostname = opts.hostname ?? '127.0.0.1';
  let wsUrl = '';
  const server: Server<{ session?: Session }> = Bun.serve({
    hostname,
    port: opts.port ?? 0,
    fetch: (req, srv) => {
      const url = new URL(req.url);
      if (req.headers.get('upgrade')?.toLowerCase() === 'websocket') {
        if (url.pathname !== WS_PATH) return Response.json({ error: `WebSocket path is ${WS_PATH}`, code: 'not_found' }, { status: 404 });
        if (!simulator.acceptsConnections()) return Response.json({ error: 'unreachable (fault injected)', code: 'unreachable' }, { status: 503 });
        return srv.upgrade(req, { data: {} }) ? undefined : Response.json({ error: 'upgrade failed', code: 'bad_upgrade' }, { status: 400 });
      }
      return handleControl(simulator, req, wsUrl);
    },
    websocket: {
      maxPayloadLength: 1 << 24,
      open: (ws) => {
        ws.data.session = simulator.openSession(ws);
      },
      message: (ws, message) => {
        if (typeof message === 'string') {
          ws.data.session?.closed();
          ws.close(1003, 'binary frames only');
          return;
        }
        ws.data.session?.receive(message);
      },
      close: (ws) => {
        ws.data.session?.closed();
      },
    },
  });
  const port = server.port!;
  const host = hostname === '::1' ? '[::1]' : hostname;
  wsUrl = `ws://${host}:${port}${WS_PATH}`;
  return {
    simulator,
    port,
    url: `http://${host}:${port}`,
    wsUrl,
    rootPublicKey: simulator.rootPublicKey,
    stop: async () => {
      simulator.closeAll();
      await server.stop(true);
    },
  };
}
