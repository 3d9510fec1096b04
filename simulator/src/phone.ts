/**
 * What the primary phone computes when it links a companion device:
 * - the ADV device identity (pair.go): ADVDeviceIdentity details signed by
 *   the account key over (6,0 ‖ details ‖ companion identity key), wrapped in
 *   ADVSignedDeviceIdentityHMAC whose HMAC is keyed by the adv secret;
 * - the pairing-code exchange (pair-code.go): unwrap the companion's
 *   ephemeral key with the code, wrap the phone's own, derive the key-bundle
 *   key and, from the bundle, the adv secret.
 */
import { proto } from 'baileys';
import { ctr, gcmDecrypt, hkdf, hmacSha256, linkCodeKey, newKeyPair, randomBytes, sharedSecret, sign, verify, type KeyPair } from './crypto';

export const ADV_ACCOUNT_SIGNATURE_PREFIX = Buffer.from([6, 0]);
export const ADV_DEVICE_SIGNATURE_PREFIX = Buffer.from([6, 1]);

/** The pairing-code alphabet (whatsmeow linkingBase32): 8 characters, shown as XXXX-XXXX. */
export const LINK_CODE_ALPHABET = '123456789ABCDEFGHJKLMNPQRSTVWXYZ';

export interface QrText {
  ref: string;
  noiseKey: Buffer;
  identityKey: Buffer;
  advSecret: Buffer;
}

/** The prefix newer clients (Baileys 7) put before the QR parts; whatsmeow shows the bare parts. */
export const QR_LINK_PREFIX = 'https://wa.me/settings/linked_devices#';

/**
 * Parses `ref,noisePub,identityPub,advSecret` (base64 parts, whatsmeow), or
 * the same after QR_LINK_PREFIX with a fifth part, the companion platform id
 * (Baileys); undefined when malformed.
 */
export function parseQrText(text: unknown): QrText | undefined {
  if (typeof text !== 'string') return undefined;
  let body = text.trim();
  const linked = body.startsWith(QR_LINK_PREFIX);
  if (linked) body = body.slice(QR_LINK_PREFIX.length);
  const parts = body.split(',');
  if (linked && parts.length === 5 && /^\d+$/.test(parts[4]!)) parts.pop();
  if (parts.length !== 4 || !parts[0]) return undefined;
  const b64 = (s: string) => (/^[A-Za-z0-9+/]+={0,2}$/.test(s) ? Buffer.from(s, 'base64') : undefined);
  const [noiseKey, identityKey, advSecret] = [b64(parts[1]!), b64(parts[2]!), b64(parts[3]!)];
  if (noiseKey?.length !== 32 || identityKey?.length !== 32 || advSecret?.length !== 32) return undefined;
  return { ref: parts[0], noiseKey, identityKey, advSecret };
}

/** Normalizes a typed pairing code ("ABCD-EFGH", any case); undefined when malformed. */
export function parseLinkCode(code: unknown): string | undefined {
  if (typeof code !== 'string') return undefined;
  const clean = code.replace(/[\s-]/g, '').toUpperCase();
  if (clean.length !== 8) return undefined;
  for (const ch of clean) if (!LINK_CODE_ALPHABET.includes(ch)) return undefined;
  return clean;
}

export interface AdvIdentityInput {
  account: KeyPair;
  rawId: number;
  keyIndex: number;
  companionIdentity: Buffer;
  advSecret: Buffer;
  now?: number;
}

/** The `device-identity` content of pair-success, and the signed details it carries. */
export function buildDeviceIdentity(input: AdvIdentityInput): { container: Buffer; details: Buffer } {
  const details = Buffer.from(
    proto.ADVDeviceIdentity.encode({
      rawId: input.rawId,
      timestamp: Math.floor((input.now ?? Date.now()) / 1000),
      keyIndex: input.keyIndex,
      accountType: proto.ADVEncryptionType.E2EE,
      deviceType: proto.ADVEncryptionType.E2EE,
    }).finish(),
  );
  const accountSignature = sign(input.account.private, Buffer.concat([ADV_ACCOUNT_SIGNATURE_PREFIX, details, input.companionIdentity]));
  const signed = Buffer.from(
    proto.ADVSignedDeviceIdentity.encode({ details, accountSignatureKey: input.account.public, accountSignature }).finish(),
  );
  const container = Buffer.from(
    proto.ADVSignedDeviceIdentityHMAC.encode({ details: signed, hmac: hmacSha256(input.advSecret, signed) }).finish(),
  );
  return { container, details };
}

