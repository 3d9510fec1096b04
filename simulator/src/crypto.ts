/**
 * The primitives the protocol needs, from well-kept libraries: Curve25519
 * key agreement and XEdDSA signing from Baileys' `Curve`, XEdDSA
 * verification from libsignal itself (Baileys 7.0.0-rc14's `Curve.verify`
 * ignores libsignal's boolean answer and returns true for any signature),
 * SHA-256, HMAC, HKDF, AES-GCM, AES-CTR and PBKDF2 from node:crypto.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { Curve } from 'baileys';
import { verifySignature } from 'libsignal/src/curve.js';

export interface KeyPair {
  /** 32 bytes. */
  public: Buffer;
  /** 32 bytes. */
  private: Buffer;
}

export function newKeyPair(): KeyPair {
  const kp = Curve.generateKeyPair();
  return { public: Buffer.from(kp.public), private: Buffer.from(kp.private) };
}

/** X25519 shared secret of our private key and their 32-byte public key. */
export const sharedSecret = (priv: Uint8Array, pub: Uint8Array): Buffer => Buffer.from(Curve.sharedKey(priv, pub));

/** XEdDSA signature (64 bytes), what whatsmeow's ecc.VerifySignature checks. */
export const sign = (priv: Uint8Array, message: Uint8Array): Buffer => Buffer.from(Curve.sign(priv, message));

export function verify(pub: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (pub.length !== 32 || signature.length !== 64) return false;
  try {
    return verifySignature(Buffer.concat([Buffer.from([5]), pub]), message, signature) === true;
  } catch {
    return false;
  }
}

export const sha256 = (...parts: Uint8Array[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

export const hmacSha256 = (key: Uint8Array, ...parts: Uint8Array[]): Buffer => {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
};

/** RFC 5869 HKDF-SHA256 (an empty salt is the zero salt; empty key material is allowed). */
export function hkdf(ikm: Uint8Array, salt: Uint8Array | undefined, info: Uint8Array | string, length: number): Buffer {
  const prk = hmacSha256(salt && salt.length ? salt : Buffer.alloc(32), ikm);
  const infoBytes = typeof info === 'string' ? Buffer.from(info) : info;
  const blocks: Buffer[] = [];
  let previous: Buffer = Buffer.alloc(0);
  for (let i = 1; blocks.length * 32 < length; i++) {
    previous = hmacSha256(prk, previous, infoBytes, Buffer.from([i]));
    blocks.push(previous);
  }
  return Buffer.concat(blocks).subarray(0, length);
}

/** AES-256-GCM with the 16-byte tag appended. */
export function gcmEncrypt(key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Buffer {
  const c = createCipheriv('aes-256-gcm', key, iv);
  if (aad) c.setAAD(aad);
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

/** Throws when the tag does not verify. */
export function gcmDecrypt(key: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array, aad?: Uint8Array): Buffer {
  if (ciphertext.length < 16) throw new Error('ciphertext shorter than its tag');
  const d = createDecipheriv('aes-256-gcm', key, iv);
  if (aad) d.setAAD(aad);
  d.setAuthTag(ciphertext.subarray(ciphertext.length - 16));
  return Buffer.concat([d.update(ciphertext.subarray(0, ciphertext.length - 16)), d.final()]);
}

export function ctr(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Buffer {
  const c = createCipheriv('aes-256-ctr', key, iv);
  return Buffer.concat([c.update(data), c.final()]);
}

/** The key a pairing code wraps an ephemeral public key with (PBKDF2-SHA256, 2^17 rounds). */
export const linkCodeKey = (code: string, salt: Uint8Array): Buffer => pbkdf2Sync(Buffer.from(code), salt, 2 << 16, 32, 'sha256');

export { randomBytes };
