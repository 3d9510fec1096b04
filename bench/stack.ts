/**
 * The real-engine benchmarks' stack: the WhatsApp simulator in this process, a
 * real gateway process (embedded Postgres in a temporary DATA_DIR) whose
 * whatsmeow and Baileys workers dial it (WHATSMEOW_WS_URL and its root key,
 * BAILEYS_WS_URL, WORKER_CA_FILE for its media store), a user, and the calls the benchmarks share
 * (create, link, remove, find a worker's pid). Loopback only. `cleanup()`
 * removes everything the run made (instances, gateway and its workers, the
 * simulator, the temporary directory), also on SIGINT/SIGTERM and when the
 * start itself fails.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startSimulator, type RunningSimulator } from '../simulator/src/server';
import { spawnGateway, type GatewayProcess } from '../tests/support/gateway-process';
import { until } from '../tests/support/poll';
import { alive, descendants } from './proc';

const POLL_MS = 5;

/**
 * The real engines, and how to recognise each one's worker process: the program (argv[0]'s last part; not comm,
 * which Node 24 sets to its main thread's name, "MainThread") and a piece of its command line.
 */
export type Provider = 'whatsmeow' | 'baileys';
export const PROVIDERS: Provider[] = ['whatsmeow', 'baileys'];
export const WORKER_PROGRAM: Record<Provider, { program: string; cmdline: string }> = {
  whatsmeow: { program: 'wgs-whatsmeow', cmdline: 'wgs-whatsmeow' },
  // node --max-semi-space-size=1 build/worker-node/main.js (process engine), /app/worker.mjs in the image.
  baileys: { program: 'node', cmdline: 'worker' },
};

/** Whether `pid` runs `provider`'s worker program. */
export async function isWorker(pid: number, provider: Provider): Promise<boolean> {
  const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
  return argv[0]!.split('/').pop() === WORKER_PROGRAM[provider].program && argv.some((a) => a.includes(WORKER_PROGRAM[provider].cmdline));
}

const anyAlive = async (pids: number[]) => (await Promise.all(pids.map(alive))).some(Boolean);

export interface Instance {
  id: number;
  status: string;
  state: string;
  stateReason: string | null;
  stateChangedAt: string;
}

export interface StackOptions {
  /** GATEWAY_ID is this plus 6 hex digits. */
  gatewayPrefix: string;
  /** Prefix of the temporary DATA_DIR. */
  tmpPrefix: string;
  /** The user the benchmark acts as. */
  email: string;
  /** More gateway environment (images, webhook settings). */
  env?: Record<string, string>;
  /** Run at cleanup once the gateway has stopped (e.g. removing its containers). */
  afterGateway?: (gatewayId: string) => Promise<unknown>;
}

export interface Stack {
  sim: RunningSimulator;
  g: GatewayProcess;
  gatewayId: string;
  /** Headers of the admin API (`X-Admin-API-Secret`, JSON). */
  admin: Record<string, string>;
  /** A call to the gateway as the user. */
  api(method: string, path: string, body?: unknown): Promise<Response>;
  /** A JSON call to the simulator's control API. */
  control(method: string, path: string, body?: unknown): Promise<Response>;
  getInstance(id: number): Promise<Instance>;
  /** `POST /api/instances` (whatsmeow unless `provider` says otherwise) → 200, then polls the QR until served. */
  create(phone: string, node: string, provider?: Provider): Promise<{ id: number; createdMs: number; qrMs: number; qr: string }>;
  remove(id: number): Promise<void>;
  /** Creates an instance, lets the simulated phone scan its QR, waits until it is `connected`. */
  linked(phone: string, node: string, provider?: Provider): Promise<number>;
  /** The process-engine worker of an instance: a descendant of this gateway running `provider`'s worker with its instance id. */
  processWorker(id: number, provider?: Provider): Promise<number>;
  /** Undoes everything; every step runs even if an earlier one fails. Called once, awaited by all. */
  cleanup(): Promise<void>;
}

