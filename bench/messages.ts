/**
 * Messages benchmark: throughput, latency and cost of text messages through
 * the real engines, whatsmeow and Baileys in the same run — a real gateway
 * process (embedded Postgres in a temporary DATA_DIR), the real, unmodified
 * workers on the process engine (the Go whatsmeow binary; the TypeScript
 * worker on Node 24 as the gateway runs it, `node <NODE_FLAGS>
 * build/worker-node/main.js` with NODE_ENV, gateway/src/instances/setup.ts), and the WhatsApp simulator in this process
 * (`startSimulator()`), which decrypts what its phones receive (Signal, npm
 * libsignal). For each provider one linked number A (instance, phone scanned
 * its QR) and one simulated phone B with no instance; both A's events go to a
 * webhook receiver in this process (one subscription each, every event type;
 * it answers 200 at once). Both numbers are linked first; then the phases
 * below run for one provider, then for the other (the idle one's worker
 * stays linked meanwhile). One column per provider.
 *
 * 0. warm-up and cost: RSS and PSS (/proc/PID/smaps_rollup) and CPU time of
 *    A's worker linked and idle, then after 1,000 texts sent to B (8 callers)
 *    and 1,000 received from B (100/s), each time after 5 s idle (no forced
 *    GC: Go's and V8's collectors run on their own);
 * 1. sends A → B, closed loop: N callers (1, 8, 32), each POSTing
 *    `/api/instances/:id/send` and waiting for its answer (200 once the
 *    worker's result is in: WhatsApp's server acked the message), 10 s or
 *    3,000 calls each; then every text must reach B's inbox;
 * 2. sends A → B, paced (20/s and 50/s for 10 s): latency from the call to
 *    B's decrypted copy, i.e. the simulator's `receivedAt` of the entry in
 *    `GET /phones/B/messages?since=<seq>` (set once the phone decrypted it,
 *    on this process's clock) minus the call's start (ms resolution);
 * 3. inbound B → A, paced (50/s, 500 texts): latency from
 *    `POST /phones/B/messages` returning to the `message.received` webhook
 *    reaching the receiver.
 *
 * Loopback only, every loop bounded in count and time; the gateway, its
 * worker, the simulator and the temporary directory are removed at the end,
 * also on failure and on SIGINT.
 *
 *   make bench     (or: node_modules/.bin/bun bench/messages.ts; needs Go)
 *   BENCH_PROVIDERS=baileys node_modules/.bin/bun bench/messages.ts    (one column only)
 */
import { loadavg } from 'node:os';
import { ensureNodeWorkerBundle, ensureWhatsmeowBinary } from '../tests/conformance/workers';
import { until } from '../tests/support/poll';
import { Columns, pct, printTable } from './table';
import { cpuSample, cpuSeconds, cpuShare, memory, memStats, type Mem } from './proc';
import { PROVIDERS, startStack, type Provider } from './stack';
import { NODE_ENV, NODE_FLAGS } from '../gateway/src/instances/setup';

/** Each provider's linked number A and the simulated phone B it talks to. */
const NUMBERS: Record<Provider, { A: string; B: string }> = {
  whatsmeow: { A: '491520000001', B: '491700000002' },
  baileys: { A: '491520000003', B: '491700000004' },
};
const IDLE_MS = 5000;
const COST_MESSAGES = 1000;
const COST_CALLERS = 8;
const COST_INBOUND_RATE = 100;
const CLOSED = { callers: [1, 8, 32], seconds: 10, maxCalls: 3000 };
const PACED = { rates: [20, 50], seconds: 10 };
const INBOUND = { rate: 50, count: 500 };
/** How long the messages of a phase may take to arrive once its calls have returned. */
const ARRIVE_MS = 60_000;

const ms = (x: number) => `${x.toFixed(1)} ms`;
const p50p99 = (xs: number[]) => `p50 ${ms(pct(xs, 0.5))}, p99 ${ms(pct(xs, 0.99))}, max ${ms(Math.max(...xs))}`;

