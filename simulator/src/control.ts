/**
 * The control API (HTTP, JSON): what tests and tools use to play the phone.
 * Every error is `{error, code}` with its status; routes:
 *   GET    /info                                  {wsUrl, rootPublicKey, mediaUrl, mediaCaFile, mediaCaCertificate}
 *   POST   /phones {phone}                        201 created, 200 exists
 *   POST   /phones/{phone}/link {qr}              the phone scans a QR text
 *   POST   /phones/{phone}/link-code {code}       the phone enters a pairing code
 *   GET    /phones/{phone}/devices                linked devices, connected or not
 *   DELETE /phones/{phone}/devices/{deviceJid}    the phone unlinks a device
 *   POST   /faults {dropConnections?, unreachableMs?}
 *   POST   /phones/{phone}/messages {to, type, …}  the phone sends a message → {id}
 *   GET    /phones/{phone}/messages?since=        what the phone received (since: a seq cursor or an ISO time)
 *   GET    /phones/{phone}/sent                   what the phone sent, with receipts and acks
 *   POST   /phones/{phone}/read {chat, ids}       read receipts
 *   PUT    /phones/{phone}/settings {autoDeliver?, autoRead?}
 */
import { parseOutgoing } from './messages/content';
import { SimulatorError, type Simulator } from './simulator';
import { normalizePhone } from './state';

const json = (status: number, body: unknown): Response =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

const fail = (status: number, code: string, error: string): Response => json(status, { error, code });

/** The JSON object body, or a SimulatorError (400). */
async function body(req: Request): Promise<Record<string, unknown>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await req.text());
  } catch {
    throw new SimulatorError(400, 'invalid_json', 'the body must be a JSON object');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new SimulatorError(400, 'invalid_json', 'the body must be a JSON object');
  return parsed as Record<string, unknown>;
}

function requireString(b: Record<string, unknown>, field: string): string {
  const v = b[field];
  if (typeof v !== 'string' || !v.trim()) throw new SimulatorError(400, 'invalid_field', `${field} must be a non-empty string`);
  return v;
}

/** `since`: digits are a cursor (the `seq` of the last message seen), anything else an ISO time. */
function parseSince(v: string | null): { seq?: number; time?: number } | undefined {
  if (v === null || v === '') return undefined;
  if (/^\d+$/.test(v)) return { seq: Number(v) };
  const time = Date.parse(v);
  if (Number.isNaN(time)) throw new SimulatorError(400, 'invalid_field', 'since must be a seq cursor (digits) or an ISO 8601 time');
  return { time };
}

async function phoneRoutes(sim: Simulator, req: Request, url: URL, phone: string, route: string): Promise<Response | undefined> {
  const method = req.method;
  if (route === 'messages') {
    if (method === 'POST') return json(200, await sim.phone(phone).send(parseOutgoing(await body(req))));
    if (method === 'GET') {
      const since = parseSince(url.searchParams.get('since'));
      return json(200, sim.phone(phone).messages(since));
    }
    return fail(405, 'method_not_allowed', 'use GET or POST');
  }
  if (route === 'sent') {
    if (method !== 'GET') return fail(405, 'method_not_allowed', 'use GET');
    return json(200, sim.phone(phone).sentMessages());
  }
  if (route === 'read') {
    if (method !== 'POST') return fail(405, 'method_not_allowed', 'use POST');
    const b = await body(req);
    const chat = normalizePhone(b.chat);
    if (!chat) throw new SimulatorError(400, 'invalid_phone', 'chat must be the phone number of the sender');
    const ids = b.ids;
    if (!Array.isArray(ids) || !ids.length || ids.length > 100 || ids.some((i) => typeof i !== 'string' || !i)) {
      throw new SimulatorError(400, 'invalid_field', 'ids must be 1 to 100 message ids');
    }
    return json(200, sim.phone(phone).read(chat, ids as string[]));
  }
  if (route === 'settings') {
    if (method !== 'PUT') return fail(405, 'method_not_allowed', 'use PUT');
    const b = await body(req);
    const target = sim.phone(phone);
    for (const k of ['autoDeliver', 'autoRead'] as const) {
      if (b[k] !== undefined && typeof b[k] !== 'boolean') throw new SimulatorError(400, 'invalid_field', `${k} must be a boolean`);
    }
    if (b.autoDeliver === undefined && b.autoRead === undefined) throw new SimulatorError(400, 'invalid_field', 'give autoDeliver and/or autoRead');
    target.settings = { autoDeliver: (b.autoDeliver as boolean | undefined) ?? target.settings.autoDeliver, autoRead: (b.autoRead as boolean | undefined) ?? target.settings.autoRead };
    return json(200, target.settings);
  }
  return undefined;
}

