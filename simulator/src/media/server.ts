/**
 * The media server (what whatsmeow calls mmg/upload hosts): HTTPS on the
 * simulator's loopback address, a port of its own.
 *   POST /mms/{type}/{token}?auth=…&token=…  upload an encrypted file (the
 *        `auth` from media_conn; `token` is base64url(SHA-256 of the body))
 *        → {url, direct_path}
 *   GET  /m/{id}.enc                         the encrypted bytes
 * The `media_conn` IQ (xmlns w:m) that tells clients the host and auth is
 * answered by `mediaConnNode`.
 */
import type { Server } from 'bun';
import { randomBytes, sha256 } from '../crypto';
import { node, type Node } from '../wire';
import { MediaStore, directPath } from './store';
import type { MediaTls } from './tls';

export interface MediaServer {
  /** "127.0.0.1:port": the media_conn host. */
  host: string;
  /** Base URL, https://127.0.0.1:port */
  url: string;
  auth: string;
  store: MediaStore;
  /** Uploads refused (bad auth or hash), for tests. */
  refused: number;
  stop(): Promise<void>;
}

/** How long clients may cache media_conn (seconds). */
const TTL = 300;
const AUTH_TTL = 21_600;
const MAX_UPLOAD = 100 * 1024 * 1024;

export function startMediaServer(opts: { hostname: '127.0.0.1' | '::1'; tls: MediaTls; port?: number; store?: MediaStore }): MediaServer {
  const store = opts.store ?? new MediaStore();
  const auth = randomBytes(24).toString('base64url');
  const host = opts.hostname === '::1' ? '[::1]' : opts.hostname;
  let base = '';
  const state = { refused: 0 };
  const fail = (status: number, code: string, error: string) => Response.json({ error, code }, { status });
  const server: Server<undefined> = Bun.serve({
    hostname: opts.hostname,
    port: opts.port ?? 0,
    tls: { cert: opts.tls.cert, key: opts.tls.key },
    maxRequestBodySize: MAX_UPLOAD,
    fetch: async (req) => {
      const url = new URL(req.url);
      const upload = /^\/mms\/([a-z-]+)\/([A-Za-z0-9_=-]+)$/.exec(url.pathname);
      if (upload && req.method === 'POST') {
        if (url.searchParams.get('auth') !== auth) {
          state.refused++;
          return fail(401, 'bad_auth', 'auth is not the one media_conn gave');
        }
        const body = Buffer.from(await req.arrayBuffer());
        const token = url.searchParams.get('token') ?? upload[2]!;
        if (!body.length || Buffer.from(token, 'base64url').compare(sha256(body)) !== 0) {
          state.refused++;
          return fail(400, 'bad_hash', 'token is not the SHA-256 of the uploaded bytes');
        }
        const file = store.put(upload[1]!, body);
        return Response.json({ url: `${base}/m/${file.id}.enc?sim=1`, direct_path: directPath(file.id) });
      }
      const download = /^\/m\/([0-9a-f]{64})\.enc$/.exec(url.pathname);
      if (download && req.method === 'GET') {
        const file = store.get(download[1]!);
        if (!file) return fail(404, 'not_found', 'no such media');
        return new Response(file.encrypted, { headers: { 'content-type': 'application/octet-stream' } });
      }
      return fail(404, 'not_found', `no route ${req.method} ${url.pathname}`);
    },
  });
  const hostPort = `${host}:${server.port}`;
  base = `https://${hostPort}`;
  return {
    host: hostPort,
    url: base,
    auth,
    store,
    get refused() {
      return state.refused;
    },
    stop: async () => {
      await server.stop(true);
    },
  };
}

/** The answer's `<media_conn>`: one host (this server), its auth and TTLs. */
export const mediaConnNode = (media: MediaServer): Node =>
  node('media_conn', { auth: media.auth, ttl: String(TTL), auth_ttl: String(AUTH_TTL), max_buckets: '12' }, [node('host', { hostname: media.host })]);