/** Starts the simulator and a gateway that trusts it, makes a user; throws (after cleaning up) if the gateway did not take the simulator's root key. */
export async function startStack(opts: StackOptions): Promise<Stack> {
  const gatewayId = `${opts.gatewayPrefix}${randomBytes(3).toString('hex')}`;
  const dir = await mkdtemp(join(tmpdir(), opts.tmpPrefix));
  await chmod(dir, 0o755);
  const sim = startSimulator();
  // World-readable: workers in containers run as other users.
  const ca = join(dir, 'simulator-ca.pem');
  await writeFile(ca, await readFile(sim.mediaCaFile, 'utf8'), { mode: 0o644 });
  const g = await spawnGateway({
    DATA_DIR: dir,
    ADMIN_API_SECRET: 'bench',
    LOG_LEVEL: 'warn',
    GATEWAY_ID: gatewayId,
    WHATSMEOW_WS_URL: sim.wsUrl,
    WHATSMEOW_ROOT_PUBLIC_KEY: sim.rootPublicKey,
    BAILEYS_WS_URL: sim.wsUrl,
    WORKER_CA_FILE: ca,
    ...opts.env,
  }).catch(async (err: unknown) => {
    await sim.stop().catch(() => {});
    await rm(dir, { recursive: true, force: true });
    throw err;
  });
  const live = new Set<number>();
  const admin = { 'x-admin-api-secret': 'bench', 'content-type': 'application/json' };
  let auth: Record<string, string> = {};
  const api = (method: string, path: string, body?: unknown) =>
    fetch(`${g.url}${path}`, { method, headers: auth, body: body === undefined ? undefined : JSON.stringify(body) });
  const control = (method: string, path: string, body?: unknown) =>
    fetch(`${sim.url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const getInstance = async (id: number) => (await (await api('GET', `/api/instances/${id}`)).json()) as Instance;

  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      for (const id of live) await api('DELETE', `/api/instances/${id}`).catch(() => {});
      // The gateway's workers and embedded Postgres: after Ctrl-C (SIGINT to the whole process group)
      // they stop on their own and may outlive the gateway, still writing into DATA_DIR.
      const tree = await descendants(g.proc.pid);
      // SIGTERM stops the gateway and its process workers (SIGKILL after 10 s); bounded here too.
      const killer = setTimeout(() => g.proc.kill('SIGKILL'), 30_000);
      await g.stop().catch(() => {});
      clearTimeout(killer);
      for (let waited = 0; waited < 15_000 && (await anyAlive(tree)); waited += 100) await Bun.sleep(100);
      for (const pid of tree) {
        try {
          if (await alive(pid)) process.kill(pid, 'SIGKILL'); // by pid: only this gateway's own children
        } catch {
          // already gone
        }
      }
      await opts.afterGateway?.(gatewayId).catch(() => {});
      await sim.stop().catch(() => {});
      await rm(dir, { recursive: true, force: true });
    })());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`${signal}: removing this run's instances, gateway, simulator and ${dir}`);
      void cleanup().finally(() => process.exit(130));
    });
  }

  try {
    await g.ready();
    // Without these the workers would dial WhatsApp itself: refuse to go on unless the gateway took them.
    // (the gateway logs the root key it passes on at start)
    if (!g.output().includes(sim.rootPublicKey)) throw new Error(`the gateway did not take WHATSMEOW_ROOT_PUBLIC_KEY:\n${g.output()}`);
    const made = await fetch(`${g.url}/admin/users`, { method: 'POST', headers: admin, body: JSON.stringify({ email: opts.email }) });
    if (made.status !== 201 && made.status !== 200) throw new Error(`user: ${made.status} ${await made.text()}`);
    auth = { authorization: `Bearer ${((await made.json()) as { apiKey: string }).apiKey}`, 'content-type': 'application/json' };
  } catch (err) {
    await cleanup();
    throw err;
  }

  async function create(phone: string, node: string, provider: Provider = 'whatsmeow'): Promise<{ id: number; createdMs: number; qrMs: number; qr: string }> {
    const t0 = performance.now();
    const res = await api('POST', '/api/instances', { provider, phone, node });
    if (res.status !== 200) throw new Error(`create on ${node}: ${res.status} ${await res.text()}`);
    const { id } = (await res.json()) as { id: number };
    live.add(id);
    const createdMs = performance.now() - t0;
    const qr = await until(
      `instance ${id}: first QR`,
      async () => {
        const r = await api('GET', `/api/instances/${id}/qr?format=json`);
        if (r.status === 200) return ((await r.json()) as { qr: string }).qr;
        await r.arrayBuffer();
        if (r.status !== 503) throw new Error(`GET qr: ${r.status}`);
        return undefined;
      },
      30_000,
      POLL_MS,
    );
    return { id, createdMs, qrMs: performance.now() - t0, qr };
  }

  /** `DELETE /api/instances/:id` → 204; a 5xx is reported on stderr with the gateway's last output and retried (3 tries, 1 s apart). */
  async function remove(id: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const res = await api('DELETE', `/api/instances/${id}`);
      if (res.status === 204) break;
      const text = await res.text();
      if (res.status < 500 || attempt === 3) throw new Error(`delete ${id}: ${res.status} ${text}\n${g.output().slice(-4000)}`);
      console.error(`delete ${id}: ${res.status} ${text} (try ${attempt}; retrying in 1 s). The gateway's last output:\n${g.output().slice(-4000)}`);
      await Bun.sleep(1000);
    }
    live.delete(id);
  }

  async function linked(phone: string, node: string, provider: Provider = 'whatsmeow'): Promise<number> {
    const made = await control('POST', '/phones', { phone });
    if (made.status !== 201 && made.status !== 200) throw new Error(`simulator phone: ${made.status} ${await made.text()}`);
    const { id, qr } = await create(phone, node, provider);
    const link = await control('POST', `/phones/${phone}/link`, { qr });
    if (link.status !== 200) throw new Error(`link ${id}: ${link.status} ${await link.text()}`);
    await until(`instance ${id} connected`, async () => {
      const i = await getInstance(id);
      return i.status === 'running' && i.state === 'connected';
    }, 30_000, 20);
    return id;
  }

  async function processWorker(id: number, provider: Provider = 'whatsmeow'): Promise<number> {
    for (const pid of await descendants(g.proc.pid)) {
      if (!(await isWorker(pid, provider))) continue;
      const environ = await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '');
      if (environ.split('\0').includes(`WGS_INSTANCE_ID=${id}`)) return pid;
    }
    throw new Error(`no worker process for instance ${id}`);
  }

  return { sim, g, gatewayId, admin, api, control, getInstance, create, remove, linked, processWorker, cleanup };
}
