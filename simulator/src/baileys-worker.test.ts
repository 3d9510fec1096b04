/**
 * The judge for the Baileys worker: the real TypeScript worker on its
 * `baileys` provider (npm baileys 7.0.0-rc14, unmodified), bundled and run
 * on Node 24, with a fake gateway and real Postgres, runs the same suites as
 * the whatsmeow worker (src/suites/): it links to the simulator (QR, pairing
 * code), is restored after kill -9 with no new link, is unlinked and logs
 * out, and sends and receives every message type to and from a simulated
 * phone (content checked on the other side), with receipts and media over
 * HTTPS (trusted through NODE_EXTRA_CA_CERTS only); and it messages a
 * whatsmeow worker. Below, what only Baileys has: its session store in the
 * schema, idempotent sends, the media URL policy. Loopback only.
 */
import { expect, test } from 'bun:test';
import { statuses } from './testing';
import { linkingSuite } from './suites/linking';
import { exchangeSuite, messagingSuite } from './suites/messaging';
import { Testbed } from './suites/testbed';
import { BAILEYS, WHATSMEOW } from './suites/workers';
import { until } from '../../tests/support/poll';

const bed = new Testbed([BAILEYS, WHATSMEOW], { instance: 1301, phone: 4915400000100 });

linkingSuite(BAILEYS, bed);

test('baileys: creds and keys are in the schema once linked; an unlink from the phone clears the store', async () => {
  const { phone, run, deviceJid, state } = await bed.linkedByQr(BAILEYS);
  const creds = async () => JSON.parse((await bed.db.admin.unsafe(`select value from ${state.schema}.baileys_creds`))[0]!.value);
  expect((await creds()).me.id).toBe(deviceJid);
  const keys = await bed.db.admin.unsafe(`select type, count(*)::int as n from ${state.schema}.baileys_keys group by type`);
  expect(keys.find((k) => k.type === 'pre-key')?.n).toBeGreaterThan(0);
  expect((await bed.control('DELETE', `/phones/${phone}/devices/${encodeURIComponent(deviceJid)}`)).status).toBe(200);
  await bed.explain(run, () => until('a fresh QR after the logout', () => run.states().includes('logged_out') && run.state() === 'qr', 30_000));
  expect((await creds()).me).toBeUndefined();
}, 90_000);

messagingSuite(BAILEYS, bed, (shared) => {
  test("baileys: a sent message is kept for WhatsApp's retry requests (getMessage), keyed by its WhatsApp id", async () => {
    const { worker: w, phone } = shared;
    const { messageId, providerId } = await bed.send(w.run, { to: phone, type: 'text', text: 'keep me' });
    await bed.explain(w.run, () => bed.onPhone(phone, providerId));
    await bed.explain(w.run, () => until('delivered', () => statuses(w.run, messageId).includes('delivered'), 20_000));
    const [row] = await bed.db.admin.unsafe(`select message_id, message is not null as kept from ${w.state.schema}.baileys_sent_messages where wa_id = $1`, [providerId]);
    expect({ ...row }).toEqual({ message_id: messageId, kept: true });
  }, 60_000);

  test('baileys: a send redelivered with the same gateway message id reuses its WhatsApp id', async () => {
    const { worker: w, phone } = shared;
    const args = { messageId: 'redelivered-1', to: phone, type: 'text', text: 'once' };
    const first = await bed.command(w.run, 'send', args);
    const second = await bed.command(w.run, 'send', args);
    expect(first.ok && second.ok).toBe(true);
    expect(second.data.providerMessageId).toBe(first.data.providerMessageId);
  }, 60_000);

  test('baileys: media from an https url: refused on a loopback address (not public) unless WGS_MEDIA_ALLOW_PRIVATE=1', async () => {
    const { worker: w, phone } = shared;
    const result = await bed.command(w.run, 'send', {
      messageId: 'private-url',
      to: phone,
      type: 'image',
      media: { url: 'https://127.0.0.1:1/x.png', mimetype: 'image/png' },
    });
    expect(result).toMatchObject({ ok: false, error: { code: 'media_failed' } });
    expect(result.error?.message).toContain('not a public address');
  }, 30_000);
});

exchangeSuite(BAILEYS, WHATSMEOW, bed);
