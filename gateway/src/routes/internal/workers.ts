import { Elysia } from 'elysia';
import type { ServerWebSocket } from 'bun';
import type { AppDeps } from '../../http/context';
import type { WorkerSocket } from '../../workers/hub';
import { WORKER_WS_PATH } from '../../../../workers/protocol/frames';

/**
 * The WebSocket workers dial (workers/protocol/README.md). Authentication is
 * the hello frame's instance token, not an HTTP header.
 */
export function workerSocketRoute({ runtime }: AppDeps) {
  const hub = runtime.hub;
  const sockets = new WeakMap<object, WorkerSocket>();
  const wrap = (raw: ServerWebSocket<unknown>): WorkerSocket => {
    let socket = sockets.get(raw);
    if (!socket) {
      socket = { send: (text) => void raw.send(text), close: (code, reason) => raw.close(code, reason) };
      sockets.set(raw, socket);
    }
    return socket;
  };
  return new Elysia({ name: 'internal-workers' }).ws(WORKER_WS_PATH, {
    detail: { hide: true },
    open: (ws) => hub.open(wrap(ws.raw as ServerWebSocket<unknown>)),
    message: (ws, message) => hub.message(wrap(ws.raw as ServerWebSocket<unknown>), message),
    close: (ws) => hub.close(wrap(ws.raw as ServerWebSocket<unknown>)),
  });
}
