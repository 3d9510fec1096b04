import type { Subprocess } from 'bun';
import type { Logger } from '../logging/logger';
import { EngineError, type Engine, type WorkerExit, type WorkerInfo, type WorkerSpec } from './engine';

const LOG_LINES_KEPT = 200;
const DEFAULT_STOP_TIMEOUT_MS = 10_000;
/** Variables a worker inherits from the gateway: nothing secret. */
const INHERITED_ENV = ['PATH', 'HOME', 'LANG', 'TZ', 'TMPDIR'];

interface Running {
  proc: Subprocess;
  startedAt: Date;
  lines: string[];
  stopping: boolean;
  exited: Promise<void>;
}

/**
 * Workers as child processes of the gateway: the embedded default. Output
 * lines become the gateway's structured logs with the instance id. Resource
 * limits are not enforced here (the docker engine does that).
 */
export class ProcessEngine implements Engine {
  readonly kind = 'process' as const;
  private readonly running = new Map<number, Running>();
  private readonly listeners: ((exit: WorkerExit) => void)[] = [];

  constructor(
    private readonly opts: {
      /** argv of the worker program, e.g. [bun, workers/src/main.ts], or one per worker (by provider). */
      command: string[] | ((spec: WorkerSpec) => string[]);
      /** Variables the worker's runtime needs (e.g. glibc malloc tuning for Node), set before the spec's own env. */
      runtimeEnv?: (spec: WorkerSpec) => Record<string, string>;
      logger: Logger;
      cwd?: string;
    },
  ) {}

  async ensure(spec: WorkerSpec): Promise<WorkerInfo> {
    const current = this.running.get(spec.instanceId);
    if (current && isRunning(current.proc) && !current.stopping) return this.info(spec.instanceId, current);
    if (current) await current.exited;

    const env: Record<string, string> = {};
    for (const key of INHERITED_ENV) if (process.env[key]) env[key] = process.env[key]!;
    Object.assign(env, this.opts.runtimeEnv?.(spec), spec.env);
    if (spec.caFile) env.SSL_CERT_FILE = env.NODE_EXTRA_CA_CERTS = spec.caFile;
    env.WGS_EXIT_WITH_PARENT = '1'; // workers die with the gateway, even one killed with SIGKILL
    let proc: Subprocess<'ignore', 'pipe', 'pipe'>;
    try {
      const argv = typeof this.opts.command === 'function' ? this.opts.command(spec) : this.opts.command;
      proc = Bun.spawn(argv, { cwd: this.opts.cwd, env, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' });
    } catch (err) {
      throw new EngineError('start_failed', `failed to start worker for instance ${spec.instanceId}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const log = this.opts.logger.child({ component: 'worker', instanceId: spec.instanceId, tenantId: spec.tenantId, pid: proc.pid });
    const entry: Running = { proc, startedAt: new Date(), lines: [], stopping: false, exited: Promise.resolve() };
    const pumps = [pump(proc.stdout, 'stdout', entry, log), pump(proc.stderr, 'stderr', entry, log)];
    entry.exited = proc.exited.then(async (exitCode) => {
      await Promise.all(pumps);
      const exit: WorkerExit = {
        instanceId: spec.instanceId,
        exitCode: proc.signalCode ? null : exitCode,
        signal: proc.signalCode === null ? null : String(proc.signalCode),
        requested: entry.stopping,
        ranMs: Date.now() - entry.startedAt.getTime(),
      };
      log.info({ exitCode: exit.exitCode, signal: exit.signal, requested: exit.requested }, 'worker exited');
      for (const listener of this.listeners) listener(exit);
    });
    this.running.set(spec.instanceId, entry);
    log.info({ provider: spec.provider }, 'worker started');
    return this.info(spec.instanceId, entry);
  }

  async stop(instanceId: number, timeoutMs = DEFAULT_STOP_TIMEOUT_MS): Promise<void> {
    const entry = this.running.get(instanceId);
    if (!entry) return;
    if (isRunning(entry.proc)) {
      entry.stopping = true;
      entry.proc.kill('SIGTERM');
      const timer = setTimeout(() => entry.proc.kill('SIGKILL'), timeoutMs);
      await entry.exited;
      clearTimeout(timer);
    }
    await entry.exited;
  }

  async remove(instanceId: number): Promise<void> {
    await this.stop(instanceId);
    this.running.delete(instanceId);
  }

  async inspect(instanceId: number): Promise<WorkerInfo | null> {
    const entry = this.running.get(instanceId);
    return entry ? this.info(instanceId, entry) : null;
  }

  async list(): Promise<WorkerInfo[]> {
    return [...this.running.entries()].map(([id, entry]) => this.info(id, entry));
  }

  async logs(instanceId: number, tail = LOG_LINES_KEPT): Promise<string[]> {
    const entry = this.running.get(instanceId);
    if (!entry) throw new EngineError('not_found', `no worker for instance ${instanceId}`);
    return entry.lines.slice(-tail);
  }

  onExit(listener: (exit: WorkerExit) => void): void {
    this.listeners.push(listener);
  }

  /** Stops every worker (gateway shutdown). */
  async stopAll(timeoutMs = DEFAULT_STOP_TIMEOUT_MS): Promise<void> {
    await Promise.all([...this.running.keys()].map((id) => this.stop(id, timeoutMs)));
  }

  private info(instanceId: number, entry: Running): WorkerInfo {
    const running = isRunning(entry.proc);
    return {
      instanceId,
      state: running ? 'running' : 'exited',
      pid: entry.proc.pid,
      startedAt: entry.startedAt,
      exitCode: running ? undefined : entry.proc.exitCode,
      signal: running || entry.proc.signalCode === null ? undefined : String(entry.proc.signalCode),
    };
  }
}

/** Forwards each output line to the log (worker JSON lines nested as `worker`) and keeps the last ones. */
async function pump(stream: ReadableStream<Uint8Array>, name: string, entry: Running, log: Logger): Promise<void> {
  const decoder = new TextDecoder();
  let buffered = '';
  const emit = (line: string) => {
    if (!line) return;
    entry.lines.push(line);
    if (entry.lines.length > LOG_LINES_KEPT) entry.lines.shift();
    let parsed: unknown;
    if (line.startsWith('{')) {
      try {
        parsed = JSON.parse(line);
      } catch {
        // not JSON: logged as text
      }
    }
    if (parsed && typeof parsed === 'object') log.info({ stream: name, worker: parsed }, 'worker log');
    else log.info({ stream: name, line }, 'worker output');
  };
  for await (const chunk of stream) {
    buffered += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      emit(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
    }
  }
  emit(buffered);
}

function isRunning(proc: Subprocess): boolean {
  return proc.exitCode === null && proc.signalCode === null;
}
