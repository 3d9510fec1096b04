/**
 * Media encryption as WhatsApp uses it (whatsmeow upload.go/download.go):
 * a random 32-byte media key, HKDF-SHA256-expanded to 112 bytes with the
 * media type's info string — iv (16) ‖ cipher key (32) ‖ mac key (32) ‖ ref
 * key; the file is AES-256-CBC (PKCS#7) and the upload is ciphertext ‖
 * the first 10 bytes of HMAC-SHA256(mac key, iv ‖ ciphertext).
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { hkdf, hmacSha256, randomBytes, sha256 } from '../crypto';

export type MediaKind = 'image' | 'video' | 'audio' | 'document' | 'sticker';
export const MEDIA_KINDS: readonly MediaKind[] = ['image', 'video', 'audio', 'document', 'sticker'];

/** HKDF info per kind (stickers are images). */
const INFO: Record<MediaKind, string> = {
  image: 'WhatsApp Image Keys',
  sticker: 'WhatsApp Image Keys',
  video: 'WhatsApp Video Keys',
  audio: 'WhatsApp Audio Keys',
  document: 'WhatsApp Document Keys',
};

/** The upload path's media type (whatsmeow mediaTypeToMMSType). */
export const MMS_TYPE: Record<MediaKind, string> = { image: 'image', sticker: 'image', video: 'video', audio: 'audio', document: 'document' };

const MAC_LENGTH = 10;

export function mediaKeys(mediaKey: Uint8Array, kind: MediaKind): { iv: Buffer; cipherKey: Buffer; macKey: Buffer } {
  const expanded = hkdf(mediaKey, undefined, INFO[kind], 112);
  return { iv: expanded.subarray(0, 16), cipherKey: expanded.subarray(16, 48), macKey: expanded.subarray(48, 80) };
}

export interface EncryptedMedia {
  mediaKey: Buffer;
  /** What is uploaded: ciphertext ‖ 10-byte MAC. */
  encrypted: Buffer;
  fileSha256: Buffer;
  fileEncSha256: Buffer;
  fileLength: number;
}

export function encryptMedia(plaintext: Uint8Array, kind: MediaKind, mediaKey: Buffer = randomBytes(32)): EncryptedMedia {
  const { iv, cipherKey, macKey } = mediaKeys(mediaKey, kind);
  const c = createCipheriv('aes-256-cbc', cipherKey, iv);
  const ciphertext = Buffer.concat([c.update(plaintext), c.final()]);
  const encrypted = Buffer.concat([ciphertext, hmacSha256(macKey, iv, ciphertext).subarray(0, MAC_LENGTH)]);
  return { mediaKey, encrypted, fileSha256: sha256(plaintext), fileEncSha256: sha256(encrypted), fileLength: plaintext.length };
}

/** Checks the MAC and the hashes given (fileEncSha256 of the upload, fileSha256 of the plaintext); throws on any mismatch. */
export function decryptMedia(encrypted: Uint8Array, kind: MediaKind, mediaKey: Uint8Array, expect: { fileEncSha256?: Uint8Array; fileSha256?: Uint8Array } = {}): Buffer {
  if (encrypted.length <= MAC_LENGTH) throw new Error('media file too short');
  if (expect.fileEncSha256?.length && !sha256(encrypted).equals(Buffer.from(expect.fileEncSha256))) throw new Error('media fileEncSha256 mismatch');
  const { iv, cipherKey, macKey } = mediaKeys(mediaKey, kind);
  const ciphertext = encrypted.subarray(0, encrypted.length - MAC_LENGTH);
  const mac = Buffer.from(encrypted.subarray(encrypted.length - MAC_LENGTH));
  if (!hmacSha256(macKey, iv, ciphertext).subarray(0, MAC_LENGTH).equals(mac)) throw new Error('media MAC mismatch');
  const d = createDecipheriv('aes-256-cbc', cipherKey, iv);
  const plaintext = Buffer.concat([d.update(ciphertext), d.final()]);
  if (expect.fileSha256?.length && !sha256(plaintext).equals(Buffer.from(expect.fileSha256))) throw new Error('media fileSha256 mismatch');
  return plaintext;
}
