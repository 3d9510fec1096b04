/**
 * Test support: the real TypeScript worker on its `baileys` provider,
 * bundled for Node (scripts/build-worker-node) and run by Node 24, against a
 * fake gateway, a real Postgres state schema and an in-process simulator —
 * all on 127.0.0.1. The same WorkerRun shape as testing.ts's whatsmeow
 * worker, so the helpers there (command, events, statuses) apply.
 */
import { TestStateDb, type TestInstanceState } from '../../workers/src/testing/state-db';
import { ensureNodeWorkerBundle, NODE_BINARY, WORKER_NODE_BUNDLE } from '../../tests/conformance/workers';
import { startSimulator, type RunningSimulator } from './server';
import { runWorker, type WorkerRun } from './testing';

/** Starts one Baileys worker process for `instanceId` on the given state schema, dialling the simulator. */
export function startBaileysWorker(
  sim: RunningSimulator,
  instanceId: number,
  state: TestInstanceState,
  cleanups: (() => unknown)[],
  phone = '15550001111',
  /** Overrides of the environment below (e.g. NODE_EXTRA_CA_CERTS: '' for Node's own roots only). */
  env: Record<string, string> = {},
): WorkerRun {
  return runWorker([NODE_BINARY, WORKER_NODE_BUNDLE], 'baileys', instanceId, state, cleanups, phone, {
    BAILEYS_WS_URL: sim.wsUrl,
    // The media server's CA, through Node's standard setting: media uploads and downloads are https://.
    NODE_EXTRA_CA_CERTS: sim.mediaCaFile,
    ...env,
  });
}

/** The Baileys worker bundled, a state database, a simulator whose log lines go to `logs`. */
export async function openBaileysTestbed(logs: string[]): Promise<{ db: TestStateDb; sim: RunningSimulator }> {
  await ensureNodeWorkerBundle();
  const db = await TestStateDb.create();
  const sim = startSimulator({ port: 0, log: (level, msg, fields) => logs.push(JSON.stringify({ level, msg, ...fields })) });
  return { db, sim };
}
