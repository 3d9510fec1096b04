/**
 * whatsmeow benchmark: the figures a user asks about for the real engine,
 * with a real gateway process (embedded Postgres in a temporary DATA_DIR),
 * the WhatsApp simulator in this process (simulator/, `startSimulator()`) and
 * the real, unmodified Go worker (binary on the process engine, image on a
 * docker node):
 *
 * 1. `POST /api/instances` (provider `whatsmeow`) → 200 (worker running) and
 *    → first QR served by `GET /api/instances/:id/qr?format=json`, over
 *    20 instances on the process engine and 20 on a docker node (each deleted
 *    once measured);
 * 2. RSS and PSS (/proc/PID/smaps_rollup) of an idle linked worker (the QR
 *    scanned by the simulated phone, state `connected`, 5 s idle), one alone
 *    and then each of 10 linked at once: on the process engine the worker; on
 *    a docker node the worker, the container's docker-init (PID 1) and its
 *    containerd shim (the parent of PID 1). PSS splits shared pages among the
 *    processes mapping them, so with 10 it is the cost of one more;
 * 3. `kill -9` of a linked worker → the instance `connected` again (session
 *    from Postgres, no scan), once for each of the 10 linked instances (a
 *    second kill of the same one within 60 s would be a crash loop and back
 *    off).
 *
 * Loopback only (containers use host networking), every wait bounded; every
 * instance, container and process is removed at the end, also on failure.
 *
 *   make bench     (or: node_modules/.bin/bun bench/whatsmeow.ts; needs Go, and Docker for the docker rows)
 */
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { LABELS } from '../gateway/src/engines/docker-spec';
import { startSimulator } from '../simulator/src/server';
import { ensureWhatsmeowBinary } from '../tests/conformance/workers';
import { buildImages, docker, dockerAvailable, removeLabelled } from '../tests/support/docker';
import { spawnGateway } from '../tests/support/gateway-process';
import { until } from '../tests/support/poll';
import { printTable } from './table';
import { descendants } from './proc';

const CREATES = 20;
const LINKED = 10;
const IDLE_MS = 5000;
const POLL_MS = 5;
const GATEWAY_PREFIX = 'bench-wm-';

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;
const msStats = (xs: number[]) => `median ${pct(xs, 0.5).toFixed(0)} ms, p90 ${pct(xs, 0.9).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms`;
const MiB = (kB: number) => `${(kB / 1024).toFixed(1)} MiB`;

interface Instance {
  id: number;
  status: string;
  state: string;
  stateReason: string | null;
  stateChangedAt: string;
}

/** Rss and Pss in kB from /proc/PID/smaps_rollup. */
async function memory(pid: number): Promise<Mem> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name: string) => Number(text.match(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN);
  return { rss: field('Rss'), pss: field('Pss') };
}

