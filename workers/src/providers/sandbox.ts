import { randomBytes } from 'node:crypto';
import { COMMAND_NAMES, type CommandArgs, type CommandName, type MessageStatus, type SessionState } from '../../protocol/frames';
import { argsProblem } from '../args';
import type { SandboxConfig } from '../config';
import { ProviderError, type Provider, type ProviderContext } from './types';

type Timer = ReturnType<typeof setTimeout>;

export interface SandboxOptions extends SandboxConfig {
  instanceId: number;
}

/** The receipts a send produces, in the order the delays list them. */
const RECEIPTS: readonly Exclude<MessageStatus, 'queued' | 'failed'>[] = ['sent', 'delivered', 'read'];
type Receipt = (typeof RECEIPTS)[number];

/** The sandbox's tables in the instance schema (see StateStore). */
export const SANDBOX_TABLES = [
  `create table if not exists sandbox_device (
     id int primary key check (id = 1),
     device_id text not null,
     paired_at timestamptz not null
   )`,
  `create table if not exists sandbox_receipts (
     message_id text primary key,
     sent_at timestamptz not null,
     next_status text not null check (next_status in ('sent', 'delivered', 'read'))
   )`,
] as const;

/**
 * A simulated WhatsApp account with no network: it shows rotating QR codes
 * until the `sandbox.scan` command "scans" one (or enters a pairing code
 * from `pair-code`), then sends every message type (with timed receipts;
 * media URLs are not fetched: there is no network) and receives
 * (`sandbox.inbound`) messages in the received shape.
 *
 * Its session lives in the instance's state store: the pairing
 * (`sandbox_device`, one row while paired) and the receipts still to come
 * (`sandbox_receipts`, one row per message until its read receipt). A
 * restarted worker is connected again at once, without a QR, and emits the
 * receipts due meanwhile. Each write happens before the event it stands for
 * is emitted.
 */
export class SandboxProvider implements Provider {
  readonly name = 'sandbox';
  private ctx: ProviderContext | undefined;
  private state: SessionState = 'starting';
  private qrTimer: Timer | undefined;
  /** Pending receipt timers, so logout and stop can cancel them. */
  private readonly receiptTimers = new Set<Timer>();
  /** Receipt writes in flight; stop() lets them finish (and emit) before returning. */
  private readonly receiptWrites = new Set<Promise<void>>();
  /** Bumped by logout: receipts of an earlier session are dropped. */
  private session = 0;
  /** sandbox.faults: this many next sends fail with rate_limited (with retryAfter when set). */
  private faults: { rateLimitNext: number; retryAfter?: number } = { rateLimitNext: 0 };
  /** Typing indicators asked for (presence), newest last: the sandbox has no one to show them to. */
  readonly presences: { chat: string; state: string; at: number }[] = [];
  private stopped = false;
  /** Set when stop() returns: no context calls afterwards. */
  private finished = false;

  constructor(private readonly opts: SandboxOptions) {}

