/**
 * Test support: the real whatsmeow worker (build/whatsmeow/wgs-whatsmeow)
 * against a fake gateway, a real Postgres state schema and an in-process
 * simulator — all on 127.0.0.1, as tests/conformance starts workers.
 */
import type { Subprocess } from 'bun';
import { FakeGateway, type GatewayConn } from '../../workers/src/testing/fake-gateway';
import { spawnProgram } from '../../workers/src/testing/spawn';
import type { TestInstanceState } from '../../workers/src/testing/state-db';
import { WHATSMEOW_BINARY } from '../../tests/conformance/workers';
import type { RunningSimulator } from './server';

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

/** Starts one worker process for `instanceId` on the given state schema, dialling the simulator. */
export function startWorker(sim: RunningSimulator, instanceId: number, state: TestInstanceState, cleanups: (() => unknown)[], phone = '15550001111'): WorkerRun {
  const gateway = new FakeGateway({ phone });
  cleanups.push(() => gateway.stop());
  const { proc, stdout, stderr } = spawnProgram(
    [WHATSMEOW_BINARY],
    {
      WGS_GATEWAY_URL: gateway.baseUrl,
      WGS_INSTANCE_ID: String(instanceId),
      WGS_WORKER_TOKEN: TOKEN,
      WGS_PROVIDER: 'whatsmeow',
      WGS_STATE_DSN: state.dsn,
      WGS_STATE_SCHEMA: state.schema,
      WHATSMEOW_WS_URL: sim.wsUrl,
      WHATSMEOW_ROOT_PUBLIC_KEY: sim.rootPublicKey,
      LOG_LEVEL: process.env.SIMULATOR_TEST_WORKER_LOG ?? 'info',
    },
    cleanups,
  );
  const frames = () => gateway.connections.flatMap((c) => c.frames);
  const states = () =>
    frames()
      .filter((f) => f.type === 'state')
      .map((f) => (f.type === 'state' ? f.state : ''));
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
