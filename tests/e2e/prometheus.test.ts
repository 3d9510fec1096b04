/**
 * A real Prometheus scrapes a real gateway (sandbox numbers, sends, webhook
 * deliveries to a receiver on loopback) with METRICS_TOKEN, and everything is
 * asserted through Prometheus' own query API. The monitoring files in
 * deploy/monitoring are checked here too: promtool on the alert rules and
 * their unit tests, every dashboard query against the metric names the
 * gateway defines (and parsed by Prometheus), and the compose profile.
 *
 * Needs /usr/bin/prometheus and /usr/bin/promtool (Debian's `prometheus`
 * package, installed by .ci/run): fails, never skips, without them.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from '../../gateway/src/lib/net';
import { GatewayMetrics } from '../../gateway/src/metrics/metrics';
import { gatewayApi as api, type GatewayProcess, startGatewayProcess, waitConnected } from '../support/gateway-process';
import { until } from '../support/poll';
import { createTestDatabase } from '../support/postgres';
import { promqlMetricNames, promtool, type Prometheus, requirePrometheus, startPrometheus } from '../support/prometheus';
import { webhookReceiver, type Receiver } from '../support/receiver';

const ROOT = resolve(import.meta.dir, '..', '..');
const MONITORING = join(ROOT, 'deploy', 'monitoring');
const TOKEN = 'prometheus-test-token-0123456789';
/** Label names that would make a series per tenant or per number (only Prometheus' own target label `instance` may exist). */
const FORBIDDEN_LABELS = ['instance_id', 'instance', 'tenant', 'tenant_id', 'user', 'user_id', 'phone', 'email', 'api_key'];

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
});

/** Every metric the gateway defines (gateway/src/metrics/metrics.ts), with prom-client's process_/nodejs_ defaults: name -> type. */
async function definedMetrics(): Promise<Map<string, string>> {
  const defined = new Map<string, string>();
  for (const m of await new GatewayMetrics().registry.getMetricsAsJSON()) defined.set(m.name, String(m.type));
  return defined;
}

/** The rules of deploy/monitoring/alerts.yml (one group, `wgs`). */
async function alertRules(): Promise<{ alert: string; expr: string; labels?: Record<string, string>; annotations?: Record<string, string> }[]> {
  const file = Bun.YAML.parse(await readFile(join(MONITORING, 'alerts.yml'), 'utf8')) as any;
  expect(file.groups.map((g: any) => g.name)).toEqual(['wgs']);
  return file.groups[0].rules;
}

/** Whether `name` is a series of a defined metric (histograms: its _bucket, _sum and _count). */
function isDefined(defined: Map<string, string>, name: string): boolean {
  if (name === 'up') return true;
  if (defined.has(name)) return true;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return base !== name && ['histogram', 'summary'].includes(defined.get(base) ?? '');
}

/** Samples of a Prometheus text exposition: name and labels. */
function exposition(text: string): { name: string; labels: Record<string, string> }[] {
  const samples: { name: string; labels: Record<string, string> }[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s/);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels });
  }
  return samples;
}

