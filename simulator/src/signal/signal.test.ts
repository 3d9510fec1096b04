/**
 * Prekey bundles and the Signal helpers: one-time prekeys are handed out
 * once (phones refill their stock, uploaded stocks run dry), the `encrypt`
 * key fetch answers per device, and two libsignal stores talk (pkmsg first,
 * then msg) with WhatsApp's padding.
 */
import { expect, test } from 'bun:test';
import { Accounts } from '../state';
import { node } from '../wire';
import { preKeyList, takeUploadedBundle } from './bundles';
import { decrypt, encrypt, pad, signalAddress, unpad } from './cipher';
import { ONE_TIME_PREKEYS } from './store';

test('a phone hands out each one-time prekey once and refills its stock', () => {
  const accounts = new Accounts();
  const { account } = accounts.ensure('4915400000001');
  const ids = new Set<number>();
  for (let i = 0; i < ONE_TIME_PREKEYS * 2; i++) {
    const b = account.signal.takeBundle();
    expect(b.preKey).toBeDefined();
    expect(ids.has(b.preKey!.id)).toBe(false);
    ids.add(b.preKey!.id);
    expect(b.identity.equals(account.identity.public)).toBe(true); // the phone's Signal identity is the account key
  }
});

test('an uploaded stock runs dry: then bundles come without a one-time prekey', () => {
  const keys = {
    registration: Buffer.from([0, 0, 0, 7]),
    identity: Buffer.alloc(32, 1),
    signedPreKey: { id: Buffer.from([0, 0, 1]), value: Buffer.alloc(32, 2), signature: Buffer.alloc(64, 3) },
    preKeys: new Map([['000005', { id: Buffer.from([0, 0, 5]), value: Buffer.alloc(32, 4) }]]),
  };
  expect(takeUploadedBundle(keys)).toMatchObject({ registrationId: 7, preKey: { id: 5 } });
  expect(takeUploadedBundle(keys)?.preKey).toBeUndefined();
  expect(takeUploadedBundle({ preKeys: new Map() })).toBeUndefined();
});

test('the key fetch answers a bundle per known device and item-not-found for others', () => {
  const accounts = new Accounts();
  accounts.ensure('4915400000002');
  const list = preKeyList(
    node('key', {}, [node('user', { jid: '4915400000002@s.whatsapp.net', reason: 'identity' }), node('user', { jid: '4915400000009@s.whatsapp.net' }), node('user', { jid: '4915400000002:4@s.whatsapp.net' })]),
    accounts,
  );
  const users = list.content as { attrs: Record<string, string>; content: { tag: string }[] }[];
  expect(users.map((u) => u.content.map((c) => c.tag))).toEqual([['registration', 'type', 'identity', 'skey', 'key'], ['error'], ['error']]);
});

test('two libsignal stores: pkmsg, then msg, both ways; padding is n bytes of n', async () => {
  const accounts = new Accounts();
  const a = accounts.ensure('4915400000003').account;
  const b = accounts.ensure('4915400000004').account;
  const toB = signalAddress(b.phone, 0);
  const toA = signalAddress(a.phone, 0);
  const m1 = await encrypt(a.signal, toB, Buffer.from('one'), () => b.signal.takeBundle());
  expect(m1.type).toBe('pkmsg');
  expect((await decrypt(b.signal, toA, m1.type, m1.body)).toString()).toBe('one');
  const m2 = await encrypt(b.signal, toA, Buffer.from('two'), () => undefined);
  expect(m2.type).toBe('msg');
  expect((await decrypt(a.signal, toB, m2.type, m2.body)).toString()).toBe('two');
  await expect(decrypt(a.signal, toB, 'msg', m2.body)).rejects.toThrow(); // a replay
  const padded = pad(Buffer.from('x'));
  expect(padded.length).toBeGreaterThan(1);
  expect(unpad(padded).toString()).toBe('x');
  expect(() => unpad(Buffer.from([1, 2, 3]))).toThrow('padding');
});
