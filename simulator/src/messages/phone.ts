/**
 * A simulated primary phone's messaging (device 0 of an account), with its
 * own Signal sessions (libsignal, keys in account.signal):
 * - it decrypts what reaches it, keeps the decoded content (its inbox) and
 *   answers with a delivery receipt (autoDeliver, default on) and, when
 *   asked or with autoRead, a read receipt, to the sending device;
 * - it sends messages to every device of the recipient account (its
 *   primary phone and linked devices, sessions from their prekey bundles)
 *   and a DeviceSentMessage copy to its own linked devices, as a phone does;
 * - it records the receipts and acks clients send back for those.
 * Stanzas are handled one at a time, in arrival order.
 */
import { proto } from 'baileys';
import { SimulatorError, type Log } from '../errors';
import { MMS_TYPE, decryptMedia, encryptMedia, type MediaKind } from '../media/keys';
import { directPath, type MediaStore } from '../media/store';
import { decrypt, encrypt, signalAddress, type EncType } from '../signal/cipher';
import { takeBundle } from '../signal/bundles';
import type { Account, Accounts, DeviceRef } from '../state';
import { bytes, child, children, node, type Node } from '../wire';
import { randomBytes } from '../crypto';
import { buildMessage, encMediaType, readMessage, stanzaType, type MediaRef, type Outgoing, type ReceivedContent, type UploadedMedia } from './content';
import type { Router } from './router';

export interface PhoneSettings {
  autoDeliver: boolean;
  autoRead: boolean;
}

/** A message the phone received, as `GET /phones/{phone}/messages` lists it. */
export type InboxEntry = ReceivedContent & {
  /** Cursor: increases by one per kept message. */
  seq: number;
  id: string;
  /** The sender's phone number (digits). */
  from: string;
  /** The sending device's JID. */
  fromDevice: string;
  receivedAt: string;
};

export interface SentEntry {
  id: string;
  to: string;
  type: string;
  sentAt: string;
  /** Devices the message was encrypted for. */
  devices: string[];
  /** Receipts from the recipient's devices (and the sender's own, type "sender"). */
  receipts: { from: string; type: string; at: string }[];
  /** Acks clients sent for the stanza (error set on a nack). */
  acks: { from: string; error?: string; at: string }[];
}

/** The media upload a phone does before sending (the media server's store). */
export interface PhoneMedia {
  store: MediaStore;
  /** https://host:port, for the message's url. */
  baseUrl: string;
}

const MAX_KEPT = 100_000;
const now = (): string => String(Math.floor(Date.now() / 1000));
const userJid = (phone: string): string => `${phone}@s.whatsapp.net`;
export const newMessageId = (): string => `3EB0${randomBytes(10).toString('hex').toUpperCase()}`;

export class SimulatedPhone {
  settings: PhoneSettings = { autoDeliver: true, autoRead: false };
  private readonly inbox: InboxEntry[] = [];
  /** Inbox ids per chat (sender phone) → sending device JID, for read receipts and reply targets. */
  private readonly received = new Map<string, string>();
  private readonly sent = new Map<string, SentEntry>();
  private seq = 0;
  private queue: Promise<void> = Promise.resolve();
  private sending: Promise<void> = Promise.resolve();
  /** Stanzas that could not be decrypted or read, for tests and logs. */
  readonly failures: { id?: string; from?: string; error: string }[] = [];

  constructor(
    readonly account: Account,
    private readonly accounts: Accounts,
    private readonly router: Router,
    private readonly media: PhoneMedia,
    private readonly log: Log,
  ) {}

  get jid(): string {
    return userJid(this.account.phone);
  }

  // ------------------------------------------------------------ receiving

  deliver(stanza: Node): void {
    this.queue = this.queue
      .then(() => this.handle(stanza))
      .catch((err: unknown) => {
        const error = err instanceof Error ? err.message : String(err);
        this.failures.push({ id: stanza.attrs.id, from: stanza.attrs.from, error });
        this.log('warn', 'the phone could not handle a stanza', { phone: this.account.phone, tag: stanza.tag, id: stanza.attrs.id, error });
      });
  }

