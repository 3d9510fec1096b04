/**
 * The bytes of a media send: base64 `data`, or an https `url` fetched with
 * the same rules as the Go worker's media client: https only (redirects
 * too, at most 5), 60 s, at most MAX_INLINE_MEDIA_BYTES, and only public
 * addresses are dialled unless WGS_MEDIA_ALLOW_PRIVATE=1. The address check
 * runs in the socket's own DNS lookup, so the address checked is the one
 * dialled (no second resolution a rebinding DNS could answer differently).
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request } from 'node:https';
import { BlockList, isIP } from 'node:net';
import { MAX_INLINE_MEDIA_BYTES, type MediaInput } from '../../../protocol/frames';
import { ProviderError } from '../types';

export const MEDIA_DOWNLOAD_TIMEOUT_MS = 60_000;
const MAX_REDIRECTS = 5;

const BLOCKED = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  BLOCKED.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  BLOCKED.addSubnet(net, prefix, 'ipv6');
}

/** False for loopback, private, CGNAT, link-local, unique-local, multicast and unspecified addresses (IPv4-mapped too). */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  if (family === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return isPublicAddress(mapped[1]!);
    return !BLOCKED.check(address, 'ipv6');
  }
  return !BLOCKED.check(address, 'ipv4');
}

/** The media's bytes; ProviderError invalid_args or media_failed otherwise. */
export async function loadMedia(media: MediaInput, allowPrivate: boolean): Promise<Buffer> {
  if (media.data !== undefined) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(media.data.replace(/\s+/g, ''))) {
      throw new ProviderError('invalid_args', '/media/data: not valid base64');
    }
    const bytes = Buffer.from(media.data, 'base64');
    if (bytes.length === 0) throw new ProviderError('invalid_args', '/media/data: empty');
    if (bytes.length > MAX_INLINE_MEDIA_BYTES) {
      throw new ProviderError('invalid_args', `/media/data: more than ${MAX_INLINE_MEDIA_BYTES} bytes once decoded`);
    }
    return bytes;
  }
  if (!media.url) throw new ProviderError('invalid_args', '/media: needs data or url');
  let url: URL;
  try {
    url = new URL(media.url);
  } catch {
    throw new ProviderError('invalid_args', '/media/url: not a valid URL');
  }
  if (url.protocol !== 'https:') throw new ProviderError('invalid_args', '/media/url: must be an https:// URL');
  const deadline = Date.now() + MEDIA_DOWNLOAD_TIMEOUT_MS;
  for (let redirects = 0; ; redirects++) {
    const res = await get(url, allowPrivate, deadline);
    if (res.redirect) {
      if (redirects >= MAX_REDIRECTS) throw new ProviderError('media_failed', 'downloading the media failed: too many redirects');
      const next = new URL(res.redirect, url);
      if (next.protocol !== 'https:') throw new ProviderError('media_failed', 'downloading the media failed: redirect to a non-https URL');
      url = next;
      continue;
    }
    return res.body!;
  }
}

function safeLookup(allowPrivate: boolean) {
  return (
    hostname: string,
    options: object,
    callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '');
      const list = addresses as LookupAddress[];
      const usable = allowPrivate ? list : list.filter((a) => isPublicAddress(a.address));
      if (usable.length === 0) {
        const e: NodeJS.ErrnoException = new Error(`${hostname} resolves to no public address (refused: ${list.map((a) => a.address).join(', ')})`);
        e.code = 'ENOTPUBLIC';
        return callback(e, '');
      }
      if ((options as { all?: boolean }).all) return callback(null, usable);
      callback(null, usable[0]!.address, usable[0]!.family);
    });
  };
}

function get(url: URL, allowPrivate: boolean, deadline: number): Promise<{ redirect?: string; body?: Buffer }> {
  return new Promise((resolve, reject) => {
    const fail = (message: string) => reject(new ProviderError('media_failed', `downloading the media failed: ${message}`));
    // A literal address skips the lookup: check it here.
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host) && !allowPrivate && !isPublicAddress(host)) return fail(`${host} is not a public address`);
    const req = request(url, { method: 'GET', lookup: safeLookup(allowPrivate) as never, timeout: Math.max(1, deadline - Date.now()) }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        return resolve({ redirect: res.headers.location });
      }
      if (status !== 200) {
        res.resume();
        return fail(`HTTP ${status}`);
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > MAX_INLINE_MEDIA_BYTES) {
        res.destroy();
        return reject(new ProviderError('media_failed', `the media is larger than ${MAX_INLINE_MEDIA_BYTES} bytes`));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_INLINE_MEDIA_BYTES) {
          res.destroy();
          reject(new ProviderError('media_failed', `the media is larger than ${MAX_INLINE_MEDIA_BYTES} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        if (size === 0) return reject(new ProviderError('media_failed', 'the media download was empty'));
        resolve({ body: Buffer.concat(chunks) });
      });
      res.on('error', (err) => fail(err.message));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${MEDIA_DOWNLOAD_TIMEOUT_MS} ms`)));
    req.on('error', (err) => fail(err.message));
    req.end();
  });
}
