/**
 * Prekey bundles: the server hands out a device's registration id, identity
 * key, signed prekey and one one-time prekey — each one-time prekey only
 * once, as WhatsApp does (a device whose stock ran out gets a bundle
 * without one). Primary phones' keys come from their PhoneSignalStore,
 * linked devices' from what they uploaded (`encrypt` set with `<list>`).
 *
 * The `encrypt` get with `<key><user jid=…/></key>` (whatsmeow
 * fetchPreKeys) is answered here.
 */
import { child, children, node, type Node } from '../wire';
import type { Accounts, Device, UploadedKeys } from '../state';
import type { WireBundle } from './store';

const u24 = (n: number): Buffer => Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
const readU24 = (b: Buffer): number => (b[0]! << 16) | (b[1]! << 8) | b[2]!;

/** A linked device's bundle from its upload, consuming one one-time prekey; undefined before any upload. */
export function takeUploadedBundle(keys: UploadedKeys): WireBundle | undefined {
  const { registration, identity, signedPreKey } = keys;
  if (!registration || !identity || !signedPreKey) return undefined;
  const first = keys.preKeys.entries().next();
  let preKey: WireBundle['preKey'];
  if (!first.done) {
    const [hex, k] = first.value;
    keys.preKeys.delete(hex);
    preKey = { id: readU24(k.id), public: k.value };
  }
  return {
    registrationId: registration.readUInt32BE(0),
    identity,
    signedPreKey: { id: readU24(signedPreKey.id), public: signedPreKey.value, signature: signedPreKey.signature },
    preKey,
  };
}

/** The bundle of device `deviceId` of the account (0: the simulated primary phone). */
export function takeBundle(accounts: Accounts, phone: string, deviceId: number): WireBundle | undefined {
  const account = accounts.get(phone);
  if (!account) return undefined;
  if (deviceId === 0) return account.signal.takeBundle();
  const device: Device | undefined = [...account.devices.values()].find((d) => d.deviceId === deviceId);
  return device ? takeUploadedBundle(device.keys) : undefined;
}

function bundleNode(jid: string, b: WireBundle): Node {
  const registration = Buffer.alloc(4);
  registration.writeUInt32BE(b.registrationId);
  const content: Node[] = [
    node('registration', {}, registration),
    node('type', {}, Buffer.from([5])),
    node('identity', {}, b.identity),
    node('skey', {}, [node('id', {}, u24(b.signedPreKey.id)), node('value', {}, b.signedPreKey.public), node('signature', {}, b.signedPreKey.signature)]),
  ];
  if (b.preKey) content.push(node('key', {}, [node('id', {}, u24(b.preKey.id)), node('value', {}, b.preKey.public)]));
  return node('user', { jid }, content);
}

/** The `<list>` answering `<key><user jid=…/>…</key>`: a bundle per device, or an error node per unknown one. */
export function preKeyList(key: Node, accounts: Accounts): Node {
  const users = children(key)
    .filter((u) => u.tag === 'user' && u.attrs.jid)
    .map((u) => {
      const jid = u.attrs.jid!;
      const target = accounts.resolve(jid);
      const bundle = target ? takeBundle(accounts, target.account.phone, target.deviceId) : undefined;
      return bundle ? bundleNode(jid, bundle) : node('user', { jid }, [node('error', { code: '404', text: 'item-not-found' })]);
    });
  return node('list', {}, users);
}

export const isPreKeyFetch = (iq: Node): boolean => iq.attrs.xmlns === 'encrypt' && iq.attrs.type === 'get' && Boolean(child(iq, 'key'));