describe('deploy/monitoring files', () => {
  test('promtool: the alert rules are valid, their unit tests pass, and the example prometheus.yml loads them', async () => {
    requirePrometheus();
    const check = await promtool(['check', 'rules', join(MONITORING, 'alerts.yml')]);
    expect(check.output).toContain('SUCCESS');
    expect(check.code).toBe(0);
    const unit = await promtool(['test', 'rules', 'alerts.test.yml'], MONITORING);
    if (unit.code !== 0) throw new Error(`promtool test rules failed:\n${unit.output}`);

    // The example config with its container paths pointed at the repository's files.
    const dir = await mkdtemp(join(tmpdir(), 'wgs-promcfg-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'token'), TOKEN);
    const config = (await readFile(join(MONITORING, 'prometheus.yml'), 'utf8'))
      .replaceAll('/etc/prometheus/alerts.yml', join(MONITORING, 'alerts.yml'))
      .replaceAll('/run/secrets/metrics_token', join(dir, 'token'));
    await writeFile(join(dir, 'prometheus.yml'), config);
    const cfg = await promtool(['check', 'config', join(dir, 'prometheus.yml')]);
    if (cfg.code !== 0) throw new Error(`promtool check config failed:\n${cfg.output}`);
    expect(cfg.output).toContain(`SUCCESS: ${(await alertRules()).length} rules found`);
  });

  test('every alert has a severity, a summary and a description, and reads only metrics the gateway defines', async () => {
    const defined = await definedMetrics();
    const alerts = await alertRules();
    const names = alerts.map((r) => r.alert);
    for (const expected of [
      'WgsGatewayDown',
      'WgsNodeUnreachable',
      'WgsInstancesInError',
      'WgsWorkerCrashLoop',
      'WgsWebhookOutboxBacklog',
      'WgsWebhookOutboxStale',
      'WgsWebhookFailureRatio',
      'WgsInstancesStuckReconnecting',
      'WgsDataDirLow',
      'WgsDataDirFillingUp',
      'WgsDatabaseGrowingFast',
    ]) {
      expect(names).toContain(expected);
    }
    for (const r of alerts) {
      expect(r.labels?.severity ?? '').toMatch(/^(critical|warning)$/);
      expect(r.annotations?.summary?.length).toBeGreaterThan(10);
      expect(r.annotations?.description?.length).toBeGreaterThan(20);
      for (const name of promqlMetricNames(r.expr)) {
        if (!isDefined(defined, name)) throw new Error(`alert ${r.alert} reads ${name}, which gateway/src/metrics/metrics.ts does not define`);
      }
    }
  });

  test('every dashboard query reads only metrics the gateway defines (or process_/nodejs_/up)', async () => {
    const defined = await definedMetrics();
    expect([...defined.keys()].filter((n) => n.startsWith('wgs_')).length).toBeGreaterThan(30);
    const dash = JSON.parse(await readFile(join(MONITORING, 'grafana', 'wgs-dashboard.json'), 'utf8'));
    expect(dash.uid).toBe('wgs-overview');
    const ds = dash.templating.list.find((v: any) => v.type === 'datasource');
    expect(ds).toMatchObject({ name: 'datasource', query: 'prometheus' });

    const panels = dash.panels.flatMap((p: any) => [p, ...(p.panels ?? [])]);
    expect(new Set(panels.map((p: any) => p.id)).size).toBe(panels.length);
    const exprs = dashboardExprs(dash);
    expect(exprs.length).toBeGreaterThan(30);
    const used = new Set<string>();
    for (const p of panels.filter((p: any) => p.type !== 'row')) {
      expect(p.datasource).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(p.gridPos).toMatchObject({ w: expect.any(Number), h: expect.any(Number), x: expect.any(Number), y: expect.any(Number) });
      expect(p.targets.length).toBeGreaterThan(0);
    }
    for (const { title, expr } of exprs) {
      const names = promqlMetricNames(expr);
      expect(names.length).toBeGreaterThan(0);
      for (const name of names) {
        if (!isDefined(defined, name)) throw new Error(`panel "${title}" reads ${name}, which gateway/src/metrics/metrics.ts does not define: ${expr}`);
        used.add(name.replace(/_(bucket|sum|count)$/, ''));
      }
    }
    // The sections the dashboard is for.
    for (const name of [
      'wgs_instances',
      'wgs_node_capacity_cpu_cores',
      'wgs_node_reserved_memory_bytes',
      'wgs_worker_memory_rss_bytes',
      'wgs_worker_cpu_seconds_total',
      'wgs_webhook_deliveries_total',
      'wgs_webhook_delivery_latency_seconds',
      'wgs_webhook_outbox_pending',
      'wgs_webhook_outbox_oldest_pending_seconds',
      'wgs_sends_total',
      'wgs_message_status_transitions_total',
      'wgs_http_requests_total',
      'wgs_http_request_duration_seconds',
    ]) {
      expect(used).toContain(name);
    }
  });

  test('compose: the monitoring profile runs pinned Prometheus and Grafana images on the files in deploy/monitoring', async () => {
    const deploy = join(ROOT, 'deploy');
    const compose = Bun.YAML.parse(await readFile(join(deploy, 'compose.yaml'), 'utf8')) as any;
    const { prometheus, grafana, gateway } = compose.services;
    for (const [svc, image] of [
      [prometheus, /^prom\/prometheus:v\d+\.\d+\.\d+$/],
      [grafana, /^grafana\/grafana:\d+\.\d+\.\d+$/],
    ] as const) {
      expect(svc.profiles).toEqual(['monitoring']);
      expect(svc.image).toMatch(image);
      expect(svc.networks).toEqual(gateway.networks);
      for (const port of svc.ports) expect(port).toMatch(/^127\.0\.0\.1:/);
      for (const volume of svc.volumes as string[]) {
        const [source, target] = volume.split(':');
        if (source!.startsWith('.')) {
          if (!existsSync(join(deploy, source!))) throw new Error(`compose mounts ${source}, which does not exist in deploy/`);
        } else {
          expect(compose.volumes).toHaveProperty(source!);
        }
        expect(target).toMatch(/^\//);
      }
    }
    // The services the default `docker compose up` starts are unchanged: monitoring only with its profile.
    expect(Object.entries(compose.services).filter(([, s]: any) => !s.profiles).map(([n]) => n).sort()).toEqual(['gateway', 'postgres']);
    expect(gateway.environment.METRICS_TOKEN).toBe('${METRICS_TOKEN:-}');
    expect(prometheus.secrets).toEqual(['metrics_token']);
    expect(compose.secrets.metrics_token).toEqual({ environment: 'METRICS_TOKEN' });

    // Prometheus' config and rules are mounted where prometheus.yml and its command expect them.
    const mounts = Object.fromEntries((prometheus.volumes as string[]).map((v) => v.split(':')).map(([s, t]) => [t, s]));
    expect(mounts['/etc/prometheus/prometheus.yml']).toBe('./monitoring/prometheus.yml');
    expect(mounts['/etc/prometheus/alerts.yml']).toBe('./monitoring/alerts.yml');
    expect(prometheus.command).toContain('--config.file=/etc/prometheus/prometheus.yml');
    const promCfg = Bun.YAML.parse(await readFile(join(MONITORING, 'prometheus.yml'), 'utf8')) as any;
    expect(promCfg.rule_files).toEqual(['/etc/prometheus/alerts.yml']);
    const job = promCfg.scrape_configs.find((j: any) => j.job_name === 'wgs-gateway');
    expect(job.static_configs[0].targets).toEqual(['gateway:3000']); // the compose service and its container port
    expect(gateway.ports[0]).toMatch(/:3000"?$/);
    expect(job.authorization.credentials_file).toBe('/run/secrets/metrics_token');

    // Grafana: the datasource is the compose Prometheus; the provider reads the mounted dashboard.
    const gmounts = Object.fromEntries((grafana.volumes as string[]).map((v) => v.split(':')).map(([s, t]) => [t, s]));
    const datasources = Bun.YAML.parse(await readFile(join(MONITORING, 'grafana/provisioning/datasources/prometheus.yml'), 'utf8')) as any;
    expect(datasources.datasources[0]).toMatchObject({ type: 'prometheus', url: 'http://prometheus:9090' });
    const providers = Bun.YAML.parse(await readFile(join(MONITORING, 'grafana/provisioning/dashboards/wgs.yml'), 'utf8')) as any;
    const path = providers.providers[0].options.path as string;
    expect(gmounts[join(path, 'wgs-dashboard.json')]).toBe('./monitoring/grafana/wgs-dashboard.json');
    expect(gmounts['/etc/grafana/provisioning/datasources']).toBe('./monitoring/grafana/provisioning/datasources');
    expect(gmounts['/etc/grafana/provisioning/dashboards']).toBe('./monitoring/grafana/provisioning/dashboards');
  });
});

/** Every PromQL expression of a dashboard (panels, rows' panels) with its panel's title; Grafana variables left in. */
function dashboardExprs(dash: any): { title: string; expr: string }[] {
  const out: { title: string; expr: string }[] = [];
  for (const p of dash.panels.flatMap((p: any) => [p, ...(p.panels ?? [])])) {
    for (const t of p.targets ?? []) out.push({ title: p.title, expr: t.expr });
  }
  for (const v of dash.templating.list) {
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    const m = typeof q === 'string' && q.match(/^label_values\((\w+),\s*\w+\)$/);
    if (m) out.push({ title: `variable ${v.name}`, expr: m[1]! });
  }
  return out;
}

describe('a real Prometheus scraping a real gateway', () => {
  let g: GatewayProcess;
  let prom: Prometheus;
  let receiver: Receiver;
  let key: string;
  let userId: number;
  const ids: number[] = [];
  const phones = ['4915100001701', '4915100001702'];
  let target: string;

  const send = async (id: number, text: string) => {
    const r = await api(g, 'POST', `/api/instances/${id}/send`, key, { to: '4915199990000', text });
    expect(r.status).toBe(200);
  };
  const inbound = async (id: number, text: string) => {
    const r = await api(g, 'POST', `/api/instances/${id}/sandbox/inbound`, key, { from: '4477000000', text });
    expect(r.status).toBe(200);
  };

  beforeAll(async () => {
    requirePrometheus();
    const db = await createTestDatabase();
    cleanup.push(() => db.drop());
    const dir = await mkdtemp(join(tmpdir(), 'wgs-e2e-prom-'));
    await chmod(dir, 0o755);
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    receiver = webhookReceiver(await freePort(), cleanup);

    g = await startGatewayProcess(
      { DATABASE_URL: db.url, ADMIN_API_SECRET: 's', DATA_DIR: dir, METRICS_TOKEN: TOKEN, WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' },
      cleanup,
    );
    const user = (await api(g, 'POST', '/admin/users', undefined, { email: 'prometheus@example.com' })).body;
    key = user.apiKey;
    userId = user.id;
    for (const phone of phones) {
      const created = await api(g, 'POST', '/api/instances', key, { provider: 'sandbox', phone });
      expect(created.status).toBe(200);
      ids.push(created.body.id);
    }
    const hook = await api(g, 'POST', `/api/instances/${ids[0]}/webhooks`, key, { url: receiver.url('/hook') });
    expect(hook.status).toBe(201);
    receiver.secrets.set('/hook', hook.body.secret);
    for (const id of ids) {
      expect((await api(g, 'POST', `/api/instances/${id}/sandbox/scan`, key)).status).toBe(200);
      await waitConnected(g, id, key);
    }
    for (const id of ids) await send(id, 'hello');
    await inbound(ids[0]!, 'hi there');
    await until('a webhook delivered', () => receiver.delivered.length > 0);

    target = new URL(g.url).host;
    prom = await startPrometheus([{ job: 'wgs-gateway', target, token: TOKEN }], cleanup, { ruleFiles: [join(MONITORING, 'alerts.yml')] });
  });

  test('Prometheus scrapes /metrics with the bearer token: the target is up', async () => {
    // Without the token the gateway refuses: a scrape that works proves the authorization setting is used.
    expect((await fetch(`${g.url}/metrics`)).status).toBe(401);
    await until('target healthy', async () => (await prom.targets()).find((t) => t.labels.job === 'wgs-gateway')?.health === 'up', 30_000);
    const up = await until('up == 1', async () => {
      const r = await prom.query('up{job="wgs-gateway"}');
      return r.length === 1 && r[0]!.value === 1 ? r : null;
    });
    expect(up[0]!.metric).toEqual({ __name__: 'up', job: 'wgs-gateway', instance: target });
    // The alert rules load and evaluate against the real series.
    await until('rules evaluated', async () => {
      const res = await fetch(`${prom.url}/api/v1/rules`).then((r) => r.json() as Promise<any>);
      const rules = res.data.groups.find((gr: any) => gr.name === 'wgs')?.rules ?? [];
      return rules.length === (await alertRules()).length && rules.every((r: any) => r.health === 'ok');
    });
  });

  test('series for instances, nodes, sends, webhook deliveries and HTTP requests', async () => {
    const connected = await until('two sandbox numbers connected', async () => {
      const r = await prom.query('sum(wgs_instances{provider="sandbox", node="local", status="running", state="connected"})');
      return r[0]?.value === 2 ? r : null;
    });
    expect(connected).toHaveLength(1);
    await until('node local up', async () => (await prom.query('wgs_node_up{node="local", engine="process", status="ready"}'))[0]?.value === 1);
    await until('node local capacity', async () => (await prom.scalar('wgs_node_capacity_cpu_cores{node="local"}')) > 0);
    await until('node local reserved memory', async () => (await prom.series('wgs_node_reserved_memory_bytes{node="local"}')).length === 1);
    await until('sends counted', async () => (await prom.scalar('wgs_sends_total{provider="sandbox", type="text", result="sent"}')) >= 2);
    await until('deliveries counted', async () => (await prom.scalar('wgs_webhook_deliveries_total{outcome="delivered"}')) >= 1);
    await until('delivery latency observed', async () => (await prom.scalar('wgs_webhook_delivery_latency_seconds_count')) >= 1);
    await until('HTTP requests counted', async () => (await prom.scalar('wgs_http_requests_total{method="POST", status_class="2xx"}')) >= 5);
    const routes = (await prom.series('wgs_http_requests_total')).map((s) => s.route);
    // Route templates, never a concrete path with an instance id in it.
    expect(routes.some((r) => r?.includes('/send'))).toBe(true);
    for (const r of routes) for (const id of ids) expect(r?.split('/')).not.toContain(String(id));
  });

  test('values move: more sends, deliveries and requests raise their counters', async () => {
    const sendsExpr = 'sum(wgs_sends_total{provider="sandbox", result="sent"})';
    const deliveredExpr = 'sum(wgs_webhook_deliveries_total{outcome="delivered"})';
    const httpExpr = 'sum(wgs_http_requests_total{method="POST", status_class="2xx"})';
    // Wait for the setup traffic to be scraped, so "before" is stable.
    const sendsBefore = await until('setup sends scraped', async () => {
      const v = await prom.scalar(sendsExpr);
      return v >= 2 ? v : null;
    });
    const deliveredBefore = await prom.scalar(deliveredExpr);
    const httpBefore = await prom.scalar(httpExpr);
    const deliveredAtReceiver = receiver.delivered.length;

    for (let n = 0; n < 3; n++) await send(ids[1]!, `more ${n}`);
    for (let n = 0; n < 2; n++) await inbound(ids[0]!, `more in ${n}`);
    await until('receiver got the new events', () => receiver.delivered.length >= deliveredAtReceiver + 2);

    await until(`${sendsExpr} >= ${sendsBefore + 3}`, async () => (await prom.scalar(sendsExpr)) >= sendsBefore + 3, 20_000);
    await until(`${deliveredExpr} >= ${deliveredBefore + 2}`, async () => (await prom.scalar(deliveredExpr)) >= deliveredBefore + 2, 20_000);
    await until(`${httpExpr} >= ${httpBefore + 5}`, async () => (await prom.scalar(httpExpr)) >= httpBefore + 5, 20_000);
    // A rate over the window sees the traffic, as the dashboard's panels do.
    await until('rate(wgs_sends_total) > 0', async () => (await prom.scalar('sum(rate(wgs_sends_total[1m]))')) > 0, 20_000);
  });

  test('no series carries a tenant or an instance id: neither in the exposition nor in Prometheus', async () => {
    const res = await fetch(`${g.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    const samples = exposition(await res.text());
    expect(samples.filter((s) => s.name.startsWith('wgs_')).length).toBeGreaterThan(20);
    // The per-instance worker series are opt-in (METRICS_PER_INSTANCE=true): off here.
    expect(samples.filter((s) => s.name.startsWith('wgs_instance_'))).toEqual([]);
    for (const s of samples) {
      for (const label of Object.keys(s.labels)) {
        if (FORBIDDEN_LABELS.includes(label)) throw new Error(`${s.name} has a label ${label}=${s.labels[label]} in the gateway's exposition`);
      }
    }

    // In Prometheus, `instance` is its own target label (the gateway's address) and `job` the scrape job.
    const series = await prom.series('{__name__=~"wgs_.+"}');
    expect(series.length).toBeGreaterThan(20);
    const secretish = [...ids.map(String), String(userId), ...phones, 'prometheus@example.com', key];
    for (const s of series) {
      expect(s.instance).toBe(target);
      expect(s.job).toBe('wgs-gateway');
      for (const [label, value] of Object.entries(s)) {
        if (label !== 'instance' && FORBIDDEN_LABELS.includes(label)) throw new Error(`${s.__name__} has a label ${label} in Prometheus`);
        if (['le', 'quantile', 'instance', '__name__'].includes(label)) continue;
        for (const v of secretish) {
          if (value === v || (v.length > 4 && value.includes(v))) throw new Error(`${s.__name__} has ${label}="${value}": an instance id, user or phone number`);
        }
      }
    }
  });

  test('every dashboard query parses in Prometheus, and the main panels show data', async () => {
    const dash = JSON.parse(await readFile(join(MONITORING, 'grafana', 'wgs-dashboard.json'), 'utf8'));
    const grafana = (expr: string) => expr.replaceAll('$__rate_interval', '1m').replaceAll('$node', '.*');
    const exprs = dashboardExprs(dash);
    for (const { title, expr } of exprs) {
      await prom.query(grafana(expr)).catch((err) => {
        throw new Error(`panel "${title}": ${(err as Error).message}`);
      });
    }
    for (const title of ['Instances by status', 'Instances by provider', 'CPU: capacity vs reserved', 'Deliveries by outcome', 'Sends by provider, type and result', 'Requests by route', 'Gateway memory (RSS)']) {
      const panel = exprs.filter((e) => e.title === title);
      expect(panel.length).toBeGreaterThan(0);
      await until(`panel "${title}" has data`, async () => (await Promise.all(panel.map((p) => prom.query(grafana(p.expr))))).some((r) => r.length > 0), 20_000);
    }
  });
});
