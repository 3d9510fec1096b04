/**
 * The judge: the real whatsmeow worker (go.mau.fi/whatsmeow, unmodified,
 * only told the simulator's address and root key) links, logs in,
 * reconnects and logs out against the simulator (the shared linking suite,
 * src/suites/linking.ts), and checks the simulator's certificate chain.
 * Loopback only.
 */
import { expect, test } from 'bun:test';
import { until } from '../../tests/support/poll';
import { linkingSuite } from './suites/linking';
import { Testbed } from './suites/testbed';
import { WHATSMEOW } from './suites/workers';

const bed = new Testbed([WHATSMEOW], { instance: 301, phone: 4915100000100 });

linkingSuite(WHATSMEOW, bed);

test('whatsmeow: trust: a worker told another root key refuses the simulator (whatsmeow checks the chain) and never shows a QR', async () => {
  const state = await bed.db.createInstance();
  const impostor = { ...bed.sim, rootPublicKey: '11'.repeat(32) };
  const run = bed.start(WHATSMEOW, bed.instanceId(), state, '15550001111', { sim: impostor });
  const reconnecting = await bed.explain(run, () =>
    until('a reconnecting state', () => run.frames().find((f) => f.type === 'state' && f.state === 'reconnecting'), 30_000),
  );
  expect(reconnecting).toMatchObject({ reason: expect.stringContaining('failed to verify server cert') });
  expect(run.qrCodes()).toEqual([]);
}, 60_000);
