/**
 * Engines benchmark: the figures a user asks about for the real engines,
 * whatsmeow (the Go worker) and Baileys (the TypeScript worker on Node 24,
 * with gateway/src/instances/setup.ts's NODE_FLAGS and NODE_ENV), side by side in one run, with a real
 * gateway process (embedded Postgres in a temporary DATA_DIR), the WhatsApp
 * simulator in this process (simulator/, `startSimulator()`) and the real,
 * unmodified workers (binary or Node bundle on the process engine, image on a
 * docker node). For each provider:
 *
 * 1. `POST /api/instances` → 200 (worker running) and → first QR served by
 *    `GET /api/instances/:id/qr?format=json`, over 20 instances on the
 *    process engine and 20 on a docker node (each deleted once measured);
 * 2. RSS and PSS (/proc/PID/smaps_rollup) of an idle linked worker (the QR
 *    scanned by the simulated phone, state `connected`, 5 s idle), one alone
 *    and then each of 10 linked at once: on the process engine the worker
 *    (for Baileys the node process); on a docker node the worker, the
 *    container's docker-init (PID 1) and its containerd shim (the parent of
 *    PID 1). PSS splits shared pages among the processes mapping them, so
 *    with 10 it is the cost of one more;
 * 3. `kill -9` of a linked worker → the instance `connected` again (session
 *    from Postgres, no scan), once for each of the 10 linked instances (a
 *    second kill of the same one within 60 s would be a crash loop and back
 *    off).
 *
 * One column per provider. Loopback only (containers use host networking),
 * every wait bounded; every instance, container and process is removed at the
 * end, also on failure and SIGINT.
 *
 *   make bench     (or: node_modules/.bin/bun bench/engines.ts; needs Go, and Docker for the docker rows)
 *   BENCH_PROVIDERS=baileys node_modules/.bin/bun bench/engines.ts    (one column only)
 */
import { readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { LABELS } from '../gateway/src/engines/docker-spec';
import { ensureNodeWorkerBundle, ensureWhatsmeowBinary } from '../tests/conformance/workers';
import { buildImages, docker, dockerAvailable, removeLabelled } from '../tests/support/docker';
import { until } from '../tests/support/poll';
import { Columns, pct, printTable } from './table';
import { comm, memory, memStats, parentPid, processesOf, sum, type Mem } from './proc';
import { isWorker, PROVIDERS, startStack, WORKER_PROGRAM, type Provider } from './stack';
import { NODE_ENV, NODE_FLAGS } from '../gateway/src/instances/setup';

const CREATES = 20;
const LINKED = 10;
const IDLE_MS = 5000;
const POLL_MS = 5;
const GATEWAY_PREFIX = 'bench-eng-';
/** Earlier names of this benchmark's gateways: their containers are left-overs too. */
const OLD_PREFIXES = [GATEWAY_PREFIX, 'bench-wm-'];

const msStats = (xs: number[]) => `median ${pct(xs, 0.5).toFixed(0)} ms, p90 ${pct(xs, 0.9).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms`;

/** How the gateway runs the Node worker (Baileys) on the process engine. */
const NODE_RUN = `${Object.entries(NODE_ENV).map(([k, v]) => `${k}=${v} `).join('')}node_modules/.bin/node ${NODE_FLAGS.join(' ')} build/worker-node/main.js`;
/** BENCH_PROVIDERS=baileys (or whatsmeow) runs that column only; both by default. */
const RUN = PROVIDERS.filter((p) => !process.env.BENCH_PROVIDERS || process.env.BENCH_PROVIDERS.split(',').includes(p));
if (RUN.length === 0) throw new Error(`BENCH_PROVIDERS=${process.env.BENCH_PROVIDERS}: none of ${PROVIDERS.join(', ')}`);
if (RUN.includes('whatsmeow')) await ensureWhatsmeowBinary();
await ensureNodeWorkerBundle();
const withDocker = await dockerAvailable();
const images = withDocker ? buildImages() : undefined;
if (withDocker) {
  // Containers an interrupted earlier run of this benchmark left behind.
  for (const c of await docker.listContainers({ all: true, filters: { label: [LABELS.gateway] } })) {
    if (OLD_PREFIXES.some((p) => c.Labels[LABELS.gateway]?.startsWith(p))) await docker.getContainer(c.Id).remove({ force: true });
  }
}
const table = new Columns(RUN);
const notes: string[] = [];
const loadAtStart = loadavg()[0]!;
const { g, admin, getInstance, create, remove, linked, processWorker, cleanup, gatewayId } = await startStack({
  gatewayPrefix: GATEWAY_PREFIX,
  tmpPrefix: 'wgs-bench-engines-',
  email: 'engines@example.com',
  env: images ? { WORKER_IMAGE: images.typescript, WORKER_IMAGE_WHATSMEOW: images.whatsmeow, WORKER_IMAGE_NODE: images.node } : {},
  afterGateway: (id) => (withDocker ? removeLabelled(`${LABELS.gateway}=${id}`) : Promise.resolve()),
});

/** A docker-node instance's processes: docker-init (the container's PID 1), the worker (its one child) and the containerd shim (init's parent). */
async function containerProcesses(id: number, provider: Provider): Promise<{ worker: number; init: number; shim: number; shimName: string }> {
  const [c] = await docker.listContainers({ filters: { label: [`${LABELS.gateway}=${gatewayId}`, `${LABELS.instance}=${id}`] } });
  if (!c) throw new Error(`no container for instance ${id}`);
  const init = (await docker.getContainer(c.Id).inspect()).State.Pid;
  const kids = (await readFile(`/proc/${init}/task/${init}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean).map(Number);
  const worker = kids.length === 1 ? kids[0]! : NaN;
  if (!(await isWorker(worker, provider))) throw new Error(`container ${c.Id}: init ${init} (${await comm(init)}) has children ${kids.join(',')}, not one ${provider} worker`);
  const shim = await parentPid(init);
  // comm is cut at 15 characters ("containerd-shim"): name it from its command line.
  const shimName = (await readFile(`/proc/${shim}/cmdline`, 'utf8')).split('\0')[0]!.split('/').pop()!;
  if (!shimName.startsWith('containerd-shim')) throw new Error(`container ${c.Id}: the parent of ${init} is ${shim} (${shimName}), not a containerd shim`);
  return { worker, init, shim, shimName };
}

try {
  if (withDocker) {
    const node = await fetch(`${g.url}/admin/nodes`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'bench-docker', engine: 'docker', endpoint: 'unix:///var/run/docker.sock' }) });
    if (node.status !== 200) throw new Error(`docker node: ${node.status} ${await node.text()}`);
  }
  const engines = withDocker ? [['local', 'process engine'] as const, ['bench-docker', 'docker node'] as const] : [['local', 'process engine'] as const];
  let phoneSeq = 0;
  const phone = () => `4915200${String(phoneSeq++).padStart(5, '0')}`;

  for (const provider of RUN) {
    // 1. create → first QR, one instance at a time, each deleted once measured.
    for (const [node, label] of engines) {
      const createdMs: number[] = [];
      const qrMs: number[] = [];
      for (let i = 0; i < CREATES; i++) {
        const made = await create(phone(), node, provider);
        createdMs.push(made.createdMs);
        qrMs.push(made.qrMs);
        await remove(made.id);
      }
      table.set(`POST /api/instances → 200 (worker running), ${label} (${CREATES} instances)`, provider, msStats(createdMs));
      table.set(`POST /api/instances → first QR served (?format=json), ${label} (${CREATES} instances)`, provider, msStats(qrMs));
    }

    // 2. idle linked workers on the process engine: one alone, then 10 at once.
    const ids: number[] = [];
    for (const count of [1, LINKED]) {
      while (ids.length < count) ids.push(await linked(phone(), 'local', provider));
      await Bun.sleep(IDLE_MS); // the idle period being measured, not a wait for a condition
      const mems: Mem[] = [];
      for (const id of ids) mems.push(await memory(await processWorker(id, provider)));
      table.set(`idle linked worker, process engine, ${count === 1 ? 'alone' : `${count} at once (per worker)`}: RSS / PSS`, provider, memStats(mems));
      const program = WORKER_PROGRAM[provider].program;
      notes.push(`${provider}: ${program} processes on the machine with ${count} linked here: ${await processesOf(program)}`);
    }

    // 3. kill -9 of a linked worker → connected again, once per linked instance.
    const recovery: number[] = [];
    for (const id of ids) {
      const pid = await processWorker(id, provider);
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
      if ((await processWorker(id, provider)) === pid) throw new Error(`instance ${id}: connected, but on the killed worker's pid`);
    }
    table.set(`kill -9 of a linked worker → connected again, no scan, process engine (${recovery.length} kills, one per instance)`, provider, msStats(recovery));
    for (const id of ids) await remove(id);

    // 2b. idle linked workers on the docker node: the worker, docker-init (PID 1) and the containerd shim of each container.
    if (withDocker) {
      const onDocker: number[] = [];
      for (const count of [1, LINKED]) {
        while (onDocker.length < count) onDocker.push(await linked(phone(), 'bench-docker', provider));
        await Bun.sleep(IDLE_MS);
        const parts = { worker: [] as Mem[], init: [] as Mem[], shim: [] as Mem[], total: [] as Mem[] };
        let shimName = '';
        for (const id of onDocker) {
          const c = await containerProcesses(id, provider);
          shimName = c.shimName;
          const m = { worker: await memory(c.worker), init: await memory(c.init), shim: await memory(c.shim) };
          parts.worker.push(m.worker);
          parts.init.push(m.init);
          parts.shim.push(m.shim);
          parts.total.push(sum(m.worker, m.init, m.shim));
        }
        const what = count === 1 ? 'alone' : `${count} at once (per container)`;
        table.set(`idle linked worker, docker node, ${what}: worker RSS / PSS`, provider, memStats(parts.worker));
        table.set(`idle linked worker, docker node, ${what}: docker-init RSS / PSS`, provider, memStats(parts.init));
        table.set(`idle linked worker, docker node, ${what}: ${shimName} RSS / PSS`, provider, memStats(parts.shim));
        table.set(`idle linked worker, docker node, ${what}: worker + init + shim RSS / PSS`, provider, memStats(parts.total));
        notes.push(`${provider}: containerd-shim-runc-v2 processes on the machine with ${count} container(s) here: ${await processesOf('containerd-shim-runc-v2')}`);
      }
      for (const id of onDocker) await remove(id);
    }
  }
  if (!withDocker) notes.push('docker rows skipped: no Docker daemon on /var/run/docker.sock');
  notes.push(`load average (1 min): ${loadAtStart.toFixed(2)} at the start, ${loadavg()[0]!.toFixed(2)} at the end (the machine's other work shares its cores)`);
  notes.push(
    `workers: build/whatsmeow/wgs-whatsmeow and ${NODE_RUN} (process engine)` +
      `${images ? `, images ${images.whatsmeow} and ${images.node} (docker node, host networking)` : ''}; WhatsApp: the simulator, in the benchmark process`,
  );
} finally {
  await cleanup();
}

printTable('engines benchmark (whatsmeow and Baileys)', table.rows(), notes, table.header());
