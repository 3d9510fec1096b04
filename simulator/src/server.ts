/**
 * One port for both sides: WebSocket upgrades on /ws/chat (the path
 * whatsmeow and Baileys dial) go to the protocol, everything else to the
 * control API; media uploads and downloads on a second, HTTPS port
 * (media/server.ts). Loopback only.
 */
import type { Server } from 'bun';
import type { Certificates } from './certs';
import { handleControl } from './control';
import { Simulator, type Log } from './simulator';
import type { Session } from './session';
import { startMediaServer, type MediaServer } from './media/server';
import { generateMediaTls } from './media/tls';

export const WS_PATH = '/ws/chat';

export interface RunningSimulator {
  simulator: Simulator;
  port: number;
  /** http://127.0.0.1:port */
  url: string;
  /** ws://127.0.0.1:port/ws/chat */
  wsUrl: string;
  rootPublicKey: string;
  /** The HTTPS media server (upload/download), on its own loopback port. */
  media: MediaServer;
  /** A PEM file with the media server's CA: what a client must trust (Go: SSL_CERT_FILE). */
  mediaCaFile: string;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** 0 picks a free port. */
  port?: number;
  hostname?: '127.0.0.1' | '::1';
  /** The HTTPS media server's port; 0 (default) picks a free one. */
  mediaPort?: number;
  log?: Log;
  certificates?: Certificates;
}

export function startSimulator(opts: StartOptions = {}): RunningSimulator {
  const hostname = opts.hostname ?? '127.0.0.1';
  const tls = generateMediaTls();
  const media = startMediaServer({ hostname, tls, port: opts.mediaPort });
  const simulator = new Simulator({ log: opts.log, certificates: opts.certificates, media });
  const info = () => ({ wsUrl, rootPublicKey: simulator.rootPublicKey, mediaUrl: media.url, mediaCaFile: tls.caFile, mediaCaCertificate: tls.caPem });
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
      return handleControl(simulator, req, info());
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
    media,
    mediaCaFile: tls.caFile,
    stop: async () => {
      simulator.closeAll();
      await server.stop(true);
      await media.stop();
      tls.dispose();
    },
  };
}