/** The parent pid, from /proc/PID/stat (the field after the parenthesised command). */
async function parentPid(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

const comm = async (pid: number) => (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();

/** How many processes on the whole machine run a program (they share its pages, which lowers each one's PSS). */
async function processesOf(program: string): Promise<number> {
  let n = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv0 = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0')[0]!;
    if (argv0.split('/').pop() === program) n++;
  }
  return n;
}

type Mem = { rss: number; pss: number };
const sum = (...ms: Mem[]): Mem => ({ rss: ms.reduce((a, m) => a + m.rss, 0), pss: ms.reduce((a, m) => a + m.pss, 0) });
const memStats = (ms: Mem[]) =>
  ms.length === 1
    ? `${MiB(ms[0]!.rss)} / ${MiB(ms[0]!.pss)}`
    : `median ${MiB(pct(ms.map((m) => m.rss), 0.5))} / ${MiB(pct(ms.map((m) => m.pss), 0.5))}, max ${MiB(Math.max(...ms.map((m) => m.rss)))} / ${MiB(Math.max(...ms.map((m) => m.pss)))}`;

await ensureWhatsmeowBinary();
const withDocker = await dockerAvailable();
const images = withDocker ? buildImages() : undefined;
if (withDocker) {
  // Containers an interrupted earlier run of this benchmark left behind.
  for (const c of await docker.listContainers({ all: true, filters: { label: [LABELS.gateway] } })) {
    if (c.Labels[LABELS.gateway]?.startsWith(GATEWAY_PREFIX)) await docker.getContainer(c.Id).remove({ force: true });
  }
}
const gatewayId = `${GATEWAY_PREFIX}${randomBytes(3).toString('hex')}`;
const dir = await mkdtemp(join(tmpdir(), 'wgs-bench-whatsmeow-'));
await chmod(dir, 0o755);
const sim = startSimulator();
const rows: [string, string][] = [];
const notes: string[] = [];
const g = await spawnGateway({
  DATA_DIR: dir,
  ADMIN_API_SECRET: 'bench',
  LOG_LEVEL: 'warn',
  GATEWAY_ID: gatewayId,
  WHATSMEOW_WS_URL: sim.wsUrl,
  WHATSMEOW_ROOT_PUBLIC_KEY: sim.rootPublicKey,
  ...(images && { WORKER_IMAGE: images.typescript, WORKER_IMAGE_WHATSMEOW: images.whatsmeow }),
});
const live = new Set<number>();
let auth: Record<string, string> = {};
const api = (method: string, path: string, body?: unknown) =>
  fetch(`${g.url}${path}`, { method, headers: auth, body: body === undefined ? undefined : JSON.stringify(body) });
const getInstance = async (id: number) => (await (await api('GET', `/api/instances/${id}`)).json()) as Instance;

let cleaning: Promise<void> | undefined;
/** Removes everything this run made; every step runs even if an earlier one fails. Called once, awaited by all. */
const cleanup = () =>
  (cleaning ??= (async () => {
    for (const id of live) await api('DELETE', `/api/instances/${id}`).catch(() => {});
    // SIGTERM stops the gateway and its process workers (SIGKILL after 10 s); bounded here too.
    const killer = setTimeout(() => g.proc.kill('SIGKILL'), 30_000);
    await g.stop().catch(() => {});
    clearTimeout(killer);
    if (withDocker) await removeLabelled(`${LABELS.gateway}=${gatewayId}`).catch(() => {});
    await sim.stop().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  })());
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`${signal}: removing this run's instances, containers and gateway`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function create(phone: string, node: string): Promise<{ id: number; createdMs: number; qrMs: number; qr: string }> {
  const t0 = performance.now();
  const res = await api('POST', '/api/instances', { provider: 'whatsmeow', phone, node });
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

async function remove(id: number): Promise<void> {
  const res = await api('DELETE', `/api/instances/${id}`);
  if (res.status !== 204) throw new Error(`delete ${id}: ${res.status} ${await res.text()}`);
  live.delete(id);
}

/** Creates an instance, lets the simulated phone scan its QR, waits until it is `connected`. */
async function linked(phone: string, node: string): Promise<number> {
  const made = await fetch(`${sim.url}/phones`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ phone }) });
  if (made.status !== 201 && made.status !== 200) throw new Error(`simulator phone: ${made.status} ${await made.text()}`);
  const { id, qr } = await create(phone, node);
  const link = await fetch(`${sim.url}/phones/${phone}/link`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ qr }) });
  if (link.status !== 200) throw new Error(`link ${id}: ${link.status} ${await link.text()}`);
  await until(`instance ${id} connected`, async () => {
    const i = await getInstance(id);
    return i.status === 'running' && i.state === 'connected';
  }, 30_000, 20);
  return id;
}

/** The process-engine worker of an instance: a wgs-whatsmeow child of this gateway with its instance id. */
async function processWorker(id: number): Promise<number> {
  for (const pid of await descendants(g.proc.pid)) {
    if ((await comm(pid)) !== 'wgs-whatsmeow') continue;
    const environ = await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '');
    if (environ.split('\0').includes(`WGS_INSTANCE_ID=${id}`)) return pid;
  }
  throw new Error(`no worker process for instance ${id}`);
}

