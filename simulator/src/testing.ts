/**
 * Test support: a real worker program (whatsmeow's Go binary or the Baileys
 * worker on Node; which, and what each is told of the simulator, in
 * suites/workers.ts) against a fake gateway, a real Postgres state schema and
 * an in-process simulator — all on 127.0.0.1, as tests/conformance starts
 * workers.
 */
import type { Subprocess } from 'bun';
import { FakeGateway, type GatewayConn } from '../../workers/src/testing/fake-gateway';
import { spawnProgram } from '../../workers/src/testing/spawn';
import { TestStateDb, type TestInstanceState } from '../../workers/src/testing/state-db';
import { ensureWhatsmeowBinary } from '../../tests/conformance/workers';
import { startSimulator, type RunningSimulator } from './server';
import { until } from '../../tests/support/poll';

export const TOKEN = 'wgs-simulator-test-token';

export interface WorkerRun {
  gateway: FakeGateway;
  proc: Subprocess<'ignore', 'pipe', 'pipe'>;
  output: Promise<string>;
  /** Every frame of every gateway connection of this worker, in order. */
  frames(): GatewayConn['frames'];
  states(): string[];
  /** The newest state frame's state. */
  state(): string | undefined;
  qrCodes(): string[];
}

/** One worker program (`argv`) for a provider, against a fake gateway and a state schema; `env` on top of the WGS_* variables. */
export function runWorker(
  argv: string[],
  provider: string,
  instanceId: number,
  state: TestInstanceState,
  cleanups: (() => unknown)[],
  phone: string,
  env: Record<string, string>,
): WorkerRun {
  const gateway = new FakeGateway({ phone });
  cleanups.push(() => gateway.stop());
  const { proc, stdout, stderr } = spawnProgram(
    argv,
    {
      WGS_GATEWAY_URL: gateway.baseUrl,
      WGS_INSTANCE_ID: String(instanceId),
      WGS_WORKER_TOKEN: TOKEN,
      WGS_PROVIDER: provider,
      WGS_STATE_DSN: state.dsn,
      WGS_STATE_SCHEMA: state.schema,
      LOG_LEVEL: process.env.SIMULATOR_TEST_WORKER_LOG ?? 'info',
      ...env,
    },
    cleanups,
  );
  const frames = () => gateway.connections.flatMap((c) => c.frames);
  const states = () => frames().flatMap((f) => (f.type === 'state' ? [f.state] : []));
  return {
    gateway,
    proc,
    output: Promise.all([stdout, stderr]).then(([o, e]) => o + e),
    frames,
    states,
    state: () => states().at(-1),
    qrCodes: () => frames().flatMap((f) => (f.type === 'qr' ? [f.code] : [])),
  };
}

/** A command to the worker (the fake gateway's latest connection) and its result frame. */
export async function command(run: WorkerRun, commandId: number, name: string, args: Record<string, unknown>, timeoutMs = 30_000) {
  run.gateway.latest.send({ type: 'command', commandId, name, args } as never);
  return until(`the result of command ${commandId} (${name})`, () => run.frames().find((f) => f.type === 'result' && f.commandId === commandId), timeoutMs) as Promise<{
    ok: boolean;
    data?: any;
    error?: { code: string; message: string };
  }>;
}

/** The worker's events of one type (data only), in order, without repeats (a worker resends unacked events after a reconnect). */
export function events(run: WorkerRun, type: 'message.received' | 'message.status'): any[] {
  const seen = new Set<string>();
  const out: any[] = [];
  for (const f of run.frames()) {
    if (f.type !== 'event' || f.event.type !== type || seen.has(f.eventId)) continue;
    seen.add(f.eventId);
    out.push(f.event.data);
  }
  return out;
}

/** The statuses the worker reported for a gateway message id, in order. */
export const statuses = (run: WorkerRun, messageId: string): string[] => events(run, 'message.status').filter((e) => e.messageId === messageId).map((e) => e.status);

/** A JSON call to the simulator's control API. */
export async function control(sim: RunningSimulator, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${sim.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: the test will say so
  }
  return { status: res.status, body: parsed };
}

/** What every worker test file starts with: the worker built (`prepare`; whatsmeow's binary unless told), a state database, a simulator whose log lines go to `logs`. */
export async function openTestbed(logs: string[], prepare: () => Promise<void> = ensureWhatsmeowBinary): Promise<{ db: TestStateDb; sim: RunningSimulator }> {
  await prepare();
  const db = await TestStateDb.create();
  const sim = startSimulator({ port: 0, log: (level, msg, fields) => logs.push(JSON.stringify({ level, msg, ...fields })) });
  return { db, sim };
}
