import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Database } from '../db/client';
import type { Logger } from '../logging/logger';
import { ProcessEngine } from '../engines/process';
import type { Engine } from '../engines/engine';
import { EngineRegistry } from '../engines/registry';
import type { WorkerImages } from '../engines/docker';
import type { SecretBox } from '../lib/secret-box';
import { WorkerHub } from '../workers/hub';
import { InstanceRuntime, type RuntimeOptions } from './runtime';
import { Migrator } from './migration';

/** The TypeScript worker program, run with the same Bun as the gateway; the gateway image (a bundle) says where its copy is. */
export const WORKER_ENTRY = process.env.WGS_WORKER_ENTRY || join(import.meta.dir, '..', '..', '..', 'workers', 'src', 'main.ts');

/** The whatsmeow worker, a Go binary `make run` builds with scripts/build-whatsmeow (WGS_WHATSMEOW_BINARY: another copy). */
export function whatsmeowBinary(): string {
  return process.env.WGS_WHATSMEOW_BINARY || join(import.meta.dir, '..', '..', '..', 'build', 'whatsmeow', 'wgs-whatsmeow');
}

/** argv of the worker program for a provider on the process engine. */
export function workerCommand(provider: string): string[] {
  return provider === 'whatsmeow' ? [whatsmeowBinary()] : [process.execPath, WORKER_ENTRY];
}

/** Why a provider's worker cannot run on this machine's process engine, or undefined when it can. */
export function processWorkerMissing(provider: string): string | undefined {
  const binary = whatsmeowBinary();
  if (provider !== 'whatsmeow' || existsSync(binary)) return undefined;
  return (
    `the whatsmeow worker is not built (${binary} is missing): install Go >= 1.26 (https://go.dev/dl/) and start the gateway with ` +
    '`make run`, which builds it (or run scripts/build-whatsmeow)'
  );
}

/** Wires the process engine, the worker hub and the runtime. */
export function createRuntime<E extends Engine = ProcessEngine>(
  database: Database,
  logger: Logger,
  opts: Omit<RuntimeOptions, 'state'> & { databaseUrl: string; secrets: SecretBox; engine?: E; images?: WorkerImages; gatewayId?: string; moveTimeoutMs?: number },
) {
  const engine = (opts.engine ?? new ProcessEngine({ command: (spec) => workerCommand(spec.provider), logger })) as E;
  const engines = new EngineRegistry(database.db, engine, {
    images: opts.images ?? { typescript: 'wgs-worker-ts:local', whatsmeow: 'wgs-worker-whatsmeow:local' },
    secrets: opts.secrets,
    gatewayId: opts.gatewayId ?? 'wgs',
    logger: logger.child({ component: 'engines' }),
  });
  const hub = new WorkerHub(database.db, logger.child({ component: 'worker-hub' }));
  const runtime = new InstanceRuntime(database.db, engines, hub, logger.child({ component: 'runtime' }), {
    ...opts,
    state: { sql: database.sql, databaseUrl: opts.databaseUrl },
  });
  const migrator = new Migrator(database.db, runtime, logger.child({ component: 'migrator' }), {
    overcommit: opts.overcommit ?? 1,
    moveTimeoutMs: opts.moveTimeoutMs,
    ownerId: opts.ownerId,
  });
  return { runtime, engine, migrator };
}
