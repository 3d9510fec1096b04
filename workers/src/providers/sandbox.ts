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

/**
 * A simulated WhatsApp account with no network: it shows rotating QR codes
 * until the `sandbox.scan` command "scans" one, then sends (with timed
 * receipts) and receives (`sandbox.inbound`) text messages.
 *
 * The pairing lives in memory only, so a restarted sandbox worker asks for a
 * new scan; keeping it in Postgres is a later issue.
 */
export class SandboxProvider implements Provider {
  readonly name = 'sandbox';
  private ctx: ProviderContext | undefined;
  private state: SessionState = 'starting';
  private qrTimer: Timer | undefined;
  /** Pending receipt timers, so logout and stop can cancel them. */
  private readonly receiptTimers = new Set<Timer>();
  private stopped = false;

  constructor(private readonly opts: SandboxOptions) {}

  async start(ctx: ProviderContext): Promise<void> {
    if (this.ctx) throw new Error('sandbox provider started twice');
    this.ctx = ctx;
    this.setState('starting');
    this.beginQrCycle();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopQrRotation();
    this.cancelReceipts();
  }

  async execute(name: CommandName, args: unknown): Promise<Record<string, unknown>> {
    if (!this.ctx || this.stopped) throw new ProviderError('not_ready', 'sandbox provider is not running');
    if (!COMMAND_NAMES.includes(name)) {
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
    }
  }

  private scan(): Record<string, unknown> {
    if (this.state === 'connected') throw new ProviderError('already_connected', 'already paired and connected');
    if (this.state !== 'qr') throw new ProviderError('not_ready', `no QR code to scan in state ${this.state}`);
    this.stopQrRotation();
    this.setState('pairing', 'QR code scanned');
    this.setState('connected', 'paired by sandbox scan');
    return { state: 'connected' };
  }

  private send(args: CommandArgs<'send'>): Record<string, unknown> {
    this.requireConnected();
    const providerMessageId = newMessageId();
    this.scheduleReceipts(args.messageId, 0);
    this.ctx!.log.debug({ messageId: args.messageId, providerMessageId }, 'sandbox message sent');
    return { messageId: args.messageId, providerMessageId, status: 'sent' };
  }

  /** Chained rather than three parallel timers so equal delays still arrive in order. */
  private scheduleReceipts(messageId: string, index: number): void {
    const status = RECEIPTS[index];
    if (!status) return;
    const delays = this.opts.receiptDelaysMs;
    const wait = (delays[index] ?? 0) - (index > 0 ? (delays[index - 1] ?? 0) : 0);
    const timer = setTimeout(() => {
      this.receiptTimers.delete(timer);
      if (this.stopped) return;
      this.ctx!.emit({ type: 'message.status', data: { messageId, status, timestamp: new Date().toISOString() } });
      this.scheduleReceipts(messageId, index + 1);
    }, wait);
    this.receiptTimers.add(timer);
  }

  private inbound(args: CommandArgs<'sandbox.inbound'>): Record<string, unknown> {
    this.requireConnected();
    const id = newMessageId();
    this.ctx!.emit({
      type: 'message.received',
      data: { id, from: args.from, type: 'text', text: args.text, timestamp: new Date().toISOString() },
    });
    return { id };
  }

  private logout(): Record<string, unknown> {
    // Receipts of messages sent before the logout would describe a session that no longer exists.
    this.cancelReceipts();
    this.stopQrRotation();
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