  /** Resolves once every stanza delivered so far is handled. */
  idle(): Promise<void> {
    return this.queue;
  }

  private async handle(stanza: Node): Promise<void> {
    if (stanza.tag === 'message') return this.onMessage(stanza);
    if (stanza.tag === 'receipt') return this.onReceipt(stanza);
    if (stanza.tag === 'ack') return this.onAck(stanza);
  }

  private async onMessage(stanza: Node): Promise<void> {
    const { id, from } = stanza.attrs;
    const sender = this.accounts.resolve(from);
    const enc = child(stanza, 'enc');
    if (!id || !from || !sender || !enc) throw new Error('message without id, known sender or enc');
    const type = enc.attrs.type as EncType;
    if (type !== 'pkmsg' && type !== 'msg') throw new Error(`enc type ${enc.attrs.type} is not simulated`);
    const plaintext = await decrypt(this.account.signal, signalAddress(sender.account.phone, sender.deviceId), type, bytes(enc) ?? Buffer.alloc(0));
    const message = proto.Message.decode(plaintext);
    const content = readMessage(message, (ref) => this.fetchMedia(ref));
    const key = `${sender.account.phone}/${id}`;
    const again = this.received.has(key); // a resend (e.g. by a restarted sender): answered again, kept once
    this.received.set(key, from);
    if (content.type === 'protocol') return;
    if (!again) this.keep({ ...content, seq: ++this.seq, id, from: sender.account.phone, fromDevice: from, receivedAt: new Date().toISOString() });
    if (content.fromMe) {
      this.sendReceipt(sender, [id], 'sender', stanza.attrs.recipient);
      return;
    }
    if (this.settings.autoDeliver) this.sendReceipt(sender, [id]);
    if (this.settings.autoRead) this.sendReceipt(sender, [id], 'read');
  }

  private keep(entry: InboxEntry): void {
    this.inbox.push(entry);
    if (this.inbox.length > MAX_KEPT) this.inbox.shift();
  }

  private fetchMedia(ref: MediaRef): Buffer {
    const file = this.media.store.byPath(ref.url) ?? this.media.store.byPath(ref.directPath);
    if (!file) throw new Error('media not found on the media server');
    if (!ref.mediaKey?.length) throw new Error('message without a media key');
    return decryptMedia(file.encrypted, ref.kind, ref.mediaKey, { fileEncSha256: ref.fileEncSha256 ?? undefined, fileSha256: ref.fileSha256 ?? undefined });
  }

  private sendReceipt(to: DeviceRef, ids: string[], type?: string, recipient?: string): void {
    const [first, ...rest] = ids;
    const list = rest.length ? [node('list', {}, rest.map((id) => node('item', { id })))] : undefined;
    this.router.deliver(to, node('receipt', { from: this.jid, id: first, t: now(), type, recipient }, list));
  }

  private onReceipt(stanza: Node): void {
    const ids = [stanza.attrs.id, ...children(child(stanza, 'list')).map((i) => i.attrs.id)].filter((x): x is string => Boolean(x));
    const at = new Date().toISOString();
    for (const id of ids) this.sent.get(id)?.receipts.push({ from: stanza.attrs.from ?? '', type: stanza.attrs.type || 'delivery', at });
  }

  private onAck(stanza: Node): void {
    const entry = stanza.attrs.id ? this.sent.get(stanza.attrs.id) : undefined;
    entry?.acks.push({ from: stanza.attrs.from ?? '', error: stanza.attrs.error, at: new Date().toISOString() });
  }

  /** Inbox entries after a cursor (`seq`) or an ISO time. */
  messages(since?: { seq?: number; time?: number }): InboxEntry[] {
    return this.inbox.filter((e) => (since?.seq === undefined || e.seq > since.seq) && (since?.time === undefined || Date.parse(e.receivedAt) > since.time));
  }

  sentMessages(): SentEntry[] {
    return [...this.sent.values()];
  }

