/**
 * A simulated phone's Signal key material and sessions (what libsignal's
 * SessionBuilder and SessionCipher read and write): the account's identity
 * key (the same key that signs linked devices' ADV identities, as on a real
 * primary phone), a registration id, one signed prekey and a stock of
 * one-time prekeys. The server's view of the phone's keys — the public
 * halves it hands out in prekey bundles, each one-time prekey once — is
 * `takeBundle()`. In memory only.
 */
import { SessionRecord, type SignalStorage } from 'libsignal';
import { calculateSignature, generateKeyPair } from 'libsignal/src/curve.js';
import { randomBytes, type KeyPair } from '../crypto';

/** How many one-time prekeys a phone holds; the stock is refilled when it runs low (a real phone uploads more). */
export const ONE_TIME_PREKEYS = 100;
const REFILL_BELOW = 10;

export interface LibsignalKeyPair {
  /** 33 bytes (0x05 ‖ key). */
  pubKey: Buffer;
  privKey: Buffer;
}

/** A prekey bundle as the `encrypt` IQ carries it (32-byte keys, 3-byte ids). */
export interface WireBundle {
  registrationId: number;
  identity: Buffer;
  signedPreKey: { id: number; public: Buffer; signature: Buffer };
  preKey?: { id: number; public: Buffer };
}

export const withPrefix = (key: Uint8Array): Buffer => (key.length === 33 ? Buffer.from(key) : Buffer.concat([Buffer.from([5]), key]));
export const withoutPrefix = (key: Uint8Array): Buffer => (key.length === 33 ? Buffer.from(key.subarray(1)) : Buffer.from(key));

export class PhoneSignalStore implements SignalStorage {
  readonly registrationId = randomBytes(2).readUInt16BE(0) & 0x3fff || 1;
  readonly identity: LibsignalKeyPair;
  readonly signedPreKey: { keyId: number; keyPair: LibsignalKeyPair; signature: Buffer };
  /** Private halves of one-time prekeys the phone still holds. */
  private readonly preKeys = new Map<number, LibsignalKeyPair>();
  /** Ids the server may still hand out (each once). */
  private readonly unclaimed: number[] = [];
  private nextPreKeyId = 1;
  private readonly sessions = new Map<string, SessionRecord>();

  constructor(identity: KeyPair) {
    this.identity = { pubKey: withPrefix(identity.public), privKey: Buffer.from(identity.private) };
    const keyPair = generateKeyPair();
    this.signedPreKey = { keyId: 1, keyPair, signature: calculateSignature(this.identity.privKey, keyPair.pubKey) };
    this.refill();
  }

  private refill(): void {
    while (this.unclaimed.length < ONE_TIME_PREKEYS) {
      const id = this.nextPreKeyId++;
      this.preKeys.set(id, generateKeyPair());
      this.unclaimed.push(id);
    }
  }

  /** The bundle the server gives out for this phone, consuming one one-time prekey (none when the stock is empty). */
  takeBundle(): WireBundle {
    const id = this.unclaimed.shift();
    if (this.unclaimed.length < REFILL_BELOW) this.refill();
    const preKey = id === undefined ? undefined : this.preKeys.get(id);
    return {
      registrationId: this.registrationId,
      identity: withoutPrefix(this.identity.pubKey),
      signedPreKey: { id: this.signedPreKey.keyId, public: withoutPrefix(this.signedPreKey.keyPair.pubKey), signature: this.signedPreKey.signature },
      preKey: preKey && id !== undefined ? { id, public: withoutPrefix(preKey.pubKey) } : undefined,
    };
  }

  /** One-time prekeys the server can still hand out. */
  get unclaimedPreKeys(): number {
    return this.unclaimed.length;
  }

  // ------------------------------------------------------------ libsignal's storage interface

  async loadSession(id: string): Promise<SessionRecord | undefined> {
    return this.sessions.get(id);
  }

  async storeSession(id: string, record: SessionRecord): Promise<void> {
    this.sessions.set(id, record);
  }

  /** Trust on first use is not modelled: every identity is trusted (see the fidelity notes). */
  isTrustedIdentity(): boolean {
    return true;
  }

  async loadPreKey(id: number | string): Promise<{ privKey: Buffer; pubKey: Buffer } | undefined> {
    return this.preKeys.get(Number(id));
  }

  removePreKey(id: number): void {
    this.preKeys.delete(Number(id));
  }

  loadSignedPreKey(): { privKey: Buffer; pubKey: Buffer } {
    return this.signedPreKey.keyPair;
  }

  getOurRegistrationId(): number {
    return this.registrationId;
  }

  getOurIdentity(): { privKey: Buffer; pubKey: Buffer } {
    return this.identity;
  }
}

export { SessionRecord };
