/**
 * The control API's contract and the WebSocket side's robustness, with an
 * independent client: Baileys' own Noise handler (npm baileys, told the
 * simulator's root key) does the handshake a real client does. (Baileys
 * 7.0.0-rc14 does not really check the chain — its Curve.verify is always
 * true — so the chain itself is checked in crypto.test.ts and by whatsmeow.)
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { Curve, NOISE_WA_HEADER, WA_CERT_DETAILS, makeNoiseHandler, proto, type BinaryNode } from 'baileys';
import { until } from '../../tests/support/poll';
import { startSimulator, type RunningSimulator } from './server';
import { control } from './testing';

let sim: RunningSimulator;
const problems: string[] = [];
beforeAll(() => {
  sim = startSimulator({ port: 0, log: (level, msg, fields) => level === 'warn' && problems.push(`${msg}: ${String(fields?.problem)}`) });
});
afterAll(async () => {
  await sim?.stop();
});

/** A raw WebSocket to the simulator that records what comes back. */
async function rawSocket(url = sim.wsUrl) {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const received: Buffer[] = [];
  const state: { closed?: { code: number } } = {};
  ws.onmessage = (e) => received.push(Buffer.from(e.data as ArrayBuffer));
  ws.onclose = (e) => {
    state.closed = { code: e.code };
  };
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`cannot open ${url}`));
  });
  return { ws, received, state };
}