/** How the gateway runs the Node worker (Baileys) on the process engine. */
const NODE_RUN = `${Object.entries(NODE_ENV).map(([k, v]) => `${k}=${v} `).join('')}node_modules/.bin/node ${NODE_FLAGS.join(' ')} build/worker-node/main.js`;
/** BENCH_PROVIDERS=baileys (or whatsmeow) runs that column only; both by default. */
const RUN = PROVIDERS.filter((p) => !process.env.BENCH_PROVIDERS || process.env.BENCH_PROVIDERS.split(',').includes(p));
if (RUN.length === 0) throw new Error(`BENCH_PROVIDERS=${process.env.BENCH_PROVIDERS}: none of ${PROVIDERS.join(', ')}`);
if (RUN.includes('whatsmeow')) await ensureWhatsmeowBinary();
await ensureNodeWorkerBundle();
const table = new Columns(RUN);
const notes: string[] = [];
const loadAtStart = loadavg()[0]!;
const stack = await startStack({
  gatewayPrefix: 'bench-msg-',
  tmpPrefix: 'wgs-bench-messages-',
  email: 'messages@example.com',
  env: { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' },
});
const { api, control } = stack;

/** The webhook receiver: records when each `message.received` arrives (performance.now()), by WhatsApp id; answers 200 to everything. */
const arrivals = new Map<string, number>();
let webhooks = 0;
const receiver = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(req) {
    const body = (await req.json()) as { type: string; data: { id?: string } };
    const at = performance.now();
    webhooks++;
    if (body.type === 'message.received' && body.data.id) arrivals.set(body.data.id, at);
    return new Response('ok');
  },
});

/** Starts `count` calls at `rate`/s without waiting for earlier ones; resolves when all have returned, with the achieved rate. */
async function paced(rate: number, count: number, call: (i: number) => Promise<void>): Promise<number> {
  const t0 = performance.now();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const wait = t0 + (i * 1000) / rate - performance.now();
    if (wait > 0) await Bun.sleep(wait);
    inflight.push(call(i));
  }
  await Promise.all(inflight);
  return count / ((performance.now() - t0) / 1000);
}