export async function handleControl(sim: Simulator, req: Request, info: Record<string, unknown>): Promise<Response> {
  const url = new URL(req.url);
  const parts = url.pathname.split('/').filter(Boolean).map((p) => decodeURIComponent(p));
  const method = req.method;
  try {
    if (parts.length === 1 && parts[0] === 'info') {
      if (method !== 'GET') return fail(405, 'method_not_allowed', 'use GET');
      return json(200, info);
    }
    if (parts.length === 1 && parts[0] === 'faults') {
      if (method !== 'POST') return fail(405, 'method_not_allowed', 'use POST');
      const b = await body(req);
      const drop = b.dropConnections;
      const ms = b.unreachableMs;
      if (drop !== undefined && typeof drop !== 'boolean') throw new SimulatorError(400, 'invalid_field', 'dropConnections must be a boolean');
      if (ms !== undefined && (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 0 || ms > 3_600_000)) {
        throw new SimulatorError(400, 'invalid_field', 'unreachableMs must be an integer from 0 to 3600000');
      }
      if (drop === undefined && ms === undefined) throw new SimulatorError(400, 'invalid_field', 'give dropConnections and/or unreachableMs');
      return json(200, sim.faults({ dropConnections: drop, unreachableMs: ms }));
    }
    if (parts[0] === 'phones') {
      if (parts.length === 1) {
        if (method !== 'POST') return fail(405, 'method_not_allowed', 'use POST');
        const out = sim.createPhone(requireString(await body(req), 'phone'));
        return json(out.created ? 201 : 200, { phone: out.phone, lid: out.lid });
      }
      const phone = parts[1]!;
      if (parts.length === 3 && parts[2] === 'link') {
        if (method !== 'POST') return fail(405, 'method_not_allowed', 'use POST');
        const b = await body(req);
        const qr = requireString(b, 'qr');
        return json(200, await sim.linkByQr(phone, qr));
      }
      if (parts.length === 3 && parts[2] === 'link-code') {
        if (method !== 'POST') return fail(405, 'method_not_allowed', 'use POST');
        const b = await body(req);
        const code = requireString(b, 'code');
        return json(200, await sim.linkByCode(phone, code));
      }
      if (parts.length === 3 && parts[2] === 'devices') {
        if (method !== 'GET') return fail(405, 'method_not_allowed', 'use GET');
        return json(200, { devices: sim.devices(phone) });
      }
      if (parts.length === 3) {
        const answer = await phoneRoutes(sim, req, url, phone, parts[2]!);
        if (answer) return answer;
      }
      if (parts.length === 4 && parts[2] === 'devices') {
        if (method !== 'DELETE') return fail(405, 'method_not_allowed', 'use DELETE');
        return json(200, sim.unlink(phone, parts[3]!));
      }
    }
    return fail(404, 'not_found', `no route ${method} ${url.pathname}`);
  } catch (err) {
    if (err instanceof SimulatorError) return fail(err.status, err.code, err.message);
    return fail(500, 'internal', err instanceof Error ? err.message : String(err));
  }
}