  /** Read receipts for messages of `chat` (a phone number) this phone received. */
  read(chat: string, ids: string[]): { read: string[] } {
    const byDevice = new Map<string, string[]>();
    for (const id of ids) {
      const device = this.received.get(`${chat}/${id}`);
      if (!device) throw new SimulatorError(404, 'unknown_message', `no message ${id} from ${chat} on this phone`);
      byDevice.set(device, [...(byDevice.get(device) ?? []), id]);
    }
    for (const [device, list] of byDevice) this.sendReceipt(this.accounts.resolve(device)!, list, 'read');
    return { read: ids };
  }

  // ------------------------------------------------------------ sending

  /**
   * Sends a message to every device of `out.to` and a copy to this account's
   * linked devices. Sends run one at a time, in call order (two concurrent
   * first messages must not start two sessions with one device).
   */
  send(out: Outgoing): Promise<{ id: string }> {
    const run = this.sending.then(() => this.sendNow(out));
    this.sending = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async sendNow(out: Outgoing): Promise<{ id: string }> {
    const recipient = this.accounts.get(out.to);
    if (!recipient) throw new SimulatorError(404, 'unknown_recipient', `${out.to} is not a simulated account (create it with POST /phones)`);
    const chat = userJid(out.to);
    const uploaded = out.media ? this.upload(out.type as MediaKind, out.media.bytes) : undefined;
    const message = buildMessage(
      out,
      {
        chat,
        self: this.jid,
        fromMe: (id) => (this.sent.has(id) ? true : this.received.has(`${out.to}/${id}`) ? false : undefined),
      },
      uploaded,
    );
    const id = newMessageId();
    const plaintext = Buffer.from(proto.Message.encode(message).finish());
    const copy = Buffer.from(proto.Message.encode({ deviceSentMessage: { destinationJid: chat, message } }).finish());
    const targets: { ref: DeviceRef; jid: string; plaintext: Buffer }[] = [];
    const deviceIds = (a: Account) => [0, ...[...a.devices.values()].filter((d) => d.keys.identity).map((d) => d.deviceId)];
    for (const d of deviceIds(recipient)) targets.push({ ref: { account: recipient, deviceId: d }, jid: d ? `${out.to}:${d}@s.whatsapp.net` : chat, plaintext });
    if (recipient !== this.account) {
      for (const d of deviceIds(this.account).filter((x) => x !== 0)) targets.push({ ref: { account: this.account, deviceId: d }, jid: `${this.account.phone}:${d}@s.whatsapp.net`, plaintext: copy });
    }
    const entry: SentEntry = { id, to: out.to, type: out.type, sentAt: new Date().toISOString(), devices: [], receipts: [], acks: [] };
    this.sent.set(id, entry);
    const t = now();
    const mediatype = encMediaType(message);
    for (const target of targets) {
      const { phone } = target.ref.account;
      const enc = await encrypt(this.account.signal, signalAddress(phone, target.ref.deviceId), target.plaintext, () => takeBundle(this.accounts, phone, target.ref.deviceId));
      const ownCopy = target.ref.account === this.account;
      const attrs: Record<string, string | undefined> = {
        from: this.jid,
        sender_lid: `${this.account.lidUser}@lid`,
        id,
        t,
        type: stanzaType(message),
        notify: this.account.phone,
        recipient: ownCopy ? chat : undefined,
        edit: out.type === 'edit' ? '1' : out.type === 'revoke' ? '7' : undefined,
      };
      this.router.deliver(target.ref, node('message', attrs, [node('enc', { v: '2', type: enc.type, mediatype, 'decrypt-fail': out.type === 'reaction' || out.type === 'edit' ? 'hide' : undefined }, enc.body)]));
      entry.devices.push(target.jid);
    }
    this.log('debug', 'phone sent a message', { from: this.account.phone, to: out.to, id, type: out.type, devices: entry.devices });
    return { id };
  }

  private upload(kind: MediaKind, bytes: Buffer): UploadedMedia {
    const enc = encryptMedia(bytes, kind);
    const file = this.media.store.put(MMS_TYPE[kind], enc.encrypted);
    return {
      url: `${this.media.baseUrl}${directPath(file.id)}`,
      directPath: directPath(file.id),
      mediaKey: enc.mediaKey,
      fileSha256: enc.fileSha256,
      fileEncSha256: enc.fileEncSha256,
      fileLength: enc.fileLength,
    };
  }
}
