/**
 * Where workers run. Every engine (process, docker, swarm)
 * implements this one interface and reports failures as EngineError.
 */

export interface WorkerSpec {
  instanceId: number;
  /** The instance's user id, for log lines about its worker. */
  tenantId?: number;
  /** Instance name, for container names and logs. */
  name?: string | null;
  provider: string;
  /** The worker's whole environment besides PATH/HOME/LANG; secrets only here, never argv. */
  env: Record<string, string>;
  resources?: { cpu?: string | null; memory?: string | null };
  /**
   * A PEM bundle on the node's machine the worker trusts instead of the
   * system's CAs (WORKER_CA_FILE): handed over as SSL_CERT_FILE (Go) and
   * NODE_EXTRA_CA_CERTS (Node, Bun); a container gets it mounted read-only.
   */
  caFile?: string;
}

export type WorkerRunState = 'running' | 'exited';

export interface WorkerInfo {
  instanceId: number;
  state: WorkerRunState;
  pid?: number;
  startedAt: Date;
  exitCode?: number | null;
  signal?: string | null;
  /** Why it does not run, in the engine's words (a swarm task's error); absent when the engine has nothing to add. */
  reason?: string | null;
}

export interface WorkerExit {
  instanceId: number;
  exitCode: number | null;
  signal: string | null;
  /** True when the engine was asked to stop it. */
  requested: boolean;
  ranMs: number;
  /** What ended it beyond code and signal, in the engine's words ("out of memory", a swarm task's error). */
  reason?: string | null;
}

export interface Engine {
  readonly kind: 'process' | 'docker' | 'swarm';
  /** Starts the worker unless it already runs; returns what runs. */
  ensure(spec: WorkerSpec): Promise<WorkerInfo>;
  /** Graceful stop (SIGTERM), then kill after the timeout. No-op when not running. */
  stop(instanceId: number, timeoutMs?: number): Promise<void>;
  /** Stops and forgets the worker. */
  remove(instanceId: number): Promise<void>;
  /** null when the engine knows no worker for this instance. */
  inspect(instanceId: number): Promise<WorkerInfo | null>;
  list(): Promise<WorkerInfo[]>;
  /** The last lines the worker printed. */
  logs(instanceId: number, tail?: number): Promise<string[]>;
  /** Called whenever a worker exits, asked to or not. */
  onExit(listener: (exit: WorkerExit) => void): void;
}

export type EngineErrorCode = 'start_failed' | 'not_found' | 'unavailable';

export class EngineError extends Error {
  constructor(
    readonly code: EngineErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'EngineError';
  }
}