/**
 * Checks the companion's `pair-device-sign`: its device signature over
 * (6,1 ‖ details ‖ companion identity ‖ account key) with the companion's identity key.
 */
export function verifyDeviceSign(signedIdentity: Buffer, expectedDetails: Buffer, companionIdentity: Buffer, accountKey: Buffer): boolean {
  const signed = proto.ADVSignedDeviceIdentity.decode(signedIdentity);
  if (!signed.details || !signed.deviceSignature) return false;
  const details = Buffer.from(signed.details);
  if (!details.equals(expectedDetails)) return false;
  const message = Buffer.concat([ADV_DEVICE_SIGNATURE_PREFIX, details, companionIdentity, accountKey]);
  return verify(companionIdentity, message, signed.deviceSignature);
}

/** Wraps a 32-byte public key with a pairing code: salt(32) ‖ iv(16) ‖ AES-CTR(key). */
export function wrapWithCode(code: string, pub: Buffer): Buffer {
  const salt = randomBytes(32);
  const iv = randomBytes(16);
  return Buffer.concat([salt, iv, ctr(linkCodeKey(code, salt), iv, pub)]);
}

export function unwrapWithCode(code: string, wrapped: Buffer): Buffer {
  if (wrapped.length !== 80) throw new Error(`wrapped key is ${wrapped.length} bytes, expected 80`);
  return ctr(linkCodeKey(code, wrapped.subarray(0, 32)), wrapped.subarray(32, 48), wrapped.subarray(48, 80));
}

/** The phone's half of the code exchange, kept until the companion finishes. */
export interface PrimaryHello {
  ephemeral: KeyPair;
  /** X25519(phone ephemeral, companion ephemeral). */
  ephemeralShared: Buffer;
  /** For the link_code_pairing_wrapped_primary_ephemeral_pub node. */
  wrappedPrimaryEphemeral: Buffer;
}

export function primaryHello(code: string, wrappedCompanionEphemeral: Buffer): PrimaryHello {
  const companionEphemeral = unwrapWithCode(code, wrappedCompanionEphemeral);
  const ephemeral = newKeyPair();
  return {
    ephemeral,
    ephemeralShared: sharedSecret(ephemeral.private, companionEphemeral),
    wrappedPrimaryEphemeral: wrapWithCode(code, ephemeral.public),
  };
}

/**
 * Opens the companion's key bundle (salt(32) ‖ nonce(12) ‖ AES-GCM(companion
 * identity ‖ primary identity ‖ adv random)) and derives the adv secret.
 * Throws when the bundle does not decrypt: the code typed on the phone was wrong.
 */
export function companionFinish(
  hello: PrimaryHello,
  account: KeyPair,
  wrappedBundle: Buffer,
): { companionIdentity: Buffer; advSecret: Buffer } {
  if (wrappedBundle.length < 44 + 16) throw new Error('key bundle too short');
  const key = hkdf(hello.ephemeralShared, wrappedBundle.subarray(0, 32), 'link_code_pairing_key_bundle_encryption_key', 32);
  const bundle = gcmDecrypt(key, wrappedBundle.subarray(32, 44), wrappedBundle.subarray(44));
  if (bundle.length !== 96) throw new Error(`key bundle is ${bundle.length} bytes, expected 96`);
  const companionIdentity = bundle.subarray(0, 32);
  if (!bundle.subarray(32, 64).equals(account.public)) throw new Error('key bundle names another primary identity');
  const identityShared = sharedSecret(account.private, companionIdentity);
  const advSecret = hkdf(Buffer.concat([hello.ephemeralShared, identityShared, bundle.subarray(64, 96)]), undefined, 'adv_secret', 32);
  return { companionIdentity: Buffer.from(companionIdentity), advSecret };
}
