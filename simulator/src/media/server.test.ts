/**
 * The media server on its own: HTTPS with the generated CA (a client
 * without the CA is refused), upload auth and hash checks, downloads of the
 * stored encrypted bytes, and the media crypto round trip (HKDF keys,
 * AES-CBC, truncated HMAC) with tampering detected.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { sha256 } from '../crypto';
import { startSimulator, type RunningSimulator } from '../server';
import { control } from '../testing';
import { decryptMedia, encryptMedia } from './keys';

let sim: RunningSimulator;
let ca: string;
beforeAll(() => {
  sim = startSimulator({ port: 0 });
  ca = readFileSync(sim.mediaCaFile, 'utf8');
});
afterAll(async () => {
  await sim?.stop();
});

const upload = (bytes: Buffer, opts: { auth?: string; token?: string } = {}) => {
  const token = opts.token ?? sha256(bytes).toString('base64url');
  const q = new URLSearchParams({ auth: opts.auth ?? sim.media.auth, token });
  return fetch(`${sim.media.url}/mms/image/${token}?${q}`, { method: 'POST', body: bytes, tls: { ca } } as RequestInit);
};

test('GET /info names the media server, its CA file and the CA PEM; the server is https on loopback', async () => {
  const info = await control(sim, 'GET', '/info');
  expect(info.body).toMatchObject({ mediaUrl: sim.media.url, mediaCaFile: sim.mediaCaFile });
  expect(info.body.mediaCaCertificate).toStartWith('-----BEGIN CERTIFICATE-----');
  expect(sim.media.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
});

test('upload with the media_conn auth → url and direct_path; the download serves the same encrypted bytes', async () => {
  const enc = encryptMedia(Buffer.from('a picture'), 'image');
  const res = await upload(enc.encrypted);
  expect(res.status).toBe(200);
  const body = (await res.json()) as { url: string; direct_path: string };
  expect(body.url).toStartWith(`${sim.media.url}/m/`);
  expect(body.direct_path).toMatch(/^\/m\/[0-9a-f]{64}\.enc\?/);
  const got = Buffer.from(await (await fetch(body.url, { tls: { ca } } as RequestInit)).arrayBuffer());
  expect(got.equals(enc.encrypted)).toBe(true);
  expect(decryptMedia(got, 'image', enc.mediaKey, { fileEncSha256: enc.fileEncSha256, fileSha256: enc.fileSha256 }).toString()).toBe('a picture');
});

test('uploads with a wrong auth (401) or a token that is not the body hash (400) are refused; unknown media is 404', async () => {
  const enc = encryptMedia(Buffer.from('x'), 'image');
  expect((await upload(enc.encrypted, { auth: 'nope' })).status).toBe(401);
  expect((await upload(enc.encrypted, { token: sha256(Buffer.from('other')).toString('base64url') })).status).toBe(400);
  expect((await fetch(`${sim.media.url}/m/${'0'.repeat(64)}.enc`, { tls: { ca } } as RequestInit)).status).toBe(404);
});

test('a client that does not trust the CA cannot connect', async () => {
  await expect(fetch(`${sim.media.url}/m/${'0'.repeat(64)}.enc`)).rejects.toThrow();
});

test('media crypto: each kind decrypts with its own keys only; a flipped byte fails the MAC', () => {
  const plain = Buffer.from('a voice note');
  const enc = encryptMedia(plain, 'audio');
  expect(decryptMedia(enc.encrypted, 'audio', enc.mediaKey).equals(plain)).toBe(true);
  expect(() => decryptMedia(enc.encrypted, 'video', enc.mediaKey)).toThrow('MAC');
  const tampered = Buffer.from(enc.encrypted);
  tampered[0]! ^= 1;
  expect(() => decryptMedia(tampered, 'audio', enc.mediaKey)).toThrow('MAC');
  expect(() => decryptMedia(enc.encrypted, 'audio', enc.mediaKey, { fileSha256: sha256(Buffer.from('other')) })).toThrow('fileSha256');
});
