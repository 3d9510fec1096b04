/**
 * One worker's linking and session life against the simulator: QR and
 * pairing-code links, restore after kill -9 with no new link, unlink (while
 * up and while down), one live socket per device, faults, logout. Each
 * worker's test file calls `linkingSuite` with its WorkerUnderTest and its
 * Testbed.
 */
import { describe, expect, test } from 'bun:test';
import { until } from '../../../tests/support/poll';
import { connected, stateFrames, type Testbed } from './testbed';
import type { WorkerUnderTest } from './workers';

export function linkingSuite(worker: WorkerUnderTest, bed: Testbed): void {
  /** Phones created as +number: the simulator takes that form too. */
  const linkedByQr = () => bed.linkedByQr(worker, { plus: true });
  const jidOf = (phone: string) => new RegExp(`^${phone}:\\d+@s\\.whatsapp\\.net$`);

  describe(`${worker.name}: linking and the session`, () => {
    test('QR: qr → pairing → connected ("connected to WhatsApp"); the phone lists the device', async () => {
      const { phone, run, deviceJid } = await linkedByQr();
      expect(deviceJid).toMatch(jidOf(phone));
      const states = run.states();
      expect(states.indexOf('qr')).toBeGreaterThanOrEqual(0);
      expect(states.indexOf('pairing')).toBeGreaterThan(states.indexOf('qr'));
      expect(states.lastIndexOf('connected')).toBeGreaterThan(states.indexOf('pairing'));
      expect(stateFrames(run).at(-1)).toMatchObject({ state: 'connected', reason: 'connected to WhatsApp' });
      const devices = await bed.control('GET', `/phones/${phone}/devices`);
      expect(devices.status).toBe(200);
      expect(devices.body.devices).toEqual([expect.objectContaining({ jid: deviceJid, connected: true })]);
    }, 90_000);

    test('restore: kill -9 of a linked worker; a new worker on the same schema connects ("session restored") with no QR', async () => {
      const { phone, state, instanceId, run, deviceJid } = await linkedByQr();
      run.proc.kill('SIGKILL');
      await run.proc.exited;
      await until('the simulator to see the device disconnected', async () => (await bed.deviceList(phone))[0]?.connected === false);
      const again = bed.start(worker, instanceId, state, phone);
      await bed.explain(again, () => connected(again));
      expect(again.qrCodes()).toEqual([]);
      expect(again.states()).not.toContain('qr');
      expect(stateFrames(again).at(-1)).toMatchObject({ state: 'connected', reason: 'session restored' });
      expect(await bed.deviceList(phone)).toEqual([expect.objectContaining({ jid: deviceJid, connected: true })]);
    }, 90_000);

    test('unlink: the phone removes the device → logged_out, then a fresh QR', async () => {
      const { phone, run, deviceJid } = await linkedByQr();
      const qrsBefore = run.qrCodes().length;
      const removed = await bed.control('DELETE', `/phones/${phone}/devices/${encodeURIComponent(deviceJid)}`);
      expect(removed.status).toBe(200);
      expect(removed.body).toEqual({ deviceJid, wasConnected: true });
      await bed.explain(run, () => until('logged_out', () => run.states().includes('logged_out'), 30_000));
      expect(stateFrames(run).find((s) => s.state === 'logged_out')?.reason).toContain('logged out');
      await bed.explain(run, () => until('a new QR after the logout', () => run.qrCodes().length > qrsBefore, 30_000));
      expect(run.state()).toBe('qr');
      expect(await bed.deviceList(phone)).toEqual([]);
    }, 90_000);

    test('unlink while the worker is down: the next start is refused (401) → logged_out, then a QR, never connected', async () => {
      const { phone, state, instanceId, run, deviceJid } = await linkedByQr();
      run.proc.kill('SIGKILL');
      await run.proc.exited;
      expect((await bed.control('DELETE', `/phones/${phone}/devices/${encodeURIComponent(deviceJid)}`)).status).toBe(200);
      const again = bed.start(worker, instanceId, state, phone);
      await bed.explain(again, () => until('logged_out', () => again.states().includes('logged_out'), 30_000));
      await bed.explain(again, () => until('a fresh QR', () => again.qrCodes().length > 0, 30_000));
      expect(again.states()).not.toContain('connected');
    }, 90_000);

    test('pairing code: pair-code → an 8-character code; a wrong code is refused, the right one links → connected', async () => {
      const phone = await bed.newPhone(true);
      const state = await bed.db.createInstance();
      const run = bed.start(worker, bed.instanceId(), state, phone);
      await bed.explain(run, async () => {
        await until('the login socket (a QR)', () => run.qrCodes()[0], 30_000);
        const result = await bed.command(run, 'pair-code', { phone });
        expect(result).toMatchObject({ ok: true });
        const code = String(result.data?.code);
        expect(code).toMatch(/^[1-9A-HJ-NP-TV-Z]{8}$/);
        expect(run.state()).toBe('pairing');
        // a wrong code is refused and the right one still works afterwards
        const wrong = code === 'AAAAAAAA' ? 'BBBBBBBB' : 'AAAAAAAA';
        const refused = await bed.control('POST', `/phones/${phone}/link-code`, { code: wrong });
        expect(refused.status).toBe(410);
        expect(refused.body.code).toBe('unknown_code');
        const link = await bed.control('POST', `/phones/${phone}/link-code`, { code: `${code.slice(0, 4)}-${code.slice(4)}` });
        expect(link.status).toBe(200);
        expect(link.body.deviceJid).toMatch(jidOf(phone));
        await connected(run);
      });
      expect(run.states()).toContain('pairing');
      expect((await bed.command(run, 'pair-code', { phone })).error?.code).toBe('already_connected');
    }, 120_000);

    test('one live socket per device: a second worker on the same keys takes over → the first is failed ("replaced") and stays down', async () => {
      const { phone, state, run } = await linkedByQr();
      // Same schema (same device keys), another instance id (its own lock): a second client for one device.
      const second = bed.start(worker, bed.instanceId(), state, phone);
      await bed.explain(second, () => connected(second));
      await bed.explain(run, () => until('the first worker to be replaced', () => run.state() === 'failed', 30_000));
      expect(stateFrames(run).at(-1)?.reason).toContain('replaced');
      // Never a reconnect loop: the first stays failed while the second stays connected.
      const seen = run.states().length;
      const deadline = Date.now() + 3_000;
      while (Date.now() < deadline) {
        expect(run.states().length).toBe(seen);
        await Bun.sleep(100);
      }
      expect(second.state()).toBe('connected');
      expect(await bed.deviceList(phone)).toEqual([expect.objectContaining({ connected: true, replaced: 1 })]);
    }, 120_000);

    test('faults: dropped connections and an outage → reconnecting, then connected again without a new link', async () => {
      const { phone, run } = await linkedByQr();
      const linkedStates = run.states().length;
      const fault = await bed.control('POST', '/faults', { dropConnections: true, unreachableMs: 3_000 });
      expect(fault.status).toBe(200);
      expect(fault.body.dropped).toBeGreaterThanOrEqual(1);
      await bed.explain(run, () => until('reconnecting', () => run.states().slice(linkedStates).includes('reconnecting'), 30_000));
      await bed.explain(run, () => until('connected again', () => run.states().slice(linkedStates).includes('connected'), 60_000));
      const after = run.states().slice(linkedStates);
      expect(after.indexOf('connected')).toBeGreaterThan(after.indexOf('reconnecting'));
      expect(after).not.toContain('qr');
      expect(await bed.deviceList(phone)).toHaveLength(1);
    }, 120_000);

    test('logout command: the companion removes itself, the phone no longer lists it, then a fresh QR', async () => {
      const { phone, run } = await linkedByQr();
      const qrsBefore = run.qrCodes().length;
      const result = await bed.command(run, 'logout', {});
      expect(result).toMatchObject({ ok: true, data: { state: 'logged_out' } });
      await until('the device to be gone', async () => (await bed.deviceList(phone)).length === 0);
      await bed.explain(run, () => until('a fresh QR', () => run.qrCodes().length > qrsBefore, 30_000));
      expect(run.states().filter((s) => s === 'logged_out')).toHaveLength(1);
    }, 90_000);
  });
}
