/**
 * The simulated WhatsApp server: what happens on each socket (registration
 * with QR refs, login with the registered keys, info queries) and what the
 * simulated phones do (scan a QR, type a pairing code, unlink a device).
 * Transport details live in session.ts, wire.ts and noise.ts; messages,
 * receipts and acks go to messages/router.ts, the phones' messaging to
 * messages/phone.ts, Signal keys to signal/, media to media/.
 */
import { generateCertificates, type Certificates } from './certs';
import { SimulatorError, type Log } from './errors';
import { randomBytes } from './crypto';
import { SERVER_JID, answerIq, iqError, result } from './iq';
import { buildDeviceIdentity, companionFinish, parseLinkCode, parseQrText, primaryHello, verifyDeviceSign, type PrimaryHello } from './phone';
import { Session, newStanzaId, type SessionHandler, type SocketLike } from './session';
import { Accounts, deviceJid, deviceLid, normalizePhone, type Account, type Device } from './state';
import { bytes, child, children, jidUser, node, type Node } from './wire';
import { Router } from './messages/router';
import { SimulatedPhone } from './messages/phone';
import { MediaStore } from './media/store';
import type { MediaServer } from './media/server';

export { SimulatorError, type Log };

/** QR refs per registration socket, and how long each is shown (whatsmeow qrchan.go: 60 s, then 20 s each). */
export const QR_REFS = 6;
const FIRST_REF_MS = 60_000;
const NEXT_REF_MS = 20_000;
/** Clock skew allowed between client and server when a ref is scanned. */
const REF_GRACE_MS = 5_000;
/** How long the phone waits for the companion's answers while linking. */
const LINK_ANSWER_MS = 15_000;

interface Registration {
  kind: 'registration';
  identityKey: Buffer;
  refs: string[];
  startedAt: number;
  /** Set once a phone started linking this socket. */
  linking: boolean;
  code?: CodePairing;
}

interface CodePairing {
  phone: string;
  ref: Buffer;
  wrappedCompanionEphemeral: Buffer;
  at: number;
  /** While the phone waits for companion_finish. */
  awaiting?: { hello: PrimaryHello; account: Account; done: (r: { advSecret: Buffer; companionIdentity: Buffer } | Error) => void };
}

interface Login {
  kind: 'login';
  device: Device;
}

export interface SimulatorOptions {
  log?: Log;
  certificates?: Certificates;
  /** The HTTPS media server (media_conn answers name it); without one, media_conn is 501 and phones keep media in memory only. */
  media?: MediaServer;
}

export class Simulator implements SessionHandler {
  readonly certificates: Certificates;
  readonly accounts = new Accounts();
  private readonly sessions = new Set<Session>();
  private readonly refs = new Map<string, { session: Session; expiresAt: number }>();
  private unreachableUntil = 0;
  private readonly log: Log;
  readonly media: MediaServer | undefined;
  private readonly mediaStore: MediaStore;
  readonly router: Router;
  private readonly phones = new Map<string, SimulatedPhone>();

  constructor(opts: SimulatorOptions = {}) {
    this.certificates = opts.certificates ?? generateCertificates();
    this.log = opts.log ?? (() => {});
    this.media = opts.media;
    this.mediaStore = opts.media?.store ?? new MediaStore();
    this.router = new Router(this.accounts, (account) => this.simulatedPhone(account), this.log);
  }

  /** The primary phone's messaging side (created on first use). */
  private simulatedPhone(account: Account): SimulatedPhone {
    let phone = this.phones.get(account.phone);
    if (!phone) {
      phone = new SimulatedPhone(account, this.accounts, this.router, { store: this.mediaStore, baseUrl: this.media?.url ?? '' }, this.log);
      this.phones.set(account.phone, phone);
    }
    return phone;
  }

  /** The simulated phone of a number (404 unknown_phone). */
  phone(phoneInput: string): SimulatedPhone {
    return this.simulatedPhone(this.account(phoneInput));
  }

  get rootPublicKey(): string {
    return this.certificates.root.public.toString('hex');
  }

  // ------------------------------------------------------------ sockets

  /** False while a fault makes the server unreachable. */
  acceptsConnections(now = Date.now()): boolean {
    return now >= this.unreachableUntil;
  }