/** Every phase for one provider's linked number `id` (A) and its phone B. */
async function measure(provider: Provider, id: number): Promise<void> {
  const { A, B } = NUMBERS[provider];
  const row = (measure: string, value: string) => table.set(measure, provider, value);

  /** B's inbox after the last entry read (`seq` cursor): text → the entry's receivedAt (ms since the epoch). */
  let cursor = 0;
  const inbox = new Map<string, number>();
  async function readInbox(): Promise<void> {
    const res = await control('GET', `/phones/${B}/messages?since=${cursor}`);
    if (res.status !== 200) throw new Error(`inbox: ${res.status} ${await res.text()}`);
    for (const m of (await res.json()) as { seq: number; from: string; text?: string; receivedAt: string }[]) {
      cursor = Math.max(cursor, m.seq);
      if (m.from === A && m.text !== undefined) inbox.set(m.text, Date.parse(m.receivedAt));
    }
  }
  /** Waits until every text is in B's inbox. */
  async function arrived(texts: string[], what: string): Promise<void> {
    await until(`${provider} ${what}: all ${texts.length} texts in ${B}'s inbox`, async () => {
      await readInbox();
      return texts.every((t) => inbox.has(t));
    }, ARRIVE_MS, 20);
  }

  /** One send A → B; resolves with the call's duration and status (200 sent, 202 still queued after 10 s). */
  async function send(text: string): Promise<{ ms: number; status: number }> {
    const t0 = performance.now();
    const res = await api('POST', `/api/instances/${id}/send`, { to: B, type: 'text', text });
    await res.arrayBuffer();
    if (res.status !== 200 && res.status !== 202) throw new Error(`${provider} send: ${res.status}`);
    return { ms: performance.now() - t0, status: res.status };
  }

  /** `callers` concurrent loops of send-and-wait until `seconds` or `maxCalls`; the texts sent, call durations, 202s and the rate. */
  async function closedLoop(prefix: string, callers: number, seconds: number, maxCalls: number) {
    const texts: string[] = [];
    const latencies: number[] = [];
    let queued = 0;
    const t0 = performance.now();
    const deadline = t0 + seconds * 1000;
    await Promise.all(
      Array.from({ length: callers }, async () => {
        while (performance.now() < deadline && texts.length < maxCalls) {
          const text = `${prefix} ${texts.length}`;
          texts.push(text);
          const r = await send(text);
          latencies.push(r.ms);
          if (r.status === 202) queued++;
        }
      }),
    );
    return { texts, latencies, queued, perSecond: texts.length / ((performance.now() - t0) / 1000) };
  }

  /** Phone B sends `count` texts to A at `rate`/s; resolves once every `message.received` webhook arrived, with call durations and return → webhook latencies. */
  async function inbound(prefix: string, rate: number, count: number) {
    const calls: number[] = [];
    const returned = new Map<string, number>();
    const achieved = await paced(rate, count, async (i) => {
      const t0 = performance.now();
      const res = await control('POST', `/phones/${B}/messages`, { to: A, type: 'text', text: `${prefix} ${i}` });
      if (res.status !== 200) throw new Error(`phone send: ${res.status} ${await res.text()}`);
      const { id: waId } = (await res.json()) as { id: string };
      returned.set(waId, performance.now());
      calls.push(performance.now() - t0);
    });
    await until(`${provider} ${prefix}: all ${count} message.received webhooks`, () => [...returned.keys()].every((w) => arrivals.has(w)), ARRIVE_MS, 20);
    return { achieved, calls, latencies: [...returned].map(([w, at]) => arrivals.get(w)! - at) };
  }

  const worker = await stack.processWorker(id, provider);
  const gatewayPid = stack.g.proc.pid;

  // 0. cost: idle linked, then after 1,000 each way (also the warm-up: sessions with B's phone exist afterwards).
  await Bun.sleep(IDLE_MS); // the idle period being measured, not a wait for a condition
  const before: Mem = await memory(worker);
  const cpu0 = { worker: await cpuSeconds(worker), gateway: await cpuSeconds(gatewayPid) };
  const out = await closedLoop('cost', COST_CALLERS, 600, COST_MESSAGES);
  if (out.texts.length !== COST_MESSAGES) throw new Error(`${provider} cost phase: ${out.texts.length} sends in 600 s`);
  await arrived(out.texts, 'cost phase');
  const into = await inbound('cost in', COST_INBOUND_RATE, COST_MESSAGES);
  const cpu1 = { worker: await cpuSeconds(worker), gateway: await cpuSeconds(gatewayPid) };
  await Bun.sleep(IDLE_MS);
  const after: Mem = await memory(worker);
  row('worker RSS / PSS: linked, 5 s idle, no message yet', memStats([before]));
  row(`worker RSS / PSS: after ${COST_MESSAGES} texts sent and ${COST_MESSAGES} received, then 5 s idle (no forced GC)`, memStats([after]));
  const perMessage = (s: number) => `${s.toFixed(2)} s, ${((s * 1000) / (2 * COST_MESSAGES)).toFixed(2)} ms a message`;
  row(`CPU (user + sys) for those ${2 * COST_MESSAGES} messages: worker`, perMessage(cpu1.worker - cpu0.worker));
  row(`CPU (user + sys) for those ${2 * COST_MESSAGES} messages: gateway process (its Postgres not included)`, perMessage(cpu1.gateway - cpu0.gateway));
  notes.push(`${provider} cost phase: ${COST_MESSAGES} sends at ${out.perSecond.toFixed(0)}/s (${COST_CALLERS} callers), ${COST_MESSAGES} inbound at ${into.achieved.toFixed(0)}/s`);

  // 1. closed loop.
  for (const callers of CLOSED.callers) {
    const cpu = await cpuSample();
    const r = await closedLoop(`closed ${callers}`, callers, CLOSED.seconds, CLOSED.maxCalls);
    const busy = cpuShare(cpu, await cpuSample());
    await arrived(r.texts, `closed loop ${callers}`);
    row(
      `send A → B, closed loop, ${callers} caller${callers === 1 ? '' : 's'}, ${CLOSED.seconds} s (all calls' texts in B's inbox)`,
      `${r.perSecond.toFixed(1)} sends/s (${r.texts.length} calls); call ${p50p99(r.latencies)}${r.queued ? `; ${r.queued} answered 202 (queued)` : ''}; ${busy}`,
    );
  }

  // 2. paced: call → B's decrypted copy.
  for (const rate of PACED.rates) {
    const count = rate * PACED.seconds;
    const started = new Map<string, number>();
    const calls: number[] = [];
    let queued = 0;
    const cpu = await cpuSample();
    const achieved = await paced(rate, count, async (i) => {
      const text = `paced ${rate} ${i}`;
      started.set(text, Date.now());
      const r = await send(text);
      calls.push(r.ms);
      if (r.status === 202) queued++;
    });
    const busy = cpuShare(cpu, await cpuSample());
    await arrived([...started.keys()], `paced ${rate}/s`);
    const latencies = [...started].map(([text, at]) => inbox.get(text)! - at);
    row(
      `send A → B paced at ${rate}/s for ${PACED.seconds} s (${count} sends): call → B's decrypted copy`,
      `achieved ${achieved.toFixed(1)}/s; ${p50p99(latencies)}; the call itself p50 ${ms(pct(calls, 0.5))}, p99 ${ms(pct(calls, 0.99))}${queued ? `; ${queued} answered 202` : ''}; ${busy}`,
    );
  }

  // 3. inbound: B → A, call returned → message.received webhook.
  const cpu = await cpuSample();
  const r = await inbound('inbound', INBOUND.rate, INBOUND.count);
  const busy = cpuShare(cpu, await cpuSample());
  row(
    `receive B → A paced at ${INBOUND.rate}/s (${INBOUND.count} texts): POST /phones/B/messages returned → message.received webhook`,
    `achieved ${r.achieved.toFixed(1)}/s; ${p50p99(r.latencies)}; the phone's call itself p50 ${ms(pct(r.calls, 0.5))}; ${busy}`,
  );

  await Bun.sleep(IDLE_MS);
  if ((await stack.processWorker(id, provider)) !== worker) throw new Error(`${provider}: the worker was replaced during the run: its memory figures would mix two processes`);
  const sent = inbox.size; // every text in B's inbox came from A, each once
  const received = COST_MESSAGES + INBOUND.count;
  row(`worker RSS / PSS: end of its run (sent, received), then 5 s idle`, `${memStats([await memory(worker)])} (${sent} sent, ${received} received)`);
}

