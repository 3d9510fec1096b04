/**
 * The fake's control API under `/_fake/` (JSON), a thin layer over the same
 * methods tests call in process, so the fake can run standalone (main.ts).
 * Errors answer `{error: message}` with 400 (bad input) or 404 (unknown id).
 */
import type { FakeApp, GraphState } from './server';

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v)), {
    status,
    headers: { 'content-type': 'application/json' },
  });

class ControlError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function appById(state: GraphState, id: unknown): FakeApp {
  const app = state.apps.find((a) => a.id === id);
  if (!app) throw new ControlError(404, `unknown app ${String(id)}`);
  return app;
}

function bytesFromBase64(v: unknown): Uint8Array | undefined {
  return typeof v === 'string' ? new Uint8Array(Buffer.from(v, 'base64')) : undefined;
}

export async function handleControl(state: GraphState, req: Request, url: URL): Promise<Response> {
  try {
    let body: any = {};
    if (req.method !== 'GET') {
      const text = await req.text();
      if (text) {
        try {
          body = JSON.parse(text);
        } catch {
          throw new ControlError(400, 'body must be JSON');
        }
      }
    }
    const route = `${req.method} ${url.pathname.replace(/\/+$/, '')}`;
    const q = url.searchParams;
    switch (route) {
      case 'POST /_fake/apps':
        return json(201, state.addApp(body));
      case 'GET /_fake/apps':
        return json(200, state.apps);
      case 'POST /_fake/phone-numbers': {
        const { appId, ...rest } = body;
        state.addPhoneNumber({ ...rest, app: appById(state, appId) });
        return json(201, { phoneNumberId: rest.phoneNumberId });
      }
      case 'POST /_fake/tokens':
        state.addToken(String(body.token), String(body.wabaId));
        return json(201, { ok: true });
      case 'POST /_fake/tokens/expire':
        state.expireToken(String(body.token));
        return json(200, { ok: true });
      case 'POST /_fake/templates': {
        const { wabaId, ...t } = body;
        state.addTemplate(String(wabaId), t);
        return json(201, { ok: true });
      }
      case 'POST /_fake/errors':
        state.injectError(body);
        return json(201, { ok: true });
      case 'POST /_fake/status-errors':
        state.injectStatusError(body);
        return json(201, { ok: true });
      case 'POST /_fake/auto-statuses':
        state.autoStatuses = body.on !== false;
        return json(200, { on: state.autoStatuses });
      case 'POST /_fake/push/message': {
        const { phoneNumberId, mediaBase64, ...m } = body;
        return json(200, await state.pushMessage(String(phoneNumberId), { ...m, mediaBytes: bytesFromBase64(mediaBase64) ?? m.mediaBytes }));
      }
      case 'POST /_fake/push/status': {
        const { phoneNumberId, ...s } = body;
        return json(200, await state.pushStatus(String(phoneNumberId), s));
      }
      case 'POST /_fake/push/raw':
        return json(200, await state.pushRaw(appById(state, body.appId), String(body.body ?? ''), { signature: body.signature }));
      case 'POST /_fake/verify-callback':
        return json(200, await state.verifyCallback(appById(state, body.appId)));
      case 'GET /_fake/sent':
        return json(200, state.sent(q.get('phoneNumberId') ?? undefined));
      case 'GET /_fake/read-receipts':
        return json(200, state.readReceipts(q.get('phoneNumberId') ?? undefined));
      case 'GET /_fake/requests':
        return json(200, state.requests);
    }
    const media = /^GET \/_fake\/media\/([^/]+)$/.exec(route);
    if (media) {
      const m = state.media(decodeURIComponent(media[1]!));
      if (!m) throw new ControlError(404, `unknown media ${media[1]}`);
      return json(200, { mimeType: m.mimeType, sha256: m.sha256, size: m.bytes.length, base64: Buffer.from(m.bytes).toString('base64') });
    }
    const patchApp = /^PATCH \/_fake\/apps\/([^/]+)$/.exec(route);
    if (patchApp) {
      const app = appById(state, patchApp[1]);
      if (body.callbackUrl !== undefined) {
        const probe = state.addApp({ appSecret: 'probe', callbackUrl: body.callbackUrl }); // validates loopback
        state.apps.splice(state.apps.indexOf(probe), 1);
        app.callbackUrl = body.callbackUrl;
      }
      if (body.verifyToken !== undefined) app.verifyToken = body.verifyToken;
      if (body.appSecret !== undefined) app.appSecret = body.appSecret;
      return json(200, app);
    }
    throw new ControlError(404, `no control route ${route}`);
  } catch (err) {
    const status = err instanceof ControlError ? err.status : 400;
    return json(status, { error: (err as Error).message });
  }
}
