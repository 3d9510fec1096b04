/**
 * A real Prometheus (Debian's /usr/bin/prometheus, installed by .ci/run) on a
 * loopback port with a temporary config and TSDB, queried through its own
 * HTTP API; and promtool. Tests that use it fail, never skip, when it is
 * missing.
 */
import type { Subprocess } from 'bun';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../gateway/src/lib/net';
import { until } from './poll';

export const PROMETHEUS_BIN = '/usr/bin/prometheus';
export const PROMTOOL_BIN = '/usr/bin/promtool';

/** Throws, with what to do, when Prometheus or promtool is not installed. */
export function requirePrometheus(): void {
  for (const bin of [PROMETHEUS_BIN, PROMTOOL_BIN]) {
    if (!existsSync(bin)) {
      throw new Error(
        `${bin} is missing: these tests run a real Prometheus. Install Debian's package ` +
          '(`apt-get install -y --no-install-recommends prometheus`, as .ci/run does) and keep its service stopped.',
      );
    }
  }
}

export interface ScrapeTarget {
  job: string;
  /** host:port on loopback. */
  target: string;
  /** Bearer token for the `authorization` scrape setting. */
  token?: string;
}

/** One sample of an instant query: its labels and value. */
export interface Sample {
  metric: Record<string, string>;
  value: number;
}

export interface Prometheus {
  url: string;
  proc: Subprocess;
  output(): string;
  /** Instant query; throws on a query Prometheus rejects (bad PromQL), with its error. */
  query(expr: string): Promise<Sample[]>;
  /** The sum of an instant query's values (0 when it returns nothing). */
  scalar(expr: string): Promise<number>;
  /** Label sets of every series matching a selector. */
  series(match: string): Promise<Record<string, string>[]>;
  /** Active targets with their health and last error. */
  targets(): Promise<{ labels: Record<string, string>; health: string; lastError: string; scrapeUrl: string }[]>;
  stop(): Promise<void>;
}

/**
 * Starts Prometheus on 127.0.0.1:<free port> scraping `targets` every second;
 * resolves once it answers /-/ready. `cleanup` gets its SIGKILL and the
 * removal of its temporary directory.
 */
export async function startPrometheus(targets: ScrapeTarget[], cleanup: (() => Promise<unknown>)[], opts: { ruleFiles?: string[] } = {}): Promise<Prometheus> {
  requirePrometheus();
  const dir = await mkdtemp(join(tmpdir(), 'wgs-prometheus-'));
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    ...(opts.ruleFiles && { rule_files: opts.ruleFiles }),
    scrape_configs: targets.map((t) => ({
      job_name: t.job,
      metrics_path: '/metrics',
      ...(t.token && { authorization: { type: 'Bearer', credentials: t.token } }),
      static_configs: [{ targets: [t.target] }],
    })),
  };
  // JSON is YAML: no YAML writer needed.
  await writeFile(join(dir, 'prometheus.yml'), JSON.stringify(config, null, 2));
  const port = await freePort();
  const proc = Bun.spawn(
    [
      PROMETHEUS_BIN,
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { cwd: dir, stdout: 'pipe', stderr: 'pipe' },
  );
  let out = '';
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) out += decoder.decode(chunk, { stream: true });
  };
  const pumped = Promise.all([pump(proc.stdout as ReadableStream<Uint8Array>), pump(proc.stderr as ReadableStream<Uint8Array>)]);
  const stop = async () => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
    await proc.exited;
    await pumped;
  };
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  cleanup.push(stop);
  const url = `http://127.0.0.1:${port}`;

  await until(
    'prometheus ready',
    async () => {
      if (proc.exitCode !== null) throw new Error(`prometheus exited with ${proc.exitCode}:\n${out}`);
      return (await fetch(`${url}/-/ready`).catch(() => null))?.status === 200;
    },
    30_000,
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\n${out}`);
  });

  const api = async (path: string, params: [string, string][]) => {
    const res = await fetch(`${url}${path}?${new URLSearchParams(params)}`);
    const body = (await res.json()) as { status: string; data: any; error?: string; errorType?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path} ${JSON.stringify(params)}: ${body.errorType}: ${body.error}`);
    return body.data;
  };
  const query = async (expr: string): Promise<Sample[]> => {
    const data = await api('/api/v1/query', [['query', expr]]);
    if (data.resultType === 'scalar') return [{ metric: {}, value: Number(data.result[1]) }];
    return (data.result as { metric: Record<string, string>; value: [number, string] }[]).map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  };
  return {
    url,
    proc,
    output: () => out,
    query,
    async scalar(expr) {
      return (await query(expr)).reduce((sum, s) => sum + s.value, 0);
    },
    series: (match) => api('/api/v1/series', [['match[]', match]]),
    async targets() {
      return (await api('/api/v1/targets', [['state', 'active']])).activeTargets;
    },
    stop,
  };
}

/** Runs promtool with `args`; resolves to its exit code and output. */
export async function promtool(args: string[], cwd?: string): Promise<{ code: number; output: string }> {
  requirePrometheus();
  const proc = Bun.spawn([PROMTOOL_BIN, ...args], { cwd, stdout: 'pipe', stderr: 'pipe' });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, output: stdout + stderr };
}

/**
 * The metric names a PromQL expression reads (Grafana variables such as
 * `$__rate_interval` and `$node` allowed): everything that is not a
 * function, a keyword, a label matcher, a grouping list or a range.
 */
export function promqlMetricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w.:])([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    if (m[2]) continue; // a function call
    if (/^(and|or|unless|offset|bool|by|without|on|ignoring|group_left|group_right|inf|nan)$/i.test(m[1]!)) continue;
    names.add(m[1]!);
  }
  return [...names];
}