const silentLogger = { level: 'silent', child: () => silentLogger, trace: () => {}, debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

/** Baileys' client-side Noise handshake up to the transport, registering a new companion. */
async function handshake() {
  const sock = await rawSocket();
  const ephemeral = Curve.generateKeyPair();
  const noiseKey = Curve.generateKeyPair();
  const identity = Curve.generateKeyPair();
  const noise = makeNoiseHandler({ keyPair: ephemeral, NOISE_HEADER: NOISE_WA_HEADER, logger: silentLogger as never });
  const nodes: BinaryNode[] = [];
  let serverHello: Buffer | undefined;
  let transport = false;
  sock.ws.onmessage = (e) => {
    void noise.decodeFrame(Buffer.from(e.data as ArrayBuffer), (f: BinaryNode | Uint8Array) => {
      if (transport) nodes.push(f as BinaryNode);
      else serverHello = Buffer.from(f as Uint8Array);
    });
  };
  sock.ws.send(noise.encodeFrame(proto.HandshakeMessage.encode({ clientHello: { ephemeral: ephemeral.public } }).finish()));
  const hello = await until('the server hello', () => serverHello, 5_000);
  const keyEnc = noise.processHandshake(proto.HandshakeMessage.decode(hello), noiseKey);
  const payload = proto.ClientPayload.encode({ passive: false, pull: false, devicePairingData: { eIdent: identity.public, eKeytype: Buffer.from([5]) } }).finish();
  const payloadEnc = noise.encrypt(payload);
  sock.ws.send(noise.encodeFrame(proto.HandshakeMessage.encode({ clientFinish: { static: keyEnc, payload: payloadEnc } }).finish()));
  await noise.finishInit();
  transport = true;
  return { ...sock, noise, nodes, noiseKey, identity };
}

const stillServing = async () => {
  const info = await control(sim, 'GET', '/info');
  expect(info.status).toBe(200);
};

describe('control API', () => {
  test('GET /info: the WebSocket URL and the 32-byte root key (hex) clients must trust', async () => {
    const info = await control(sim, 'GET', '/info');
    expect(info.status).toBe(200);
    expect(info.body.wsUrl).toBe(`ws://127.0.0.1:${sim.port}/ws/chat`);
    expect(info.body.rootPublicKey).toMatch(/^[0-9a-f]{64}$/);
  });

  test('POST /phones: 201 once, then 200; bad phone, bad JSON and a missing field are 400', async () => {
    expect(await control(sim, 'POST', '/phones', { phone: '+49 151 0000 0001' })).toMatchObject({ status: 201, body: { phone: '4915100000001' } });
    expect(await control(sim, 'POST', '/phones', { phone: '4915100000001' })).toMatchObject({ status: 200, body: { phone: '4915100000001' } });
    expect(await control(sim, 'POST', '/phones', { phone: '12' })).toMatchObject({ status: 400, body: { code: 'invalid_phone' } });
    expect(await control(sim, 'POST', '/phones', '{"phone":')).toMatchObject({ status: 400, body: { code: 'invalid_json' } });
    expect(await control(sim, 'POST', '/phones', [1])).toMatchObject({ status: 400, body: { code: 'invalid_json' } });
    expect(await control(sim, 'POST', '/phones', {})).toMatchObject({ status: 400, body: { code: 'invalid_field' } });
  });

  test('unknown routes and unknown phones are 404 with a JSON error', async () => {
    const notFound = await control(sim, 'GET', '/nope');
    expect(notFound).toMatchObject({ status: 404, body: { code: 'not_found' } });
    expect(typeof notFound.body.error).toBe('string');
    for (const [method, path, body] of [
      ['POST', '/phones/4915199999999/link', { qr: 'a,b,c,d' }],
      ['POST', '/phones/4915199999999/link-code', { code: 'ABCD-EFGH' }],
      ['GET', '/phones/4915199999999/devices', undefined],
      ['DELETE', '/phones/4915199999999/devices/4915199999999:1@s.whatsapp.net', undefined],
    ] as const) {
      expect(await control(sim, method, path, body)).toMatchObject({ status: 404, body: { code: 'unknown_phone' } });
    }
  });

  test('link: malformed QR text 422, an unknown ref 410; link-code: malformed 422, nothing waiting 410; unknown device 404', async () => {
    await control(sim, 'POST', '/phones', { phone: '4915100000002' });
    const key = Buffer.alloc(32, 7).toString('base64');
    for (const qr of ['not a qr', 'ref,abc,def,ghi', `ref,${key},${key}`, `,${key},${key},${key}`]) {
      expect(await control(sim, 'POST', '/phones/4915100000002/link', { qr })).toMatchObject({ status: 422, body: { code: 'malformed_qr' } });
    }
    expect(await control(sim, 'POST', '/phones/4915100000002/link', { qr: `2@unknown,${key},${key},${key}` })).toMatchObject({ status: 410, body: { code: 'expired_ref' } });
    expect(await control(sim, 'POST', '/phones/4915100000002/link', { qr: 42 })).toMatchObject({ status: 400, body: { code: 'invalid_field' } });
    for (const code of ['ABC', 'ABCD-EFG0', 'ABCDEFGHI']) {
      expect(await control(sim, 'POST', '/phones/4915100000002/link-code', { code })).toMatchObject({ status: 422, body: { code: 'malformed_code' } });
    }
    expect(await control(sim, 'POST', '/phones/4915100000002/link-code', { code: 'abcd-efgh' })).toMatchObject({ status: 410, body: { code: 'no_pending_code' } });
    expect(await control(sim, 'GET', '/phones/4915100000002/devices')).toEqual({ status: 200, body: { devices: [] } });
    expect(await control(sim, 'DELETE', '/phones/4915100000002/devices/4915100000002:1@s.whatsapp.net')).toMatchObject({ status: 404, body: { code: 'unknown_device' } });
  });

  test('POST /faults validates its fields (400)', async () => {
    expect(await control(sim, 'POST', '/faults', {})).toMatchObject({ status: 400, body: { code: 'invalid_field' } });
    expect(await control(sim, 'POST', '/faults', { dropConnections: 'yes' })).toMatchObject({ status: 400, body: { code: 'invalid_field' } });
    expect(await control(sim, 'POST', '/faults', { unreachableMs: -1 })).toMatchObject({ status: 400, body: { code: 'invalid_field' } });
    expect(await control(sim, 'POST', '/faults', { unreachableMs: 1.5 })).toMatchObject({ status: 400, body: { code: 'invalid_field' } });
    expect(await control(sim, 'POST', '/faults', 'nope')).toMatchObject({ status: 400, body: { code: 'invalid_json' } });
  });
});

describe('WebSocket side', () => {
  test('a wrong prologue closes the socket; the simulator keeps serving', async () => {
    const s = await rawSocket();
    s.ws.send(Buffer.from('GET / HTTP/1.1\r\n'));
    await until('the socket to close', () => s.state.closed, 5_000);
    expect(s.received).toEqual([]);
    await stillServing();
  });

  test('a garbage handshake (right prologue, junk hello) closes the socket', async () => {
    const s = await rawSocket();
    s.ws.send(Buffer.concat([NOISE_WA_HEADER, Buffer.from([0, 0, 5, 1, 2, 3, 4, 5])]));
    await until('the socket to close', () => s.state.closed, 5_000);
    await stillServing();
  });

  test('a text message closes the socket', async () => {
    const s = await rawSocket();
    s.ws.send('hello');
    await until('the socket to close', () => s.state.closed, 5_000);
    await stillServing();
  });

  test('Baileys completes the handshake and gets QR refs; an undecodable or forged frame afterwards closes the socket', async () => {
    const saved = WA_CERT_DETAILS.PUBLIC_KEY;
    WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(sim.rootPublicKey, 'hex');
    try {
      const c = await handshake();
      const pair = await until('the pair-device request', () => c.nodes.find((n) => n.tag === 'iq'), 5_000);
      const refs = (pair.content as BinaryNode[])[0]!;
      expect(refs.tag).toBe('pair-device');
      expect((refs.content as BinaryNode[]).length).toBe(6);
      // A QR text with the right ref but other keys is refused (422); the ref expires with its socket (410).
      await control(sim, 'POST', '/phones', { phone: '4915100000003' });
      const ref = Buffer.from((refs.content as BinaryNode[])[0]!.content as Uint8Array).toString();
      const other = Buffer.alloc(32, 1).toString('base64');
      const forged = await control(sim, 'POST', '/phones/4915100000003/link', { qr: `${ref},${other},${Buffer.from(c.identity.public).toString("base64")},${other}` });
      expect(forged).toMatchObject({ status: 422, body: { code: 'qr_mismatch' } });
      // an encrypted frame that is not a binary node
      c.ws.send(c.noise.encodeFrame(Buffer.from([0, 0xff, 0xff, 0xff])));
      await until('the socket to close', () => c.state.closed, 5_000);
      const gone = await control(sim, 'POST', '/phones/4915100000003/link', { qr: `${ref},${other},${Buffer.from(c.identity.public).toString("base64")},${other}` });
      expect(gone).toMatchObject({ status: 410, body: { code: 'expired_ref' } });

      const d = await handshake();
      await until('the pair-device request', () => d.nodes.find((n) => n.tag === 'iq'), 5_000);
      // a frame that does not authenticate under the session keys
      d.ws.send(Buffer.from([0, 0, 20, ...Buffer.alloc(20, 9)]));
      await until('the socket to close', () => d.state.closed, 5_000);
    } finally {
      WA_CERT_DETAILS.PUBLIC_KEY = saved;
    }
    expect(problems.length).toBeGreaterThan(0);
    await stillServing();
  });

  test('WebSocket on another path: 404; during an outage fault: 503, then accepted again', async () => {
    await expect(rawSocket(sim.wsUrl.replace('/ws/chat', '/other'))).rejects.toThrow();
    expect((await control(sim, 'POST', '/faults', { unreachableMs: 60_000 })).status).toBe(200);
    const refused = await fetch(sim.wsUrl.replace('ws://', 'http://'), {
      headers: { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' },
    });
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ code: 'unreachable' });
    expect((await control(sim, 'POST', '/faults', { unreachableMs: 0 })).status).toBe(200);
    const s = await rawSocket();
    s.ws.close();
  });
});
