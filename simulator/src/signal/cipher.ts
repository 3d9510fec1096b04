/**
 * Signal encryption as WhatsApp uses it for one-to-one messages (libsignal
 * does the Double Ratchet): plaintexts are padded with 1–15 bytes that each
 * hold the pad length (whatsmeow padMessage/unpadMessage, enc v="2"); the
 * first message of a new session is a `pkmsg` (PreKeySignalMessage), later
 * ones `msg`. A session is started from a prekey bundle when none is open.
 */
import { ProtocolAddress, SessionBuilder, SessionCipher, type SignalStorage } from 'libsignal';
import { randomBytes } from '../crypto';
import { withPrefix, type WireBundle } from './store';

export type EncType = 'pkmsg' | 'msg';

export function pad(plaintext: Uint8Array): Buffer {
  let n = randomBytes(1)[0]! & 0x0f;
  if (n === 0) n = 0x0f;
  return Buffer.concat([plaintext, Buffer.alloc(n, n)]);
}

/** Throws when the padding is not n bytes of value n. */
export function unpad(padded: Uint8Array): Buffer {
  const n = padded.length ? padded[padded.length - 1]! : 0;
  if (n === 0 || n > padded.length) throw new Error('plaintext without valid padding');
  for (let i = padded.length - n; i < padded.length; i++) if (padded[i] !== n) throw new Error('plaintext without valid padding');
  return Buffer.from(padded.subarray(0, padded.length - n));
}

/** The libsignal address of a device: the account's phone digits and the device id. */
export const signalAddress = (phone: string, deviceId: number): ProtocolAddress => new ProtocolAddress(phone, deviceId);

export async function hasSession(store: SignalStorage, address: ProtocolAddress): Promise<boolean> {
  const record = await store.loadSession(address.toString());
  return Boolean(record?.haveOpenSession());
}

/**
 * Encrypts for one device; `bundle` is asked for (and a session built from
 * it) only when there is no open session yet.
 */
export async function encrypt(
  store: SignalStorage,
  address: ProtocolAddress,
  plaintext: Uint8Array,
  bundle: () => WireBundle | undefined,
): Promise<{ type: EncType; body: Buffer }> {
  if (!(await hasSession(store, address))) {
    const b = bundle();
    if (!b) throw new Error(`no session with ${address.toString()} and no prekey bundle to start one`);
    await new SessionBuilder(store, address).initOutgoing({
      registrationId: b.registrationId,
      identityKey: withPrefix(b.identity),
      signedPreKey: { keyId: b.signedPreKey.id, publicKey: withPrefix(b.signedPreKey.public), signature: b.signedPreKey.signature },
      // libsignal's type says preKey is required; it handles a bundle without one.
      preKey: b.preKey ? { keyId: b.preKey.id, publicKey: withPrefix(b.preKey.public) } : (undefined as never),
    });
  }
  const out = await new SessionCipher(store, address).encrypt(pad(plaintext));
  return { type: out.type === 3 ? 'pkmsg' : 'msg', body: Buffer.from(out.body as unknown as Uint8Array) };
}

export async function decrypt(store: SignalStorage, address: ProtocolAddress, type: EncType, body: Uint8Array): Promise<Buffer> {
  const cipher = new SessionCipher(store, address);
  const padded = type === 'pkmsg' ? await cipher.decryptPreKeyWhisperMessage(Buffer.from(body)) : await cipher.decryptWhisperMessage(Buffer.from(body));
  return unpad(padded);
}
