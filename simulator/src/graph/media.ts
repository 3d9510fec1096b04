/**
 * Supported media types and size limits of the Cloud API.
 *
 * Source: Meta, "Supported media types", Cloud API reference (media)
 * https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types
 * (mirrored by AWS End User Messaging Social, "Supported media file types
 * and sizes in WhatsApp"): audio 16 MB (aac, amr, mpeg, mp4, ogg/opus),
 * document 100 MB, image 5 MB (jpeg, png), sticker webp 100 KB static /
 * 500 KB animated, video 16 MB (3gpp, mp4).
 */

export type MediaKind = 'audio' | 'document' | 'image' | 'sticker' | 'video';

const MB = 1024 * 1024;
const KB = 1024;

export const MEDIA_TYPES: Readonly<Record<string, { kind: MediaKind; maxBytes: number }>> = {
  'audio/aac': { kind: 'audio', maxBytes: 16 * MB },
  'audio/amr': { kind: 'audio', maxBytes: 16 * MB },
  'audio/mpeg': { kind: 'audio', maxBytes: 16 * MB },
  'audio/mp4': { kind: 'audio', maxBytes: 16 * MB },
  'audio/ogg': { kind: 'audio', maxBytes: 16 * MB },
  'text/plain': { kind: 'document', maxBytes: 100 * MB },
  'application/vnd.ms-excel': { kind: 'document', maxBytes: 100 * MB },
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': { kind: 'document', maxBytes: 100 * MB },
  'application/msword': { kind: 'document', maxBytes: 100 * MB },
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': { kind: 'document', maxBytes: 100 * MB },
  'application/vnd.ms-powerpoint': { kind: 'document', maxBytes: 100 * MB },
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': { kind: 'document', maxBytes: 100 * MB },
  'application/pdf': { kind: 'document', maxBytes: 100 * MB },
  'image/jpeg': { kind: 'image', maxBytes: 5 * MB },
  'image/png': { kind: 'image', maxBytes: 5 * MB },
  'image/webp': { kind: 'sticker', maxBytes: 500 * KB },
  'video/3gpp': { kind: 'video', maxBytes: 16 * MB },
  'video/mp4': { kind: 'video', maxBytes: 16 * MB },
};

export const STATIC_STICKER_MAX = 100 * KB;

/** The MIME type without parameters (`audio/ogg; codecs=opus` → `audio/ogg`), lower-case. */
export function baseMime(mime: string): string {
  return mime.split(';')[0]!.trim().toLowerCase();
}

/** A WebP with the VP8X animation flag (RIFF....WEBPVP8X, flags byte bit 1). */
export function isAnimatedWebp(bytes: Uint8Array): boolean {
  if (bytes.length < 21) return false;
  const ascii = (from: number, to: number) => String.fromCharCode(...bytes.subarray(from, to));
  return ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP' && ascii(12, 16) === 'VP8X' && (bytes[20]! & 0x02) !== 0;
}

/** The limit for this upload, or why it is refused. */
export function checkUpload(mime: string, bytes: Uint8Array): { ok: true; kind: MediaKind } | { ok: false; reason: string } {
  const base = baseMime(mime);
  const t = MEDIA_TYPES[base];
  if (!t) {
    return {
      ok: false,
      reason: `Param file must be a file with one of the following types: ${Object.keys(MEDIA_TYPES).join(', ')}. Received file of type '${base}'.`,
    };
  }
  const max = t.kind === 'sticker' && !isAnimatedWebp(bytes) ? STATIC_STICKER_MAX : t.maxBytes;
  if (bytes.length > max) {
    return { ok: false, reason: `File size ${bytes.length} bytes exceeds the maximum of ${max} bytes for type ${base}.` };
  }
  if (bytes.length === 0) return { ok: false, reason: 'Param file must not be empty.' };
  return { ok: true, kind: t.kind };
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new Uint8Array(bytes));
  return Buffer.from(digest).toString('hex');
}
