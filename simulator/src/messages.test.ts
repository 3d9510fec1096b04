/**
 * The judge for messages: the real whatsmeow worker (unmodified library,
 * fake gateway, real Postgres) sends every message type to a simulated
 * phone and receives every type from it, with Signal sessions on both
 * sides, receipts, media over HTTPS (the worker trusts the simulator's CA
 * through SSL_CERT_FILE only), and two linked workers talk to each other
 * (the shared suites, src/suites/messaging.ts). Loopback only.
 */
import { expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { exchangeSuite, messagingSuite } from './suites/messaging';
import { Testbed } from './suites/testbed';
import { WHATSMEOW } from './suites/workers';

const bed = new Testbed([WHATSMEOW], { instance: 701, phone: 4915300000100 });

messagingSuite(WHATSMEOW, bed);
exchangeSuite(WHATSMEOW, WHATSMEOW, bed);

test("whatsmeow: media needs the simulator's CA: a worker without SSL_CERT_FILE cannot upload (TLS), texts still go", async () => {
  const w = await bed.linkedByQr(WHATSMEOW, { env: { SSL_CERT_FILE: '' } });
  const p = await bed.newPhone();
  const result = await bed.command(w.run, 'send', { messageId: 'untrusted', to: p, type: 'image', media: { data: randomBytes(100).toString('base64'), mimetype: 'image/png' } });
  expect(result.ok).toBe(false);
  expect(JSON.stringify(result.error)).toContain('certificate');
  const text = await bed.send(w.run, { to: p, type: 'text', text: 'still here' });
  expect(await bed.onPhone(p, text.providerId)).toMatchObject({ text: 'still here' });
}, 120_000);