/** A docker-node instance's processes: docker-init (the container's PID 1), the worker (its one child) and the containerd shim (init's parent). */
async function containerProcesses(id: number): Promise<{ worker: number; init: number; shim: number; shimName: string }> {
  const [c] = await docker.listContainers({ filters: { label: [`${LABELS.gateway}=${gatewayId}`, `${LABELS.instance}=${id}`] } });
  if (!c) throw new Error(`no container for instance ${id}`);
  const init = (await docker.getContainer(c.Id).inspect()).State.Pid;
  const kids = (await readFile(`/proc/${init}/task/${init}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean).map(Number);
  const worker = kids.length === 1 ? kids[0]! : NaN;
  if ((await comm(worker)) !== 'wgs-whatsmeow') throw new Error(`container ${c.Id}: init ${init} (${await comm(init)}) has children ${kids.join(',')}, not one wgs-whatsmeow`);
  const shim = await parentPid(init);
  // comm is cut at 15 characters ("containerd-shim"): name it from its command line.
  const shimName = (await readFile(`/proc/${shim}/cmdline`, 'utf8')).split('\0')[0]!.split('/').pop()!;
  if (!shimName.startsWith('containerd-shim')) throw new Error(`container ${c.Id}: the parent of ${init} is ${shim} (${shimName}), not a containerd shim`);
  return { worker, init, shim, shimName };
}

const loadAtStart = loadavg()[0]!;
try {
  await g.ready();
  // Without these the workers would dial WhatsApp itself: refuse to go on unless the gateway took them.
  // (the gateway logs the root key it passes on at start)
  if (!g.output().includes(sim.rootPublicKey)) throw new Error(`the gateway did not take WHATSMEOW_ROOT_PUBLIC_KEY:\n${g.output()}`);
  const admin = { 'x-admin-api-secret': 'bench', 'content-type': 'application/json' };
  const user = (await (await fetch(`${g.url}/admin/users`, { method: 'POST', headers: admin, body: JSON.stringify({ email: 'wm@example.com' }) })).json()) as { apiKey: string };
  auth = { authorization: `Bearer ${user.apiKey}`, 'content-type': 'application/json' };
  if (withDocker) {
    const node = await fetch(`${g.url}/admin/nodes`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'bench-docker', engine: 'docker', endpoint: 'unix:///var/run/docker.sock' }) });
    if (node.status !== 200) throw new Error(`docker node: ${node.status} ${await node.text()}`);
  }
  const engines = withDocker ? [['local', 'process engine'] as const, ['bench-docker', 'docker node'] as const] : [['local', 'process engine'] as const];

  // 1. create → first QR, one instance at a time, each deleted once measured.
  let phoneSeq = 0;
  const phone = () => `4915200${String(phoneSeq++).padStart(5, '0')}`;
  for (const [node, label] of engines) {
    const createdMs: number[] = [];
    const qrMs: number[] = [];
    for (let i = 0; i < CREATES; i++) {
      const made = await create(phone(), node);
      createdMs.push(made.createdMs);
      qrMs.push(made.qrMs);
      await remove(made.id);
    }
    rows.push([`POST /api/instances → 200 (worker running), ${label} (${CREATES} instances)`, msStats(createdMs)]);
    rows.push([`POST /api/instances → first QR served (?format=json), ${label} (${CREATES} instances)`, msStats(qrMs)]);
  }

  // 2. idle linked workers on the process engine: one alone, then 10 at once.
  const ids: number[] = [];
  for (const count of [1, LINKED]) {
    while (ids.length < count) ids.push(await linked(phone(), 'local'));
    await Bun.sleep(IDLE_MS); // the idle period being measured, not a wait for a condition
    const mems: Mem[] = [];
    for (const id of ids) mems.push(await memory(await processWorker(id)));
    rows.push([`idle linked worker, process engine, ${count === 1 ? 'alone' : `${count} at once (per worker)`}: RSS / PSS`, memStats(mems)]);
    notes.push(`wgs-whatsmeow processes on the machine with ${count} linked here: ${await processesOf('wgs-whatsmeow')}`);
  }

  // 3. kill -9 of a linked worker → connected again, once per linked instance.
  const recovery: number[] = [];
  for (const id of ids) {
    const pid = await processWorker(id);
    const killedAt = Date.now();
    const t0 = performance.now();
    process.kill(pid, 'SIGKILL');
    await until(
      `instance ${id} connected again after kill -9`,
      async () => {
        const i = await getInstance(id);
        // stateChangedAt after the kill: a `connected` the replacement reported, not the killed worker's.
        return i.status === 'running' && i.state === 'connected' && Date.parse(i.stateChangedAt) >= killedAt;
      },
      60_000,
      POLL_MS,
    );
    recovery.push(performance.now() - t0);
    if ((await processWorker(id)) === pid) throw new Error(`instance ${id}: connected, but on the killed worker's pid`);
  }
  rows.push([`kill -9 of a linked worker → connected again, no scan, process engine (${recovery.length} kills, one per instance)`, msStats(recovery)]);
  for (const id of ids) await remove(id);

  // 2b. idle linked workers on the docker node: the worker, docker-init (PID 1) and the containerd shim of each container.
  if (withDocker) {
    const onDocker: number[] = [];
    for (const count of [1, LINKED]) {
      while (onDocker.length < count) onDocker.push(await linked(phone(), 'bench-docker'));
      await Bun.sleep(IDLE_MS);
      const parts = { worker: [] as Mem[], init: [] as Mem[], shim: [] as Mem[], total: [] as Mem[] };
      let shimName = '';
      for (const id of onDocker) {
        const c = await containerProcesses(id);
        shimName = c.shimName;
        const m = { worker: await memory(c.worker), init: await memory(c.init), shim: await memory(c.shim) };
        parts.worker.push(m.worker);
        parts.init.push(m.init);
        parts.shim.push(m.shim);
        parts.total.push(sum(m.worker, m.init, m.shim));
      }
      const what = count === 1 ? 'alone' : `${count} at once (per container)`;
      rows.push([`idle linked worker, docker node, ${what}: worker RSS / PSS`, memStats(parts.worker)]);
      rows.push([`idle linked worker, docker node, ${what}: docker-init RSS / PSS`, memStats(parts.init)]);
      rows.push([`idle linked worker, docker node, ${what}: ${shimName} RSS / PSS`, memStats(parts.shim)]);
      rows.push([`idle linked worker, docker node, ${what}: worker + init + shim RSS / PSS`, memStats(parts.total)]);
      notes.push(`containerd-shim-runc-v2 processes on the machine with ${count} container(s) here: ${await processesOf('containerd-shim-runc-v2')}`);
    }
    for (const id of onDocker) await remove(id);
  } else {
    notes.push('docker rows skipped: no Docker daemon on /var/run/docker.sock');
  }
  notes.push(`load average (1 min): ${loadAtStart.toFixed(2)} at the start, ${loadavg()[0]!.toFixed(2)} at the end (the machine's other work shares its cores)`);
  notes.push(`worker: build/whatsmeow/wgs-whatsmeow (process engine)${images ? `, image ${images.whatsmeow} (docker node, host networking)` : ''}; WhatsApp: the simulator, in the benchmark process`);
} finally {
  await cleanup();
}

printTable('whatsmeow benchmark', rows, notes);
