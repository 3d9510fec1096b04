/**
 * One test file's testbed for the shared worker suites: a state database and
 * a simulator (opened in beforeAll, closed in afterAll), the workers a test
 * starts (stopped after it, or at the end for `lasting` ones), and the steps
 * every suite takes: a new phone, a worker linked by QR, a send, a message
 * on the phone or at the worker, with the worker's log on failure.
 */
import { afterAll, afterEach, beforeAll, expect } from 'bun:test';
import { createHash } from 'node:crypto';
import { until } from '../../../tests/support/poll';
import type { TestInstanceState, TestStateDb } from '../../../workers/src/testing/state-db';
import type { RunningSimulator } from '../server';
import { command, control, events, openTestbed, runWorker, type WorkerRun } from '../testing';
import type { WorkerUnderTest } from './workers';

export interface Linked {
  phone: string;
  state: TestInstanceState;
  instanceId: number;
  run: WorkerRun;
  deviceJid: string;
}

export interface StartOptions {
  /** Keep it running to the end of the file (a suite's shared worker) instead of stopping it after the test. */
  lasting?: boolean;
  /** Overrides of its environment (e.g. SSL_CERT_FILE: '' for Go's system roots only). */
  env?: Record<string, string>;
  /** What the worker is told of the simulator, when not this testbed's (e.g. another root key). */
  sim?: RunningSimulator;
}

export const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export const stateFrames = (run: WorkerRun) => run.frames().flatMap((f) => (f.type === 'state' ? [f] : []));

export const connected = (run: WorkerRun) => until('the worker to report connected', () => run.state() === 'connected', 30_000);

export class Testbed {
  db!: TestStateDb;
  sim!: RunningSimulator;
  /** The simulator's log lines. */
  readonly logs: string[] = [];
  /** Stopped after each test (workers a test starts for itself). */
  private readonly cleanups: (() => unknown)[] = [];
  /** Stopped at the end (a suite's shared worker). */
  private readonly lasting: (() => unknown)[] = [];
  private nextInstance: number;
  private nextPhone: number;
  private nextCommandId = 1;

  /** Registers the file's hooks; `workers` are prepared (built) before the testbed opens. Instance ids and phone numbers count up from `first`. */
  constructor(workers: WorkerUnderTest[], first: { instance: number; phone: number }) {
    this.nextInstance = first.instance;
    this.nextPhone = first.phone;
    beforeAll(async () => {
      ({ db: this.db, sim: this.sim } = await openTestbed(this.logs, async () => {
        for (const w of workers) await w.prepare();
      }));
    }, 320_000);
    afterEach(async () => {
      for (const c of this.cleanups.splice(0).reverse()) await c();
    });
    afterAll(async () => {
      for (const c of [...this.cleanups.splice(0), ...this.lasting.splice(0)].reverse()) await c();
      await this.sim?.stop();
      await this.db?.cleanup();
    });
  }

  instanceId(): number {
    return this.nextInstance++;
  }

  commandId(): number {
    return this.nextCommandId++;
  }

  /** A new phone (account) on the simulator; `plus` creates it as +number (the simulator takes both). */
  async newPhone(plus = false): Promise<string> {
    const phone = String(this.nextPhone++);
    expect((await control(this.sim, 'POST', '/phones', { phone: plus ? `+${phone}` : phone })).status).toBe(201);
    return phone;
  }

  start(worker: WorkerUnderTest, instanceId: number, state: TestInstanceState, phone: string, opts: StartOptions = {}): WorkerRun {
    const env = { ...worker.env(opts.sim ?? this.sim), ...opts.env };
    return runWorker(worker.argv, worker.name, instanceId, state, opts.lasting ? this.lasting : this.cleanups, phone, env);
  }

  /** On failure, the worker's states, its own log and the simulator's last lines say why. */
  async explain<T>(run: WorkerRun, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      run.proc.kill('SIGKILL');
      const out = await run.output;
      throw new Error(
        `${err instanceof Error ? err.message : String(err)}\nstates: ${run.states().join(' → ')}\nsimulator: ${this.logs.slice(-20).join('\n')}\nworker log:\n${out.split('\n').slice(-60).join('\n')}`,
      );
    }
  }

  /** A worker that shows a QR, and a new phone that scans it: linked and connected. */
  async linkedByQr(worker: WorkerUnderTest, opts: StartOptions & { plus?: boolean } = {}): Promise<Linked> {
    const phone = await this.newPhone(opts.plus);
    const state = await this.db.createInstance();
    const instanceId = this.instanceId();
    const run = this.start(worker, instanceId, state, phone, opts);
    const deviceJid = await this.explain(run, async () => {
      const qr = await until('a qr frame from the worker', () => run.qrCodes()[0], 30_000);
      const link = await control(this.sim, 'POST', `/phones/${phone}/link`, { qr });
      expect(link.status).toBe(200);
      await connected(run);
      return link.body.deviceJid as string;
    });
    return { phone, state, instanceId, run, deviceJid };
  }

  /** A command to the worker, with its log on failure. */
  command(run: WorkerRun, name: string, args: Record<string, unknown>) {
    return this.explain(run, () => command(run, this.commandId(), name, args));
  }

  /** Sends through the worker; returns the provider's message id once the worker answered ok. */
  async send(run: WorkerRun, args: Record<string, unknown>): Promise<{ messageId: string; providerId: string }> {
    const id = this.commandId();
    const messageId = `m${id}`;
    const result = await this.explain(run, () => command(run, id, 'send', { messageId, ...args }));
    if (!result.ok) throw new Error(`send failed: ${JSON.stringify(result.error)}`);
    return { messageId, providerId: result.data.providerMessageId };
  }

  /** A JSON call to the simulator's control API. */
  control(method: string, path: string, body?: unknown) {
    return control(this.sim, method, path, body);
  }

  async deviceList(phone: string): Promise<any[]> {
    return (await this.control('GET', `/phones/${phone}/devices`)).body.devices;
  }

  async inbox(phone: string): Promise<any[]> {
    return (await this.control('GET', `/phones/${phone}/messages`)).body;
  }

  /** A message the phone received (not its own copy). */
  onPhone(phone: string, id: string, what = `message ${id} on ${phone}`): Promise<any> {
    return until(what, async () => (await this.inbox(phone)).find((m) => m.id === id && !m.fromMe), 20_000);
  }

  /** The worker's message.received event for a WhatsApp message id. */
  received(run: WorkerRun, id: string): Promise<any> {
    return until(`message.received ${id}`, () => events(run, 'message.received').find((e) => e.id === id), 20_000);
  }
}
