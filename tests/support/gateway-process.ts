/** A real gateway process (`bun gateway/src/main.ts`) for end-to-end tests. */
import { expect } from 'bun:test';
import type { Subprocess } from 'bun';
import type { Sql } from 'postgres';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../../gateway/src/lib/net';
import { parentPid } from '../../gateway/src/lib/process';
import { until } from './poll';

const ROOT = join(import.meta.dir, '..', '..');

export interface GatewayProcess {
  proc: Subprocess;
  url: string;
  /** stdout and stderr so far. */
  output(): string;
  /** Polls /healthz until 200; throws with the output if the process exits or the deadline passes. */
  ready(timeoutMs?: number): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<number>;
  /**
   * SIGKILL to the gateway's whole process group (gateway, its workers, its
   * embedded Postgres), as `docker kill`, an OOM kill or a supervisor's
   * KillMode=control-group does; resolves once the gateway itself has exited.
   * Only for gateways spawned with `ownProcessGroup`.
   */
  killGroup(): Promise<void>;
}

export async function spawnGateway(env: Record<string, string | undefined>, opts: { ownProcessGroup?: boolean } = {}): Promise<GatewayProcess> {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const base: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('WGS_') && !['DATABASE_URL', 'ADMIN_API_SECRET', 'DATA_DIR', 'PORT', 'HOST'].includes(k)) base[k] = v;
  }
  // End-to-end suites send bursts to whatsmeow and baileys numbers: no default pacing unless a test asks for it.
  const finalEnv: Record<string, string> = { PACING_DEFAULTS: 'off', ...base, PORT: String(port), HOST: '127.0.0.1' };
  for (const [k, v] of Object.entries(env)) if (v !== undefined) finalEnv[k] = v;
  // setsid execs the gateway in place (same pid) as the leader of a new process group.
  const argv = [process.execPath, 'gateway/src/main.ts'];
  const proc = Bun.spawn(opts.ownProcessGroup ? ['setsid', ...argv] : argv, {
    cwd: ROOT,
    env: finalEnv,
    stdout: 'pipe',
    stderr: 'pipe',
  });
  let out = '';
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) out += decoder.decode(chunk, { stream: true });
  };
  const pumped = Promise.all([pump(proc.stdout as ReadableStream<Uint8Array>), pump(proc.stderr as ReadableStream<Uint8Array>)]);
  const url = `http://127.0.0.1:${port}`;

  return {
    proc,
    url,
    output: () => out,
    async ready(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (proc.exitCode !== null) {
          await pumped;
          throw new Error(`gateway exited with ${proc.exitCode} before it was ready:\n${out}`);
        }
        const ok = await fetch(`${url}/healthz`).then(
          (r) => r.status === 200,
          () => false,
        );
        if (ok) return;
        await Bun.sleep(50);
      }
      throw new Error(`gateway not ready within ${timeoutMs} ms:\n${out}`);
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null) proc.kill(signal);
      const code = await proc.exited;
      await pumped;
      return code;
    },
    async killGroup() {
      if (!opts.ownProcessGroup) throw new Error('killGroup needs a gateway spawned with ownProcessGroup');
      try {
        process.kill(-proc.pid, 'SIGKILL');
      } catch {
        // the group is already gone
      }
      await proc.exited;
      await pumped;
    },
  };
}

/** Waits for a process to exit and returns its code, with a deadline. */
export async function exitCode(g: GatewayProcess, timeoutMs = 30_000): Promise<number> {
  const timer = setTimeout(() => g.proc.kill('SIGKILL'), timeoutMs);
  try {
    return await g.proc.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** A JSON call to a gateway process: admin secret `s` always, a Bearer key when given. */
export async function gatewayApi(g: Pick<GatewayProcess, 'url'>, method: string, path: string, key?: string, body?: unknown) {
  const headers: Record<string, string> = { 'x-admin-api-secret': 's' };
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${g.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json().catch(() => null)) as any };
}

/** Spawns a gateway, registers its SIGKILL with `cleanup`, and waits until it is ready. */
export async function startGatewayProcess(
  env: Record<string, string | undefined>,
  cleanup: (() => Promise<unknown>)[],
  opts: { ownProcessGroup?: boolean } = {},
): Promise<GatewayProcess> {
  const g = await spawnGateway(env, opts);
  cleanup.push(() => (opts.ownProcessGroup ? g.killGroup() : g.stop('SIGKILL')));
  await g.ready();
  return g;
}

/** Polls an instance until it is `running` and `connected`; returns it. */
export async function waitConnected(g: GatewayProcess, instanceId: number, key: string, timeoutMs = 30_000): Promise<any> {
  return until(
    `instance ${instanceId} running and connected`,
    async () => {
      const r = await gatewayApi(g, 'GET', `/api/instances/${instanceId}`, key);
      return r.body?.status === 'running' && r.body?.state === 'connected' && r.body;
    },
    timeoutMs,
  );
}

/**
 * Waits until the instance's worker says it resumed the session kept in Postgres (`connected`, `session
 * restored`). After a restart or a move the row still shows the old `connected` for the moment between the
 * new worker's hello (status `running`) and its first state report: waitConnected can catch that moment.
 */
export async function waitRestored(g: GatewayProcess, instanceId: number, key: string, timeoutMs = 30_000): Promise<any> {
  return until(
    `instance ${instanceId} running, connected with its session restored`,
    async () => {
      const r = await gatewayApi(g, 'GET', `/api/instances/${instanceId}`, key);
      return r.body?.status === 'running' && r.body?.state === 'connected' && r.body?.stateReason === 'session restored' && r.body;
    },
    timeoutMs,
  );
}

/**
 * Pids of live worker processes for an instance, found by their environment
 * (`WGS_INSTANCE_ID`) and a piece of their command line; with `parent`, only
 * that process's children (a gateway's process-engine workers, not containers).
 */
export async function workerPids(instanceId: number, program: string, parent?: number): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.includes(program)) continue;
    if (parent !== undefined && parentPid(Number(entry)) !== parent) continue;
    const environ = await readFile(`/proc/${entry}/environ`, 'utf8').catch(() => '');
    if (environ.split('\0').includes(`WGS_INSTANCE_ID=${instanceId}`)) pids.push(Number(entry));
  }
  return pids;
}

/**
 * Sends a text every 100 ms (at most 300) through `g` while `during` runs (a
 * migration, a kill…), then checks what a user would notice: more than three
 * sends, every one answered 200 or 202, and every message of the loop counted
 * once and out of the gateway (none left `queued` or `failed`, nor any other
 * message of the instance).
 */
export async function sendingThroughout(
  g: Pick<GatewayProcess, 'url'>,
  sql: Sql,
  instanceId: number,
  key: string,
  during: () => Promise<void>,
): Promise<void> {
  const prefix = `throughout-${Math.random().toString(36).slice(2, 10)}-`;
  const statuses: number[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; i < 300 && running; i++) {
      statuses.push((await gatewayApi(g, 'POST', `/api/instances/${instanceId}/send`, key, { to: '15550100000', text: `${prefix}${i}` })).status);
      await Bun.sleep(100);
    }
  })();
  try {
    await during();
  } finally {
    running = false;
    await loop;
  }
  expect(statuses.length).toBeGreaterThan(3);
  expect(statuses.filter((s) => s !== 200 && s !== 202)).toEqual([]);
  await until('every message sent', async () => {
    const rows = await sql`select status, starts_with(text, ${prefix}) as mine from messages where instance_id = ${instanceId}`;
    return rows.filter((r) => r.mine).length === statuses.length && rows.every((r) => r.status !== 'queued' && r.status !== 'failed');
  });
}
