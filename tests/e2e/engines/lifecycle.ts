/**
 * One engine's session life end to end, as a user runs it: a real gateway
 * process, the engine's real worker (the unmodified WhatsApp library) and the
 * in-repo WhatsApp simulator, all on loopback. The simulator is told apart
 * from WhatsApp only by settings a user could set as well (WHATSMEOW_WS_URL
 * and WHATSMEOW_ROOT_PUBLIC_KEY, BAILEYS_WS_URL). Each engine's test file
 * calls `lifecycleSuite` with its EngineUnderTest.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import jsQR from 'jsqr';
import { PNG } from 'pngjs';
import { LABELS } from '../../../gateway/src/engines/docker-spec';
import { dockerAvailable, removeLabelled } from '../../support/docker';
import { gatewayApi, startGatewayProcess, waitConnected, workerPids as findWorkerPids, type GatewayProcess } from '../../support/gateway-process';
import { until } from '../../support/poll';
import * as wm from '../../support/whatsmeow';
import type { EngineUnderTest } from './engines';

export function lifecycleSuite(engine: EngineUnderTest): void {
  describe(`${engine.provider}: session life`, () => {
    const api = gatewayApi;
    const cleanup: (() => Promise<unknown>)[] = [];
    let stack: wm.WhatsmeowStack;
    let docker = false;
    let g: GatewayProcess;
    let key: string;

    beforeAll(async () => {
      docker = await dockerAvailable();
      stack = await wm.whatsmeowStack(cleanup, { docker });
      ({ g, key } = await wm.startStackGateway(stack, cleanup, `${engine.provider}@example.com`));
      expect((await api(g, 'POST', '/admin/nodes', undefined, { name: 'p2', engine: 'process' })).status).toBe(200);
    });

    afterAll(async () => {
      for (const fn of cleanup.reverse()) await fn().catch(() => {});
      if (docker) await removeLabelled(`${LABELS.gateway}=${stack.gatewayId}`);
    });

    const newNumber = (node?: string) => wm.newNumber(stack, g, key, { node, provider: engine.provider });
    const control = (method: string, path: string, body?: unknown) => wm.control(stack, method, path, body);
    const qrText = (id: number) => wm.qrText(g, key, id);
    const linkByQr = (phone: string, id: number) => wm.linkByQr(stack, g, key, phone, id);
    const eventsOf = (id: number, type: string, after = 0) => wm.eventsOf(stack, id, type, after);
    const lastEventId = (id: number) => wm.lastEventId(stack, id);

    /** Pids of the gateway's worker processes for an instance (its children: containers not counted). */
    const workerPids = (id: number) => findWorkerPids(id, engine.program, g.proc.pid);

    /** Connected again after `since` with "session restored", and no QR offered in between. */
    async function restoredSince(id: number, since: number, timeoutMs = 30_000): Promise<void> {
      const back = await until(
        `instance ${id} restored`,
        async () => {
          const r = await api(g, 'GET', `/api/instances/${id}`, key);
          return r.body?.status === 'running' && r.body?.state === 'connected' && r.body.stateReason === 'session restored' && r.body;
        },
        timeoutMs,
        100,
      );
      expect(back.stateReason).toBe('session restored');
      expect(await eventsOf(id, 'instance.qr', since)).toEqual([]);
    }

    test('QR: the PNG and the JSON carry the same code; the phone scans it; connected; the QR route then answers 409', async () => {
      const { phone, id } = await newNumber();
      const text = await qrText(id);
      const res = await fetch(`${g.url}/api/instances/${id}/qr`, { headers: { authorization: `Bearer ${key}` } });
      expect(res.headers.get('content-type')).toBe('image/png');
      const png = PNG.sync.read(Buffer.from(await res.arrayBuffer()));
      const decoded = jsQR(new Uint8ClampedArray(png.data), png.width, png.height);
      // The QR may have rotated between the two calls: both are this worker's, so the phone takes the image's.
      expect(decoded?.data.split(',').slice(1)).toEqual(text.split(',').slice(1));
      const link = await control('POST', `/phones/${phone}/link`, { qr: decoded!.data });
      expect(link.status).toBe(200);
      const up = await waitConnected(g, id, key, 30_000);
      expect(up.stateReason).toBe('connected to WhatsApp');

      const states = (await eventsOf(id, 'instance.status')).map((e) => e.data.state);
      expect(states.indexOf('qr')).toBeGreaterThanOrEqual(0);
      expect(states.lastIndexOf('connected')).toBeGreaterThan(states.indexOf('qr'));
      expect(states).toContain('pairing');
      const qr = await api(g, 'GET', `/api/instances/${id}/qr`, key);
      expect(qr.status).toBe(409);
      expect(qr.body.code).toBe('already_connected');
      const devices = await control('GET', `/phones/${phone}/devices`);
      expect(devices.body.devices).toEqual([expect.objectContaining({ jid: link.body.deviceJid, connected: true })]);
    }, 90_000);

    test('pairing code: the code the gateway gives, typed on the phone, links the number', async () => {
      const { phone, id } = await newNumber();
      await qrText(id); // the login socket is up
      const code = await api(g, 'POST', `/api/instances/${id}/pair-code`, key, { phone: `+${phone}` });
      expect(code.status).toBe(200);
      expect(code.body.code).toMatch(/^[A-Z0-9]{8}$/);
      const wrong = await control('POST', `/phones/${phone}/link-code`, { code: code.body.code === 'AAAAAAAA' ? 'BBBBBBBB' : 'AAAAAAAA' });
      expect(wrong.status).toBe(410);
      const linked = await control('POST', `/phones/${phone}/link-code`, { code: code.body.code });
      expect(linked.status).toBe(200);
      await waitConnected(g, id, key, 30_000);
      expect((await api(g, 'POST', `/api/instances/${id}/pair-code`, key, { phone: `+${phone}` })).status).toBe(409);
    }, 90_000);

    test('kill -9 of the worker, then a gateway SIGKILL: connected again each time with "session restored" and no QR', async () => {
      const { phone, id } = await newNumber();
      await linkByQr(phone, id);

      const [pid] = await workerPids(id);
      expect(pid).toBeGreaterThan(0);
      let since = await lastEventId(id);
      process.kill(pid!, 'SIGKILL');
      await until('a new worker', async () => (await workerPids(id)).some((p) => p !== pid), 15_000);
      await restoredSince(id, since);

      since = await lastEventId(id);
      await g.stop('SIGKILL');
      g = await startGatewayProcess(stack.env, cleanup);
      await restoredSince(id, since);
      expect(await workerPids(id)).toHaveLength(1);
    }, 120_000);

    test('moves keep the session: to another process node and, with Docker, to a docker node and back', async () => {
      const { phone, id } = await newNumber('local');
      await linkByQr(phone, id);
      let since = await lastEventId(id);
      const toP2 = await api(g, 'POST', `/api/instances/${id}/migrate`, key, { target_node: 'p2' });
      expect(toP2).toMatchObject({ status: 200 });
      expect(toP2.body).toMatchObject({ from: 'local', to: 'p2' });
      await restoredSince(id, since);
      if (!docker) return;
      expect((await api(g, 'POST', '/admin/nodes', undefined, { name: 'dock', engine: 'docker', endpoint: 'unix:///var/run/docker.sock' })).status).toBe(200);
      since = await lastEventId(id);
      const toDock = await api(g, 'POST', `/api/instances/${id}/migrate`, key, { target_node: 'dock' });
      expect(toDock).toMatchObject({ status: 200 });
      await restoredSince(id, since);
      expect(await workerPids(id)).toEqual([]); // the process worker is gone; the container holds the session
      since = await lastEventId(id);
      expect(await api(g, 'POST', `/api/instances/${id}/migrate`, key, { target_node: 'local' })).toMatchObject({ status: 200 });
      await restoredSince(id, since);
    }, 180_000);

    test('dropped connections and a 10 s outage: reconnecting with a reason, then connected, no new link', async () => {
      const { phone, id } = await newNumber();
      const jid = await linkByQr(phone, id);
      const since = await lastEventId(id);
      const fault = await control('POST', '/faults', { dropConnections: true, unreachableMs: 10_000 });
      expect(fault.status).toBe(200);
      const down = await until('reconnecting', async () => (await eventsOf(id, 'instance.status', since)).find((e) => e.data.state === 'reconnecting'), 20_000);
      expect(down.data.stateReason).toMatch(engine.reconnectingReason);
      await until('connected after the outage', async () => (await eventsOf(id, 'instance.status', down.id)).some((e) => e.data.state === 'connected'), 60_000, 200);
      await waitConnected(g, id, key);
      expect(await eventsOf(id, 'instance.qr', since)).toEqual([]);
      const devices = await control('GET', `/phones/${phone}/devices`);
      expect(devices.body.devices).toEqual([expect.objectContaining({ jid, connected: true })]);
    }, 120_000);

    test('the phone unlinks the device: logged_out with a reason and an event, the session store is cleared, a fresh QR follows', async () => {
      const { phone, id } = await newNumber();
      const jid = await linkByQr(phone, id);
      expect(await engine.sessionRows(stack.db.database.sql, id)).toBe(1); // the linked session, stored
      const since = await lastEventId(id);
      const removed = await control('DELETE', `/phones/${phone}/devices/${encodeURIComponent(jid)}`);
      expect(removed.status).toBe(200);
      const out = await until('logged_out', async () => (await eventsOf(id, 'instance.status', since)).find((e) => e.data.state === 'logged_out'), 20_000);
      expect(out.data.stateReason).toBe(engine.unlinkedReason);
      // A new QR: the next link starts from nothing.
      const fresh = await qrText(id);
      expect(fresh.split(',')[0]).toBeTruthy();
      expect(await engine.sessionRows(stack.db.database.sql, id)).toBe(0);
      const r = await api(g, 'GET', `/api/instances/${id}`, key);
      expect(r.body).toMatchObject({ state: 'qr' });
      // The old device stays gone; scanning the new QR links a new one.
      const again = await control('POST', `/phones/${phone}/link`, { qr: fresh });
      expect(again.status).toBe(200);
      expect(again.body.deviceJid).not.toBe(jid);
      await waitConnected(g, id, key, 30_000);
    }, 90_000);

    test('through every kill, restart and move above, no device ever had a second live connection', async () => {
      expect(stack.phones.length).toBeGreaterThanOrEqual(6);
      for (const phone of stack.phones) {
        const { devices } = (await control('GET', `/phones/${phone}/devices`)).body as { devices: { jid: string; replaced: number }[] };
        // The simulator counts every login that found another socket of the same device still open.
        for (const d of devices) expect({ jid: d.jid, replaced: d.replaced }).toEqual({ jid: d.jid, replaced: 0 });
      }
    });
  });
}
