/**
 * The simulated WhatsApp network's memory: accounts (one per phone number,
 * with the primary phone's identity key and LID) and their linked companion
 * devices. Nothing is persisted: a restarted simulator forgets everything.
 */
import { newKeyPair, randomBytes, type KeyPair } from './crypto';
import type { Session } from './session';
import { PhoneSignalStore } from './signal/store';
import type { Node } from './wire';

export interface Device {
  /** "4915…:3@s.whatsapp.net" */
  jid: string;
  /** "1234…:3@lid" */
  lid: string;
  deviceId: number;
  /** The companion's static Noise key: what it must log in with. */
  noiseKey: Buffer;
  identityKey: Buffer;
  keyIndex: number;
  platform: string;
  linkedAt: Date;
  /** The Signal key material the device uploaded (encrypt set), for prekey counts and digests. */
  keys: UploadedKeys;
  /** The live socket, at most one. */
  session: Session | undefined;
  /** How often a login found another socket of this device still open and replaced it (two clients on one session). */
  replaced: number;
  /** Stanzas for this device while it is offline, delivered in order at its next login. */
  pending: Node[];
}

export interface UploadedKeys {
  registration?: Buffer;
  identity?: Buffer;
  signedPreKey?: { id: Buffer; value: Buffer; signature: Buffer };
  /** One-time prekeys by id (hex of the 3-byte id). */
  preKeys: Map<string, { id: Buffer; value: Buffer }>;
}

export interface Account {
  /** Digits only. */
  phone: string;
  /** The LID user (digits). */
  lidUser: string;
  /** The primary phone's identity key: it signs device identities. */
  identity: KeyPair;
  /** ADVDeviceIdentity.rawId, the same for every device of the account. */
  rawId: number;
  nextDeviceId: number;
  nextKeyIndex: number;
  devices: Map<string, Device>;
  createdAt: Date;
  /** The primary phone's Signal keys and sessions (its identity key is `identity`). */
  signal: PhoneSignalStore;
}

/** A device a JID names: the account and the device id (0: the primary phone). */
export interface DeviceRef {
  account: Account;
  deviceId: number;
}

/** Digits of a phone number written with or without "+", spaces or dashes; undefined when not one. */
export function normalizePhone(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const digits = value.replace(/[\s()-]/g, '').replace(/^\+/, '');
  return /^[1-9]\d{6,14}$/.test(digits) ? digits : undefined;
}

export class Accounts {
  private readonly byPhone = new Map<string, Account>();
  private readonly byLid = new Map<string, Account>();

  get(phone: string): Account | undefined {
    return this.byPhone.get(phone);
  }

  /** Creates the account unless it exists; `created` tells which. */
  ensure(phone: string): { account: Account; created: boolean } {
    const existing = this.byPhone.get(phone);
    if (existing) return { account: existing, created: false };
    const identity = newKeyPair();
    const account: Account = {
      phone,
      lidUser: String(100_000_000_000_000 + randomBytes(6).readUIntBE(0, 6) % 899_999_999_999_999),
      identity,
      rawId: randomBytes(4).readUInt32BE(0) >>> 1,
      nextDeviceId: 1,
      nextKeyIndex: 1,
      devices: new Map(),
      createdAt: new Date(),
      signal: new PhoneSignalStore(identity),
    };
    this.byPhone.set(phone, account);
    this.byLid.set(account.lidUser, account);
    return { account, created: true };
  }

  /**
   * The account and device a JID names: "phone@s.whatsapp.net" (device 0),
   * "phone:3@s.whatsapp.net", "lid:3@lid"; undefined for unknown users.
   */
  resolve(jid: string | undefined): DeviceRef | undefined {
    const m = /^(\d+)(?:_\d+)?(?::(\d+))?@(s\.whatsapp\.net|lid|c\.us)$/.exec(jid ?? '');
    if (!m) return undefined;
    const account = m[3] === 'lid' ? this.byLid.get(m[1]!) : this.byPhone.get(m[1]!);
    return account ? { account, deviceId: Number(m[2] ?? 0) } : undefined;
  }

  all(): Account[] {
    return [...this.byPhone.values()];
  }

  /** The device a login payload names (username = phone digits, device = companion id). */
  device(phone: string, deviceId: number): Device | undefined {
    return this.byPhone.get(phone)?.devices.get(deviceJid(phone, deviceId));
  }
}

export const deviceJid = (phone: string, deviceId: number): string => `${phone}:${deviceId}@s.whatsapp.net`;
export const deviceLid = (lidUser: string, deviceId: number): string => `${lidUser}:${deviceId}@lid`;
