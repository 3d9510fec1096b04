/**
 * Answers to the info queries a logged-in client sends (whatsmeow on
 * connect: prekey count and upload, passive/active, keepalive pings; on
 * demand: props, privacy, blocklist, usync, prekey bundles of other devices
 * (signal/bundles.ts), media_conn (media/server.ts)). Each answer is built from the
 * simulator's state; a query it does not know gets an explicit error
 * (501 feature-not-implemented), so no client waits for a timeout.
 */
import { children, child, bytes, jidUser, node, type Node } from './wire';
import { createHash } from 'node:crypto';
import type { Accounts, Device, UploadedKeys } from './state';
import { preKeyList } from './signal/bundles';
import { mediaConnNode, type MediaServer } from './media/server';

export const SERVER_JID = '@s.whatsapp.net';

export const result = (iq: Node, content?: Node[]): Node => node('iq', { from: SERVER_JID, id: iq.attrs.id, type: 'result' }, content);

export const iqError = (iq: Node, code: number, text: string): Node =>
  node('iq', { from: SERVER_JID, id: iq.attrs.id, type: 'error' }, [node('error', { code: String(code), text })]);

const PRIVACY_DEFAULTS: [string, string][] = [
  ['last', 'all'],
  ['online', 'all'],
  ['profile', 'all'],
  ['status', 'all'],
  ['groupadd', 'all'],
  ['readreceipts', 'all'],
  ['calladd', 'all'],
  ['messages', 'all'],
];

/** The answer to a logged-in device's IQ. */
export function answerIq(iq: Node, device: Device, accounts: Accounts, media?: MediaServer): Node {
  const xmlns = iq.attrs.xmlns;
  const type = iq.attrs.type;
  const first = children(iq)[0];
  switch (xmlns) {
    case 'w:p': // keepalive ping
      return result(iq);
    case 'passive': // <active/> or <passive/>
      return type === 'set' ? result(iq) : iqError(iq, 400, 'bad-request');
    case 'encrypt':
      if (type === 'get' && first?.tag === 'count') return result(iq, [node('count', { value: String(device.keys.preKeys.size) })]);
      if (type === 'get' && first?.tag === 'digest') return digest(iq, device.keys);
      if (type === 'get' && first?.tag === 'key') return result(iq, [preKeyList(first, accounts)]);
      if (type === 'set' && child(iq, 'list')) return upload(iq, device.keys);
      if (type === 'set' && first?.tag === 'rotate') {
        const skey = readKey(child(first, 'skey'));
        if (!skey?.signature) return iqError(iq, 400, 'bad-request');
        device.keys.signedPreKey = { id: skey.id, value: skey.value, signature: skey.signature };
        return result(iq);
      }
      break;
    case 'privacy':
      if (type === 'get') return result(iq, [node('privacy', {}, PRIVACY_DEFAULTS.map(([name, value]) => node('category', { name, value })))]);
      break;
    case 'blocklist':
      if (type === 'get') return result(iq, [node('list', { dhash: 'sim' }, [])]);
      break;
    case 'w':
      if (type === 'get' && first?.tag === 'props') return result(iq, [node('props', { protocol: '2', hash: 'sim' }, [])]);
      break;
    case 'abt':
      if (type === 'get' && first?.tag === 'props') return result(iq, [node('props', { protocol: '1', hash: 'sim' }, [])]);
      break;
    case 'w:m': // where to upload media
      if (type === 'set' && first?.tag === 'media_conn' && media) return result(iq, [mediaConnNode(media)]);
      break;
    case 'usync':
      if (type === 'get' && first?.tag === 'usync') return result(iq, [usync(first, accounts)]);
      break;
  }
  return iqError(iq, 501, 'feature-not-implemented');
}