  openSession(ws: SocketLike): Session {
    const session = new Session(ws, this.certificates, this);
    this.sessions.add(session);
    session.onClose(() => this.sessions.delete(session));
    return session;
  }

  onProblem(session: Session, problem: string): void {
    this.log('warn', 'closing a socket after a protocol error', { session: session.id, problem });
  }

  onAuthenticated(session: Session): void {
    const payload = session.payload!;
    // uint64: a number or a Long, depending on protobufjs' long support; both print as decimal digits.
    const username = payload.username === null || payload.username === undefined ? '' : String(payload.username);
    if (/^[1-9]\d*$/.test(username)) {
      this.login(session, username, Number(payload.device ?? 0));
    } else if (payload.devicePairingData?.eIdent?.length === 32) {
      this.register(session, Buffer.from(payload.devicePairingData.eIdent));
    } else {
      this.log('warn', 'handshake payload neither logs in nor registers', { session: session.id });
      session.send(node('failure', { reason: '400', location: 'sim' }));
      session.streamError({ code: '400' });
    }
  }

  /** A new companion: QR refs to show (pair-device), valid while this socket lives. */
  private register(session: Session, identityKey: Buffer): void {
    const startedAt = Date.now();
    const refs = Array.from({ length: QR_REFS }, () => `2@${randomBytes(24).toString('base64')}`);
    const registration: Registration = { kind: 'registration', identityKey, refs, startedAt, linking: false };
    session.role = registration;
    refs.forEach((ref, i) => this.refs.set(ref, { session, expiresAt: startedAt + FIRST_REF_MS + i * NEXT_REF_MS + REF_GRACE_MS }));
    session.onClose(() => refs.forEach((ref) => this.refs.delete(ref)));
    const lifetime = FIRST_REF_MS + (QR_REFS - 1) * NEXT_REF_MS + REF_GRACE_MS;
    const timer = setTimeout(() => {
      if (!registration.linking) session.close(1000, 'QR refs expired');
    }, lifetime);
    session.onClose(() => clearTimeout(timer));
    this.log('debug', 'registration socket: sending QR refs', { session: session.id });
    session.send(node('iq', { from: SERVER_JID, type: 'set', id: newStanzaId(), xmlns: 'md' }, [node('pair-device', {}, refs.map((r) => node('ref', {}, Buffer.from(r))))]));
  }

  /** A linked companion logs in with its registered Noise key. */
  private login(session: Session, phone: string, deviceId: number): void {
    const device = this.accounts.device(phone, deviceId);
    if (!device || !device.noiseKey.equals(session.clientStatic!)) {
      this.log('info', 'login refused: device not linked (or removed)', { session: session.id, phone, deviceId });
      session.send(node('failure', { reason: '401', location: 'sim' }));
      setTimeout(() => session.close(), 500);
      return;
    }
    const previous = device.session;
    if (previous && previous !== session && previous.isOpen) {
      this.log('info', 'device connected again: replacing its older socket', { jid: device.jid, old: previous.id, new: session.id });
      device.replaced++;
      previous.streamError({}, [node('conflict', { type: 'replaced' })]);
    }
    device.session = session;
    session.role = { kind: 'login', device } satisfies Login;
    session.onClose(() => {
      if (device.session === session) device.session = undefined;
    });
    const account = this.accounts.get(phone)!;
    const t = String(Math.floor(Date.now() / 1000));
    session.send(
      node('success', {
        t,
        props: '1',
        abprops: '1',
        location: 'sim',
        creation: String(Math.floor(account.createdAt.getTime() / 1000)),
        lid: device.lid,
        display_name: '',
      }),
    );
    session.send(node('ib', { from: SERVER_JID }, [node('offline', { count: '0' })]));
    this.router.flush(device);
    this.log('info', 'device logged in', { session: session.id, jid: device.jid });
  }