  async start(ctx: ProviderContext): Promise<void> {
    if (this.ctx) throw new Error('sandbox provider started twice');
    this.ctx = ctx;
    this.setState('starting');
    const { sql } = ctx.store;
    await ctx.store.migrate('sandbox', SANDBOX_TABLES);
    const [device] = await sql<{ device_id: string; paired_at: Date }[]>`select device_id, paired_at from sandbox_device where id = 1`;
    if (this.stopped) return;
    if (!device) {
      // Receipts without a pairing belong to a session that was logged out.
      await sql`delete from sandbox_receipts`;
      this.beginQrCycle();
      return;
    }
    const pending = await sql<{ message_id: string; sent_at: Date; next_status: Receipt }[]>`
      select message_id, sent_at, next_status from sandbox_receipts order by sent_at, message_id`;
    if (this.stopped) return;
    ctx.log.info({ deviceId: device.device_id, pairedAt: device.paired_at, pendingReceipts: pending.length }, 'sandbox session restored');
    this.setState('connected', 'session restored');
    for (const row of pending) {
      const index = RECEIPTS.indexOf(row.next_status);
      if (index >= 0) this.scheduleReceipt(row.message_id, row.sent_at.getTime(), index);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopQrRotation();
    this.cancelReceipts();
    await Promise.allSettled([...this.receiptWrites]);
    this.finished = true;
  }

  async execute(name: CommandName, args: unknown): Promise<Record<string, unknown>> {
    if (!this.ctx || this.stopped) throw new ProviderError('not_ready', 'sandbox provider is not running');
    if (!COMMAND_NAMES.includes(name) || name.startsWith('waba.')) {
      throw new ProviderError('unsupported_command', `the sandbox provider does not support ${JSON.stringify(name)}`);
    }
    const problem = argsProblem(name, args);
    if (problem) throw new ProviderError('invalid_args', `invalid arguments for ${name}: ${problem}`);
    switch (name) {
      case 'sandbox.scan':
        return this.scan();
      case 'send':
        return this.send(args as CommandArgs<'send'>);
      case 'sandbox.inbound':
        return this.inbound(args as CommandArgs<'sandbox.inbound'>);
      case 'logout':
        return this.logout();
      case 'read':
        this.requireConnected();
        return {};
      case 'pair-code':
        return this.pairCode(args as CommandArgs<'pair-code'>);
      case 'presence': {
        this.requireConnected();
        const { chat, state } = args as CommandArgs<'presence'>;
        this.presences.push({ chat, state, at: Date.now() });
        if (this.presences.length > 100) this.presences.shift();
        return {};
      }
      case 'sandbox.faults':
        this.faults = { ...(args as CommandArgs<'sandbox.faults'>) };
        return { rateLimitNext: this.faults.rateLimitNext };
      default:
        throw new ProviderError('unsupported_command', `the sandbox provider does not support ${JSON.stringify(name)}`);
    }
  }

  /**
   * Linking by phone number: the code the user would type on the phone. The
   * simulated phone "enters" it with sandbox.scan, as it scans a QR.
   */
  private pairCode(args: CommandArgs<'pair-code'>): Record<string, unknown> {
    if (this.state === 'connected') throw new ProviderError('already_connected', 'already paired and connected');
    if (this.state !== 'qr' && this.state !== 'pairing') throw new ProviderError('not_ready', `cannot link by code in state ${this.state}`);
    const own = this.ctx!.phone();
    if (own && args.phone !== own) throw new ProviderError('invalid_args', `phone ${args.phone} is not this instance's number (${own})`);
    const alphabet = 'ABCDEFGHJKLMNPQRSTVWXYZ23456789';
    const code = Array.from(randomBytes(8), (b) => alphabet[b % alphabet.length]).join('');
    this.stopQrRotation();
    this.setState('pairing', `enter pairing code ${code.slice(0, 4)}-${code.slice(4)} on the phone`);
    return { code };
  }

  private async scan(): Promise<Record<string, unknown>> {
    if (this.state === 'connected') throw new ProviderError('already_connected', 'already paired and connected');
    if (this.state !== 'qr' && this.state !== 'pairing') throw new ProviderError('not_ready', `no QR code to scan in state ${this.state}`);
    const byCode = this.state === 'pairing';
    this.stopQrRotation();
    this.setState('pairing', byCode ? 'pairing code entered' : 'QR code scanned');
    const deviceId = `sandbox-device-${randomBytes(8).toString('hex')}`;
    try {
      await this.ctx!.store.sql`
        insert into sandbox_device (id, device_id, paired_at) values (1, ${deviceId}, now())
        on conflict (id) do update set device_id = excluded.device_id, paired_at = excluded.paired_at`;
    } catch (err) {
      if (!this.stopped) this.beginQrCycle();
      throw err;
    }
    this.setState('connected', byCode ? 'paired by sandbox pairing code' : 'paired by sandbox scan');
    return { state: 'connected' };
  }

  private async send(args: CommandArgs<'send'>): Promise<Record<string, unknown>> {
    this.requireConnected();
    if (this.faults.rateLimitNext > 0) {
      this.faults.rateLimitNext--;
      const { retryAfter } = this.faults;
      throw new ProviderError('rate_limited', 'sandbox: rate limited (injected by sandbox/faults)', { details: retryAfter === undefined ? undefined : { retryAfter } });
    }
    const providerMessageId = newMessageId();
    const sentAt = new Date();
    // A send redelivered to a restarted worker finds its row: its receipts are already under way.
    const inserted = await this.ctx!.store.sql`
      insert into sandbox_receipts (message_id, sent_at, next_status) values (${args.messageId}, ${sentAt}, 'sent')
      on conflict (message_id) do nothing returning message_id`;
    if (inserted.length > 0) this.scheduleReceipt(args.messageId, sentAt.getTime(), 0);
    this.ctx!.log.debug({ messageId: args.messageId, providerMessageId }, 'sandbox message sent');
    return { messageId: args.messageId, providerMessageId, status: 'sent' };
  }

  /**
   * Emits receipt `index` when it is due (sentAt + its delay; at once if that
   * has passed), then schedules the next. Chained rather than parallel timers
   * so equal delays still arrive in order.
   */
  private scheduleReceipt(messageId: string, sentAtMs: number, index: number): void {
    const status = RECEIPTS[index];
    if (!status || this.stopped) return;
    const session = this.session;
    const dueMs = sentAtMs + (this.opts.receiptDelaysMs[index] ?? 0);
    const timer = setTimeout(() => {
      this.receiptTimers.delete(timer);
      if (this.stopped || session !== this.session) return;
      const write = this.advanceReceipt(messageId, index)
        .then((advanced) => {
          if (!advanced || this.finished || session !== this.session) return;
          this.ctx!.emit({ type: 'message.status', data: { messageId, status, timestamp: new Date().toISOString() } });
          this.scheduleReceipt(messageId, sentAtMs, index + 1);
        })
        .catch((err: unknown) => this.ctx!.log.error({ err, messageId, status }, 'recording a sandbox receipt failed; not emitting it'))
        .finally(() => this.receiptWrites.delete(write));
      this.receiptWrites.add(write);
    }, Math.max(0, dueMs - Date.now()));
    this.receiptTimers.add(timer);
  }

  /** Records receipt `index` as emitted: the row moves on to the next status, or goes after 'read'. False when the row is gone. */
  private async advanceReceipt(messageId: string, index: number): Promise<boolean> {
    const { sql } = this.ctx!.store;
    const status = RECEIPTS[index]!;
    const next = RECEIPTS[index + 1];
    const rows = next
      ? await sql`update sandbox_receipts set next_status = ${next} where message_id = ${messageId} and next_status = ${status} returning 1`
      : await sql`delete from sandbox_receipts where message_id = ${messageId} and next_status = ${status} returning 1`;
    return rows.length > 0;
  }

  private inbound(args: CommandArgs<'sandbox.inbound'>): Record<string, unknown> {
    this.requireConnected();
    const { id: given, from, ...message } = args;
    const id = given ?? newMessageId();
    // A message routed from another sandbox number carries its WhatsApp id: a redelivered command (a restarted
    // worker has no result cache) emits the same event id, stored once, as WhatsApp redelivering a message would.
    this.ctx!.emit(
      { type: 'message.received', data: { ...message, id, from, chat: message.chat ?? from, timestamp: new Date().toISOString() } },
      given === undefined ? undefined : { eventId: `inbound:${given}` },
    );
    return { id };
  }

  private async logout(): Promise<Record<string, unknown>> {
    // Receipts of messages sent before the logout would describe a session that no longer exists.
    this.session += 1;
    this.cancelReceipts();
    this.stopQrRotation();
    await this.ctx!.store.sql.begin(async (tx) => {
      await tx`delete from sandbox_receipts`;
      await tx`delete from sandbox_device`;
    });
    this.setState('logged_out', 'logged out via API');
    this.beginQrCycle();
    return { state: 'logged_out' };
  }

  private requireConnected(): void {
    if (this.state !== 'connected') throw new ProviderError('not_connected', 'Client not connected');
  }

  private beginQrCycle(): void {
    this.setState('qr', 'waiting for QR scan');
    this.showQr();
    this.qrTimer = setInterval(() => this.showQr(), this.opts.qrIntervalMs);
  }

  private showQr(): void {
    if (this.stopped) return;
    const code = `wgs-sandbox:${this.opts.instanceId}:${randomBytes(18).toString('base64url')}`;
    this.ctx!.setQr(code, new Date(Date.now() + this.opts.qrIntervalMs));
  }

  private stopQrRotation(): void {
    if (this.qrTimer) clearInterval(this.qrTimer);
    this.qrTimer = undefined;
  }

  private cancelReceipts(): void {
    for (const timer of this.receiptTimers) clearTimeout(timer);
    this.receiptTimers.clear();
  }

  private setState(state: SessionState, reason?: string): void {
    this.state = state;
    this.ctx!.setState(state, reason);
  }
}

/** Looks like a provider id and is unique enough for a simulation: 'SBX' + 20 hex digits. */
function newMessageId(): string {
  return `SBX${randomBytes(10).toString('hex').toUpperCase()}`;
}