function readKey(n: Node | undefined): { id: Buffer; value: Buffer; signature?: Buffer } | undefined {
  const id = bytes(child(n, 'id'));
  const value = bytes(child(n, 'value'));
  if (id?.length !== 3 || value?.length !== 32) return undefined;
  return { id, value, signature: bytes(child(n, 'signature')) };
}

/** Prekey upload (whatsmeow uploadPreKeys, Baileys uploadPreKeys): registration id, identity, one-time keys, signed prekey. */
function upload(iq: Node, keys: UploadedKeys): Node {
  const registration = bytes(child(iq, 'registration'));
  const identity = bytes(child(iq, 'identity'));
  const skey = readKey(child(iq, 'skey'));
  const list = children(child(iq, 'list')).map(readKey);
  if (registration?.length !== 4 || identity?.length !== 32 || !skey?.signature || list.some((k) => !k)) return iqError(iq, 400, 'bad-request');
  keys.registration = registration;
  keys.identity = identity;
  keys.signedPreKey = { id: skey.id, value: skey.value, signature: skey.signature };
  for (const k of list) keys.preKeys.set(k!.id.toString('hex'), { id: k!.id, value: k!.value });
  return result(iq);
}

/** The key bundle the server holds for this device (404 before any upload); the hash is SHA-1 over the key material. */
function digest(iq: Node, keys: UploadedKeys): Node {
  const { registration, identity, signedPreKey: skey } = keys;
  if (!registration || !identity || !skey) return iqError(iq, 404, 'item-not-found');
  const preKeys = [...keys.preKeys.values()];
  const hash = createHash('sha1').update(identity).update(skey.value).update(skey.signature);
  for (const k of preKeys) hash.update(k.value);
  return result(iq, [
    node('digest', {}, [
      node('type', {}, Buffer.from([5])),
      node('registration', {}, registration),
      node('identity', {}, identity),
      node('skey', {}, [node('id', {}, skey.id), node('value', {}, skey.value), node('signature', {}, skey.signature)]),
      node('list', {}, preKeys.map((k) => node('id', {}, k.id))),
      node('hash', {}, hash.digest()),
    ]),
  ]);
}

/**
 * A usync query: for every listed user the protocols asked for in <query>
 * (devices, lid, contact, status), from the simulated accounts. Unknown
 * numbers come back as not on WhatsApp (contact type "out", no devices).
 */
function usync(query: Node, accounts: Accounts): Node {
  const protocols = children(child(query, 'query')).map((q) => q.tag);
  const users = children(child(query, 'list')).map((u) => {
    const contact = bytes(child(u, 'contact'))?.toString();
    const phone = u.attrs.jid ? jidUser(u.attrs.jid) : (contact ?? '').replace(/\D/g, '');
    const account = phone ? accounts.get(phone) : undefined;
    const answers: Node[] = [];
    for (const p of protocols) {
      if (p === 'devices') {
        const ids = account ? [0, ...[...account.devices.values()].map((d) => d.deviceId)] : [];
        answers.push(
          node('devices', {}, [
            node(
              'device-list',
              {},
              ids.map((id) => node('device', { id: String(id), ...(id ? { 'key-index': String(account!.devices.get(`${phone}:${id}@s.whatsapp.net`)?.keyIndex ?? 0) } : {}) })),
            ),
          ]),
        );
      } else if (p === 'lid') {
        answers.push(node('lid', account ? { val: `${account.lidUser}@lid` } : {}));
      } else if (p === 'contact') {
        answers.push(node('contact', { type: account ? 'in' : 'out' }, contact));
      } else if (p === 'status') {
        answers.push(node('status', { t: '0' }, account ? '' : undefined));
      }
    }
    return node('user', { jid: `${account?.phone ?? phone}@s.whatsapp.net` }, answers);
  });
  return node('usync', { sid: query.attrs.sid, index: '0', last: 'true', mode: query.attrs.mode, context: query.attrs.context }, [
    node('result', {}, protocols.map((p) => node(p, {}))),
    node('list', {}, users),
  ]);
}