  async onNode(session: Session, n: Node): Promise<void> {
    const role = session.role as Registration | Login | undefined;
    if (role?.kind === 'login') {
      const reply = (r: Node) => session.send(r);
      if (n.tag === 'message') return this.router.onMessage(role.device, n, reply);
      if (n.tag === 'receipt') return this.router.onReceipt(role.device, n, reply);
      if (n.tag === 'ack') return this.router.onAck(role.device, n);
    }
    if (n.tag !== 'iq') return; // presence, chatstate, calls: not simulated
    const type = n.attrs.type;
    if (type !== 'get' && type !== 'set') return; // answers to requests nobody waits for any more
    if (role?.kind === 'login') {
      if (n.attrs.xmlns === 'md' && child(n, 'remove-companion-device')) {
        this.removeDevice(role.device, 'companion logged out');
        session.send(result(n));
        return;
      }
      const answer = answerIq(n, role.device, this.accounts, this.media);
      if (child(answer, 'error')?.attrs.code === '501') this.log('debug', 'IQ not simulated (501)', { xmlns: n.attrs.xmlns, type: n.attrs.type, query: child(n, children(n)[0]?.tag ?? '')?.tag });
      session.send(answer);
      return;
    }
    if (role?.kind === 'registration') {
      const reg = child(n, 'link_code_companion_reg');
      if (n.attrs.xmlns === 'md' && reg?.attrs.stage === 'companion_hello') return this.companionHello(session, role, n, reg);
      if (n.attrs.xmlns === 'md' && reg?.attrs.stage === 'companion_finish') return this.companionFinished(session, role, n, reg);
      if (n.attrs.xmlns === 'w:p') return session.send(result(n));
    }
    session.send(iqError(n, 401, 'not-authorized'));
  }

  // ------------------------------------------------------------ pairing code

  private companionHello(session: Session, role: Registration, iq: Node, reg: Node): void {
    const phone = normalizePhone(jidUser(reg.attrs.jid));
    const wrapped = bytes(child(reg, 'link_code_pairing_wrapped_companion_ephemeral_pub'));
    const authKey = bytes(child(reg, 'companion_server_auth_key_pub'));
    if (!phone || wrapped?.length !== 80 || !authKey?.equals(session.clientStatic!)) return session.send(iqError(iq, 400, 'bad-request'));
    if (!this.accounts.get(phone)) return session.send(iqError(iq, 404, 'item-not-found'));
    const ref = Buffer.from(`2@${randomBytes(24).toString('base64')}`);
    role.code = { phone, ref, wrappedCompanionEphemeral: wrapped, at: Date.now() };
    session.send(result(iq, [node('link_code_companion_reg', {}, [node('link_code_pairing_ref', {}, ref)])]));
  }

