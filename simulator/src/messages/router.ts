/**
 * The server's part of one-to-one messaging: it never decrypts anything.
 * - `<message>` from a linked device: one stanza per `<participants><to jid>`
 *   device (its `<enc>` only, plus the sender's `<device-identity>` when it
 *   is a pkmsg), from the sender's device JID, with `recipient` on copies
 *   for the sender's own devices; then `<ack class="message">` to the sender.
 * - `<receipt>` from a linked device goes to the device it names (`to` with
 *   a device part), or to every device of the account a user JID names
 *   (read receipts name the chat), from the receipting device; then
 *   `<ack class="receipt">`.
 * - `<ack>` from a linked device (for a stanza it was given) goes to the
 *   simulated phone that sent that stanza, which records it.
 * A primary phone (device 0) is in-process (messages/phone.ts); a linked
 * device that is offline gets its stanzas, in order, at its next login.
 */
import type { Log } from '../errors';
import type { Accounts, Account, Device, DeviceRef } from '../state';
import { child, children, jidUser, node, type Node } from '../wire';

/** What the router needs of a simulated primary phone. */
export interface PrimaryPhone {
  /** A stanza addressed to the phone (message, receipt, ack from a client). */
  deliver(stanza: Node): void;
}

/** Stanzas kept for an offline device at most (the oldest are dropped beyond). */
const MAX_PENDING = 10_000;

const now = (): string => String(Math.floor(Date.now() / 1000));

export class Router {
  /** Stanzas relayed to linked devices, for tests and logs. */
  relayed = 0;

  constructor(
    private readonly accounts: Accounts,
    private readonly phone: (account: Account) => PrimaryPhone,
    private readonly log: Log,
  ) {}

  /** The linked device of an account with this id. */
  private linked(account: Account, deviceId: number): Device | undefined {
    for (const d of account.devices.values()) if (d.deviceId === deviceId) return d;
    return undefined;
  }

  /** Hands a stanza to a device: the in-process phone, a connected socket, or the offline queue. */
  deliver(target: DeviceRef, stanza: Node): void {
    if (target.deviceId === 0) return this.phone(target.account).deliver(stanza);
    const device = this.linked(target.account, target.deviceId);
    if (!device) {
      this.log('debug', 'dropping a stanza for an unknown device', { phone: target.account.phone, deviceId: target.deviceId, tag: stanza.tag });
      return;
    }
    if (stanza.tag === 'message') this.relayed++;
    if (device.session?.isOpen) {
      device.session.send(stanza);
    } else {
      device.pending.push(stanza);
      if (device.pending.length > MAX_PENDING) device.pending.shift();
    }
  }

  /** The primary phone and every linked device of an account. */
  private allDevices(account: Account): DeviceRef[] {
    return [{ account, deviceId: 0 }, ...[...account.devices.values()].map((d) => ({ account, deviceId: d.deviceId }))];
  }

  /** A device logged in: what waited for it, in order. */
  flush(device: Device): void {
    const session = device.session;
    if (!session?.isOpen) return;
    for (const stanza of device.pending.splice(0)) session.send(stanza);
  }

  /** `<message>` from a logged-in linked device. */
  onMessage(sender: Device, n: Node, reply: (n: Node) => void): void {
    const { id, to } = n.attrs;
    if (!id || !to) return;
    const senderRef = this.accounts.resolve(sender.jid);
    const chat = this.accounts.resolve(to);
    const identity = child(n, 'device-identity');
    const participants = child(n, 'participants');
    const single = child(n, 'enc');
    const targets = participants
      ? children(participants)
          .filter((c) => c.tag === 'to')
          .map((c) => ({ jid: c.attrs.jid, enc: child(c, 'enc') }))
      : single
        ? [{ jid: to, enc: single }]
        : [];
    const t = now();
    for (const { jid, enc } of targets) {
      const target = this.accounts.resolve(jid);
      if (!target || !enc) {
        this.log('debug', 'message for an unknown device', { id, jid });
        continue;
      }
      const ownCopy = target.account === senderRef?.account && chat?.account !== senderRef?.account;
      const content = [enc, ...(enc.attrs.type === 'pkmsg' && identity ? [identity] : [])];
      this.deliver(
        target,
        node(
          'message',
          {
            from: sender.jid,
            sender_lid: sender.lid,
            id,
            t,
            type: n.attrs.type ?? 'text',
            category: n.attrs.category,
            edit: n.attrs.edit,
            recipient: ownCopy ? to : undefined,
          },
          content,
        ),
      );
    }
    reply(node('ack', { class: 'message', id, from: to, t }));
  }

  /** `<receipt>` from a logged-in linked device, for a message a device of `to` sent. */
  onReceipt(sender: Device, n: Node, reply: (n: Node) => void): void {
    const { id, to, type } = n.attrs;
    if (!id || !to) return;
    if (type === 'retry') this.log('warn', 'a client could not decrypt a message (retry receipt); retries are not simulated', { from: sender.jid, id });
    const target = this.accounts.resolve(to);
    if (target) {
      const stanza = node('receipt', { from: sender.jid, id, t: n.attrs.t ?? now(), type, recipient: n.attrs.recipient }, children(n).length ? children(n) : undefined);
      // A device JID ("…:3@…") names one device; a user JID (read receipts name the chat) every device of the account.
      const devices = to.includes(':') ? [target] : this.allDevices(target.account).filter((d) => !(d.account.phone === jidUser(sender.jid) && d.deviceId === sender.deviceId));
      for (const d of devices) this.deliver(d, stanza);
    }
    reply(node('ack', { class: 'receipt', id, from: to, type }));
  }

  /** `<ack>` from a linked device for a stanza it was given: the phone that sent it records it. */
  onAck(sender: Device, n: Node): void {
    const target = this.accounts.resolve(n.attrs.to);
    if (target?.deviceId === 0) this.phone(target.account).deliver(node('ack', { ...n.attrs, from: sender.jid }));
  }
}
