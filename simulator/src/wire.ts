/**
 * Framing on the WebSocket: the client's first bytes are the `WA` prologue
 * (`W`, `A`, magic 6, dictionary version 3 — whatsmeow socket.WAConnHeader),
 * then every frame is a 3-byte big-endian length and that many bytes. Server
 * frames carry no prologue. Binary XML nodes inside frames start with a flag
 * byte (bit 2: zlib-compressed), encoded and decoded with Baileys' codec.
 */
import { decodeBinaryNode, encodeBinaryNode, type BinaryNode } from 'baileys';

export const PROLOGUE = Buffer.from([0x57, 0x41, 6, 3]);
export const MAX_FRAME = (1 << 24) - 1;

export class WireError extends Error {}

/** Splits received WebSocket data into frames; throws WireError on a bad prologue. */
export class FrameReader {
  private buffer: Buffer = Buffer.alloc(0);
  private sawPrologue = false;

  push(data: Uint8Array): Buffer[] {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, data]) : Buffer.from(data);
    if (!this.sawPrologue) {
      const n = Math.min(this.buffer.length, PROLOGUE.length);
      if (!this.buffer.subarray(0, n).equals(PROLOGUE.subarray(0, n))) {
        throw new WireError(`bad prologue ${this.buffer.subarray(0, n).toString('hex')} (expected ${PROLOGUE.toString('hex')})`);
      }
      if (this.buffer.length < PROLOGUE.length) return [];
      this.buffer = this.buffer.subarray(PROLOGUE.length);
      this.sawPrologue = true;
    }
    const frames: Buffer[] = [];
    while (this.buffer.length >= 3) {
      const length = (this.buffer[0]! << 16) | (this.buffer[1]! << 8) | this.buffer[2]!;
      if (this.buffer.length < 3 + length) break;
      frames.push(Buffer.from(this.buffer.subarray(3, 3 + length)));
      this.buffer = this.buffer.subarray(3 + length);
    }
    return frames;
  }
}

export function frame(data: Uint8Array): Buffer {
  if (data.length > MAX_FRAME) throw new WireError(`frame of ${data.length} bytes is too large`);
  const out = Buffer.alloc(3 + data.length);
  out[0] = (data.length >> 16) & 0xff;
  out[1] = (data.length >> 8) & 0xff;
  out[2] = data.length & 0xff;
  out.set(data, 3);
  return out;
}

export type Node = BinaryNode;

/** Attribute values must be strings: Baileys' encoder drops anything else. */
export function node(tag: string, attrs: Record<string, string | undefined> = {}, content?: Node[] | Uint8Array | string): Node {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) clean[k] = v;
  return { tag, attrs: clean, content: content instanceof Uint8Array && !Buffer.isBuffer(content) ? Buffer.from(content) : content };
}

export const encodeNode = (n: Node): Buffer => encodeBinaryNode(n);
export const decodeNode = (data: Buffer): Promise<Node> => decodeBinaryNode(data);

export const children = (n: Node | undefined): Node[] => (Array.isArray(n?.content) ? (n.content as Node[]) : []);
export const child = (n: Node | undefined, tag: string): Node | undefined => children(n).find((c) => c.tag === tag);
export function bytes(n: Node | undefined): Buffer | undefined {
  const c = n?.content;
  if (c instanceof Uint8Array) return Buffer.from(c);
  if (typeof c === 'string') return Buffer.from(c);
  return undefined;
}

/** The user part of a JID string ("4915…:3@s.whatsapp.net" → "4915…"). */
export const jidUser = (jid: string | undefined): string => (jid ?? '').split('@')[0]!.split(':')[0]!.split('_')[0]!;