  private companionFinished(session: Session, role: Registration, iq: Node, reg: Node): void {
    const code = role.code;
    const ref = bytes(child(reg, 'link_code_pairing_ref'));
    const wrappedBundle = bytes(child(reg, 'link_code_pairing_wrapped_key_bundle'));
    if (!code?.awaiting || !ref?.equals(code.ref) || !wrappedBundle) return session.send(iqError(iq, 404, 'item-not-found'));
    const { hello, account, done } = code.awaiting;
    code.awaiting = undefined;
    try {
      const out = companionFinish(hello, account.identity, wrappedBundle);
      if (!out.companionIdentity.equals(role.identityKey)) throw new Error('key bundle names another companion identity');
      session.send(result(iq));
      done(out);
    } catch (err) {
      session.send(iqError(iq, 400, 'bad-request'));
      done(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** The phone enters a pairing code: find the companion that asked for it and link it. */
  async linkByCode(phoneInput: string, codeInput: unknown): Promise<{ deviceJid: string }> {
    const account = this.account(phoneInput);
    const code = parseLinkCode(codeInput);
    if (!code) throw new SimulatorError(422, 'malformed_code', 'code must be 8 characters of the pairing-code alphabet (XXXX-XXXX)');
    const candidates = [...this.sessions]
      .filter((s) => s.isOpen)
      .map((s) => ({ session: s, role: s.role as Registration | undefined }))
      .filter((c) => c.role?.kind === 'registration' && !c.role.linking && c.role.code?.phone === account.phone && !c.role.code.awaiting)
      .sort((a, b) => b.role!.code!.at - a.role!.code!.at);
    if (!candidates.length) throw new SimulatorError(410, 'no_pending_code', `no companion is waiting for a pairing code for ${account.phone}`);
    for (const { session, role } of candidates) {
      const pending = role!.code!;
      const hello = primaryHello(code, pending.wrappedCompanionEphemeral);
      const finished = new Promise<{ advSecret: Buffer; companionIdentity: Buffer } | Error>((resolve) => {
        const timer = setTimeout(() => resolve(new Error('no companion_finish in time')), LINK_ANSWER_MS);
        session.onClose(() => resolve(new Error('the companion disconnected')));
        pending.awaiting = {
          hello,
          account,
          done: (r) => {
            clearTimeout(timer);
            resolve(r);
          },
        };
      });
      session.send(
        node('notification', { from: SERVER_JID, id: newStanzaId(), type: 'link_code_companion_reg', t: String(Math.floor(Date.now() / 1000)) }, [
          node('link_code_companion_reg', { stage: 'primary_hello' }, [
            node('link_code_pairing_ref', {}, pending.ref),
            node('link_code_pairing_wrapped_primary_ephemeral_pub', {}, hello.wrappedPrimaryEphemeral),
            node('primary_identity_pub', {}, account.identity.public),
          ]),
        ]),
      );
      const outcome = await finished;
      if (pending.awaiting?.hello === hello) pending.awaiting = undefined;
      if (outcome instanceof Error) {
        this.log('info', 'pairing code did not open the companion key bundle', { session: session.id, reason: outcome.message });
        continue;
      }
      return this.pair(account, session, role!, outcome.advSecret);
    }
    throw new SimulatorError(410, 'unknown_code', 'no companion waiting for this phone accepted that code (wrong or expired code)');
  }

  // ------------------------------------------------------------ QR

  /** The phone scans a QR text: link the companion on the socket whose ref it shows. */
  async linkByQr(phoneInput: string, qrInput: unknown): Promise<{ deviceJid: string }> {
    const account = this.account(phoneInput);
    const qr = parseQrText(qrInput);
    if (!qr) throw new SimulatorError(422, 'malformed_qr', 'qr must be the text "ref,noiseKey,identityKey,advSecret" (base64 keys of 32 bytes)');
    const entry = this.refs.get(qr.ref);
    const role = entry?.session.role as Registration | undefined;
    if (!entry || !entry.session.isOpen || role?.kind !== 'registration' || role.linking || Date.now() > entry.expiresAt) {
      throw new SimulatorError(410, 'expired_ref', 'this QR code is expired or unknown (scan the current one)');
    }
    if (!qr.noiseKey.equals(entry.session.clientStatic!) || !qr.identityKey.equals(role.identityKey)) {
      throw new SimulatorError(422, 'qr_mismatch', 'the keys in this QR code do not belong to the connection that shows its ref');
    }
    return this.pair(account, entry.session, role, qr.advSecret);
  }

  /** pair-success → pair-device-sign → the device exists → stream error 515 (the client reconnects and logs in). */
  private async pair(account: Account, session: Session, role: Registration, advSecret: Buffer): Promise<{ deviceJid: string }> {
    if (role.linking) throw new SimulatorError(410, 'expired_ref', 'this companion is already being linked');
    role.linking = true;
    role.refs.forEach((r) => this.refs.delete(r));
    const deviceId = account.nextDeviceId++;
    const keyIndex = account.nextKeyIndex++;
    const jid = deviceJid(account.phone, deviceId);
    const lid = deviceLid(account.lidUser, deviceId);
    const identity = buildDeviceIdentity({ account: account.identity, rawId: account.rawId, keyIndex, companionIdentity: role.identityKey, advSecret });
    const platform = 'android';
    let answer: Node;
    try {
      answer = await session.request(
        node('iq', { from: SERVER_JID, type: 'set', id: newStanzaId(), xmlns: 'md' }, [
          node('pair-success', {}, [
            node('device-identity', { 'key-index': String(keyIndex) }, identity.container),
            node('platform', { name: platform }),
            node('device', { jid, lid }),
          ]),
        ]),
        LINK_ANSWER_MS,
      );
    } catch (err) {
      throw new SimulatorError(410, 'companion_gone', `the companion did not confirm the link: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (answer.attrs.type !== 'result') {
      const e = child(answer, 'error');
      throw new SimulatorError(502, 'link_rejected', `the companion rejected the link: ${e?.attrs.code ?? '?'} ${e?.attrs.text ?? ''}`.trim());
    }
    const signed = bytes(child(child(answer, 'pair-device-sign'), 'device-identity'));
    if (!signed || !verifyDeviceSign(signed, identity.details, role.identityKey, account.identity.public)) {
      session.close(1002, 'bad device signature');
      throw new SimulatorError(502, 'bad_device_signature', 'the companion signed the device identity with another key');
    }
    const device: Device = {
      jid,
      lid,
      deviceId,
      noiseKey: Buffer.from(session.clientStatic!),
      identityKey: role.identityKey,
      keyIndex,
      platform,
      linkedAt: new Date(),
      keys: { preKeys: new Map() },
      session: undefined,
      replaced: 0,
      pending: [],
    };
    account.devices.set(jid, device);
    this.log('info', 'device linked', { jid, lid, session: session.id });
    session.streamError({ code: '515' });
    return { deviceJid: jid };
  }

  // ------------------------------------------------------------ phone actions

  createPhone(phoneInput: unknown): { phone: string; lid: string; created: boolean } {
    const phone = normalizePhone(phoneInput);
    if (!phone) throw new SimulatorError(400, 'invalid_phone', 'phone must be an international number of 7 to 15 digits (an optional leading +)');
    const { account, created } = this.accounts.ensure(phone);
    return { phone: account.phone, lid: `${account.lidUser}@lid`, created };
  }

  devices(phoneInput: string): { jid: string; lid: string; platform: string; linkedAt: string; connected: boolean; replaced: number; preKeys: number; pending: number }[] {
    const account = this.account(phoneInput);
    return [...account.devices.values()].map((d) => ({
      jid: d.jid,
      lid: d.lid,
      platform: d.platform,
      linkedAt: d.linkedAt.toISOString(),
      connected: Boolean(d.session?.isOpen),
      replaced: d.replaced,
      preKeys: d.keys.preKeys.size,
      pending: d.pending.length,
    }));
  }

  /** The phone removes a linked device; a connected one is told (stream error 401 device_removed). */
  unlink(phoneInput: string, jid: string): { deviceJid: string; wasConnected: boolean } {
    const account = this.account(phoneInput);
    const device = account.devices.get(jid);
    if (!device) throw new SimulatorError(404, 'unknown_device', `${jid} is not linked to ${account.phone}`);
    const wasConnected = Boolean(device.session?.isOpen);
    this.removeDevice(device, 'unlinked by the phone');
    if (device.session?.isOpen) device.session.streamError({ code: '401' }, [node('conflict', { type: 'device_removed' })]);
    return { deviceJid: jid, wasConnected };
  }

  private removeDevice(device: Device, why: string): void {
    this.accounts.get(jidUser(device.jid))?.devices.delete(device.jid);
    this.log('info', 'device removed', { jid: device.jid, why });
  }

  /** Fault injection: drop every socket now and/or refuse new ones for a while. */
  faults(opts: { dropConnections?: boolean; unreachableMs?: number }): { dropped: number; unreachableUntil: string | null } {
    let dropped = 0;
    if (opts.unreachableMs !== undefined) this.unreachableUntil = Date.now() + opts.unreachableMs;
    if (opts.dropConnections) {
      for (const s of [...this.sessions]) {
        s.terminate();
        dropped++;
      }
    }
    this.log('info', 'faults injected', { dropped, unreachableMs: opts.unreachableMs });
    return { dropped, unreachableUntil: this.unreachableUntil > Date.now() ? new Date(this.unreachableUntil).toISOString() : null };
  }

  /** Closes every socket (the server stops). */
  closeAll(): void {
    for (const s of [...this.sessions]) s.close(1001, 'simulator stopping');
  }

  private account(phoneInput: string): Account {
    const phone = normalizePhone(phoneInput);
    const account = phone ? this.accounts.get(phone) : undefined;
    if (!account) throw new SimulatorError(404, 'unknown_phone', `no simulated phone ${phoneInput} (create it with POST /phones)`);
    return account;
  }
}
