/**
 * A second, independent client: stock Baileys (npm baileys@7.0.0-rc14,
 * makeWASocket with in-memory auth) links by QR, reconnects with its saved
 * credentials without a new link, and is logged out when the phone unlinks
 * it. Loopback only.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import makeWASocket, { DisconnectReason, initAuthCreds, type AuthenticationCreds, type SignalKeyStore } from 'baileys';
import { until } from '../../tests/support/poll';
import { startSimulator, type RunningSimulator } from './server';
import { control } from './testing';

let sim: RunningSimulator;
beforeAll(() => {
  sim = startSimulator({ port: 0 });
});
afterAll(async () => {
  await sim?.stop();
});

const noop = () => {};
const logger = { level: 'silent', child: () => logger, trace: noop, debug: noop, info: noop, warn: noop, error: noop, fatal: noop };

function memoryKeys(): SignalKeyStore {
  const data = new Map<string, unknown>();
  return {
    get: async (type, ids) => Object.fromEntries(ids.map((id) => [id, data.get(`${type}:${id}`)])) as never,
    set: async (update) => {
      for (const [type, byId] of Object.entries(update)) for (const [id, value] of Object.entries(byId ?? {})) data.set(`${type}:${id}`, value);
    },
  };
}

interface Run {
  qrs: string[];
  open: boolean;
  closedWith: number[];
  end(): void;
}

function connect(creds: AuthenticationCreds, keys: SignalKeyStore): Run {
  const run: Run = { qrs: [], open: false, closedWith: [], end: noop };
  const sock = makeWASocket({ waWebSocketUrl: sim.wsUrl, auth: { creds, keys }, logger: logger as never, markOnlineOnConnect: false });
  run.end = () => sock.end(undefined);
  sock.ev.on('creds.update', (u) => Object.assign(creds, u));
  sock.ev.on('connection.update', (u) => {
    if (u.qr) run.qrs.push(u.qr);
    if (u.connection === 'open') run.open = true;
    if (u.connection === 'close') {
      run.open = false;
      run.closedWith.push((u.lastDisconnect?.error as { output?: { statusCode?: number } } | undefined)?.output?.statusCode ?? 0);
    }
  });
  return run;
}

test('stock Baileys: QR link → open; again with its saved credentials → open with no QR; unlinked → logged out (401)', async () => {
  const phone = '4915100005555';
  await control(sim, 'POST', '/phones', { phone });
  const creds = initAuthCreds();
  const keys = memoryKeys();
  const first = connect(creds, keys);
  try {
    const qr = await until('a QR from Baileys', () => first.qrs[0], 15_000);
    const link = await control(sim, 'POST', `/phones/${phone}/link`, { qr });
    expect(link.status).toBe(200);
    // Baileys does not reconnect by itself after the 515 restart: the application does, as here.
    await until('the restart after linking', () => first.closedWith.includes(DisconnectReason.restartRequired), 15_000);
  } finally {
    first.end();
  }
  expect(creds.me?.id).toBe(`${phone}:1@s.whatsapp.net`);
  const second = connect(creds, keys);
  try {
    await until('Baileys to log in', () => second.open, 15_000);
    const devices = await control(sim, 'GET', `/phones/${phone}/devices`);
    expect(devices.body.devices).toEqual([expect.objectContaining({ jid: `${phone}:1@s.whatsapp.net`, connected: true })]);
    second.end();
    await until('the device to be offline', async () => (await control(sim, 'GET', `/phones/${phone}/devices`)).body.devices[0]?.connected === false);
    const third = connect(creds, keys);
    try {
      await until('Baileys to log in again', () => third.open, 15_000);
      expect(third.qrs).toEqual([]);
      expect((await control(sim, 'DELETE', `/phones/${phone}/devices/${phone}:1@s.whatsapp.net`)).status).toBe(200);
      await until('the logged-out close', () => third.closedWith.includes(DisconnectReason.loggedOut), 15_000);
    } finally {
      third.end();
    }
  } finally {
    second.end();
  }
}, 60_000);
