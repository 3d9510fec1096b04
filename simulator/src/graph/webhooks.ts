/**
 * Webhook payloads, Meta's signature and delivery to a loopback callback.
 *
 * Sources: Meta, WhatsApp Cloud API "Webhooks" / "messages webhook
 * reference" (payload `{object: "whatsapp_business_account", entry: [{id:
 * WABA_ID, changes: [{field: "messages", value: {messaging_product,
 * metadata, contacts, messages | statuses}}]}]}`), and Graph API "Webhooks
 * — Getting started" (verification request `hub.mode=subscribe`,
 * `hub.challenge`, `hub.verify_token`; event notifications signed with
 * `X-Hub-Signature-256: sha256=<HMAC-SHA256 of the payload with the app
 * secret>`, Meta "generates a SHA256 signature using the payload and your
 * app's App Secret", and escapes unicode characters in the payload).
 * https://developers.facebook.com/docs/graph-api/webhooks/getting-started
 */
import { createHmac } from 'node:crypto';

export const WEBHOOK_TIMEOUT_MS = 10_000;

/** Meta's JSON: non-ASCII characters as `\uXXXX` and `/` as `\/` (receivers must verify the raw bytes). */
export function metaJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/\//g, '\\/')
    .replace(/[\u0080-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

export function signatureHeader(appSecret: string, rawBody: string | Uint8Array): string {
  return 'sha256=' + createHmac('sha256', appSecret).update(rawBody).digest('hex');
}

/** The legacy `X-Hub-Signature: sha1=…` Meta still sends beside the SHA-256 one. */
export function sha1SignatureHeader(appSecret: string, rawBody: string | Uint8Array): string {
  return 'sha1=' + createHmac('sha1', appSecret).update(rawBody).digest('hex');
}

/** http(s) URL on 127.0.0.0/8, ::1 or localhost: the only callbacks this repo allows. */
export function isLoopbackUrl(raw: string): boolean {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return false;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return false;
  const h = u.hostname.toLowerCase();
  return h === 'localhost' || h === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

export function isLoopbackHost(h: string): boolean {
  const host = h.toLowerCase();
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export interface Delivery {
  status: number;
  body: string;
}

/** POST a raw body to a loopback callback; never throws (status 0 and the reason on failure). */
export async function postWebhook(callbackUrl: string | undefined, rawBody: string, headers: Record<string, string>): Promise<Delivery> {
  if (!callbackUrl) return { status: 0, body: 'error: the app has no callbackUrl' };
  if (!isLoopbackUrl(callbackUrl)) return { status: 0, body: `error: callbackUrl must be a loopback http(s) URL (got ${callbackUrl})` };
  try {
    const res = await fetch(callbackUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'facebookexternalua', ...headers },
      body: rawBody,
      signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
      redirect: 'manual',
    });
    return { status: res.status, body: await res.text() };
  } catch (err) {
    return { status: 0, body: `error: ${(err as Error).message}` };
  }
}

/** Meta's GET handshake against a callback; ok when the answer is 200 and its body is the challenge. */
export async function verifyHandshake(
  callbackUrl: string | undefined,
  verifyToken: string | undefined,
): Promise<{ ok: boolean; status: number; body: string }> {
  if (!callbackUrl) return { ok: false, status: 0, body: 'error: the app has no callbackUrl' };
  if (!isLoopbackUrl(callbackUrl)) return { ok: false, status: 0, body: `error: callbackUrl must be a loopback http(s) URL (got ${callbackUrl})` };
  // Meta's challenges are integers
  const challenge = String(1_000_000_000 + (crypto.getRandomValues(new Uint32Array(1))[0]! % 1_000_000_000));
  const u = new URL(callbackUrl);
  u.searchParams.set('hub.mode', 'subscribe');
  u.searchParams.set('hub.challenge', challenge);
  u.searchParams.set('hub.verify_token', verifyToken ?? '');
  try {
    const res = await fetch(u, {
      headers: { 'user-agent': 'facebookplatform/1.0 (+http://developers.facebook.com)' },
      signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
      redirect: 'manual',
    });
    const body = await res.text();
    return { ok: res.status === 200 && body === challenge, status: res.status, body };
  } catch (err) {
    return { ok: false, status: 0, body: `error: ${(err as Error).message}` };
  }
}

export interface PhoneMeta {
  phoneNumberId: string;
  wabaId: string;
  displayPhoneNumber: string;
}

/** `value` of a `messages` change for this business number, around `extra` (contacts/messages or statuses). */
export function changePayload(phone: PhoneMeta, extra: Record<string, unknown>) {
  return {
    object: 'whatsapp_business_account',
    entry: [
      {
        id: phone.wabaId,
        changes: [
          {
            value: {
              messaging_product: 'whatsapp',
              // webhooks name the business number by its digits only
              metadata: { display_phone_number: phone.displayPhoneNumber.replace(/\D/g, ''), phone_number_id: phone.phoneNumberId },
              ...extra,
            },
            field: 'messages',
          },
        ],
      },
    ],
  };
}

/** Digits of a phone number as WhatsApp IDs are written (`+1 (555) 010-0000` → `15550100000`). */
export function waIdOf(to: string): string {
  return to.replace(/\D/g, '');
}

/** A wamid in the shape of Meta's: `wamid.` + base64 of a small binary record naming the recipient. */
export function newWamid(waId: string): string {
  const hex = Buffer.from(crypto.getRandomValues(new Uint8Array(9)))
    .toString('hex')
    .toUpperCase();
  const inner = Buffer.concat([
    Buffer.from([0x1c, 0x18, waId.length & 0xff]),
    Buffer.from(waId, 'latin1'),
    Buffer.from([0x15, 0x02, 0x00, 0x11, 0x18, 0x12]),
    Buffer.from(hex, 'latin1'),
    Buffer.from([0x00]),
  ]);
  return 'wamid.' + inner.toString('base64');
}