const cpuAtStart = await cpuSample();
try {
  const ids = {} as Record<Provider, number>;
  for (const provider of RUN) {
    const { A, B } = NUMBERS[provider];
    ids[provider] = await stack.linked(A, 'local', provider);
    const hook = await api('POST', `/api/instances/${ids[provider]}/webhooks`, { url: `http://127.0.0.1:${receiver.port}/hook` });
    if (hook.status !== 201) throw new Error(`webhook subscription: ${hook.status} ${await hook.text()}`);
    const phoneB = await control('POST', '/phones', { phone: B });
    if (phoneB.status !== 201) throw new Error(`phone ${B}: ${phoneB.status} ${await phoneB.text()}`);
  }
  for (const provider of RUN) {
    const cpu = await cpuSample();
    await measure(provider, ids[provider]);
    notes.push(`${provider} phases: ${cpuShare(cpu, await cpuSample())}`);
  }
  notes.push(`webhooks answered by the receiver: ${webhooks} (one subscription per number, every event type: message.status sent/delivered and message.received)`);
  notes.push("machine CPU: the share of all cores busy during the phase (from /proc/stat), and the share (of the whole machine) used by processes outside this benchmark's tree (its own process, the gateway, its Postgres and the workers)");
  notes.push(`whole run: ${cpuShare(cpuAtStart, await cpuSample())}`);
  notes.push(`load average (1 min): ${loadAtStart.toFixed(2)} at the start, ${loadavg()[0]!.toFixed(2)} at the end (the machine's other work shares its cores)`);
  notes.push(
    `workers (process engine): build/whatsmeow/wgs-whatsmeow; ${NODE_RUN} (Baileys, as the gateway runs it). ` +
      'WhatsApp: the simulator, in the benchmark process with the client and the webhook receiver (its Signal decryption shares that process)',
  );
} finally {
  receiver.stop(true);
  await stack.cleanup();
}

printTable('messages benchmark (whatsmeow and Baileys)', table.rows(), notes, table.header());
