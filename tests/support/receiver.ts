/**
 * A customer's webhook receiver on loopback that checks every request's
 * Standard Webhooks signature itself (the `standardwebhooks` library, with
 * the subscription's secret for the path it was posted to).
 * `hang`: accepts and never answers (a receiver that is down behind a load
 * balancer, or stuck), so deliveries stay in flight; `up`: verifies and
 * answers 200, keeping each verified delivery; `fail`: verifies and answers 503
 * (a receiver that is down), counting `failed`.
 */
import { Webhook } from 'standardwebhooks';

export interface Delivery {
  path: string;
  webhookId: string;
  type: string;
  instance: number;
  data: any;
  /** The whole parsed body (billing webhooks carry `tenant` beside `data`). */
  body: any;
}

export interface Receiver {
  mode: 'hang' | 'up' | 'fail';
  /** The `whsec_` secret of each path's subscription (`default` for any other path). */
  secrets: Map<string, string>;
  delivered: Delivery[];
  /** webhook-ids answered 200, in order. */
  answered: string[];
  forged: number;
  hung: number;
  failed: number;
  url(path: string): string;
}

export function webhookReceiver(port: number, cleanup: (() => Promise<unknown>)[], mode: Receiver['mode'] = 'up'): Receiver {
  const state: Receiver = {
    mode,
    secrets: new Map(),
    delivered: [],
    answered: [],
    forged: 0,
    hung: 0,
    failed: 0,
    url: (path) => `http://127.0.0.1:${port}${path}`,
  };
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port,
    idleTimeout: 0,
    async fetch(req) {
      const body = await req.text();
      if (state.mode === 'hang') {
        state.hung++;
        return new Promise<Response>(() => {}); // never answered
      }
      const path = new URL(req.url).pathname;
      const secret = state.secrets.get(path) ?? state.secrets.get('default');
      try {
        if (!secret) throw new Error('no secret for this path');
        new Webhook(secret).verify(body, Object.fromEntries(req.headers));
      } catch {
        state.forged++;
        return new Response('bad signature', { status: 400 });
      }
      if (state.mode === 'fail') {
        state.failed++;
        return new Response('down for maintenance', { status: 503 });
      }
      const webhookId = req.headers.get('webhook-id')!;
      const parsed = JSON.parse(body) as { type: string; instance: number; data: unknown };
      state.answered.push(webhookId);
      state.delivered.push({ path, webhookId, type: parsed.type, instance: parsed.instance, data: parsed.data, body: parsed });
      return new Response('ok');
    },
  });
  cleanup.push(async () => server.stop(true));
  return state;
}
