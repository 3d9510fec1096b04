/**
 * deploy/swarm: both stack files rendered by the Docker CLI itself
 * (`docker stack config`, read-only: it talks to no daemon) and the result
 * checked for what an operator relies on: two gateway replicas on managers
 * with start-first updates, Traefik routing the API and the worker socket,
 * no worker port published anywhere (and none at all behind the tunnel),
 * every secret a Docker secret, Postgres pinned with its volume, and the two
 * files' Postgres and gateway services identical. The gateway entrypoint that
 * turns the secrets into variables runs here too, on Bun like in the image.
 *
 * Debian 12's docker.io (20.10.24) has no `docker stack config` (newer CLIs,
 * such as 28.x, do). Without such a CLI the files are parsed and interpolated
 * here instead (the same assertions, without the CLI's schema check), with a
 * warning saying so. With REQUIRE_DOCKER=1 a missing docker CLI fails the test.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig } from '../../gateway/src/config/config';
import { WORKER_WS_PATH } from '../../workers/protocol/frames';

const ROOT = resolve(import.meta.dir, '..', '..');
const SWARM = join(ROOT, 'deploy', 'swarm');
const ENV = { WGS_HOST: 'wgs.example.com', DOCKER_GID: '988' };
/** Variables whose value is a secret: never inline in a stack, only as NAME_FILE. */
const SECRET_VARS = ['DATABASE_URL', 'ADMIN_API_SECRET', 'WEBHOOK_SECRET_KEY', 'METRICS_TOKEN', 'BILLING_WEBHOOK_SECRET', 'POSTGRES_PASSWORD', 'TUNNEL_TOKEN'];

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
});

/** The first docker CLI that has `stack config`, or why there is none. */
function findStackConfig(): { bin: string } | { reason: string; anyDocker: boolean } {
  const candidates = [...new Set([Bun.which('docker'), '/usr/local/bin/docker', '/usr/bin/docker'].filter((p): p is string => !!p && existsSync(p)))];
  for (const bin of candidates) {
    const help = Bun.spawnSync([bin, 'stack', 'config', '--help'], { env: { PATH: process.env.PATH ?? '' } });
    if (help.exitCode === 0 && help.stdout.toString().includes('--compose-file')) return { bin };
  }
  if (candidates.length === 0) return { reason: 'no docker CLI on PATH, /usr/local/bin or /usr/bin', anyDocker: false };
  return { reason: `no docker CLI with \`stack config\` (${candidates.join(', ')}; Debian 12's 20.10 has none)`, anyDocker: true };
}

const found = findStackConfig();
if ('reason' in found) {
  if (!found.anyDocker && process.env.REQUIRE_DOCKER === '1') {
    throw new Error(`REQUIRE_DOCKER=1 but ${found.reason} (.ci/run installs Debian's docker.io)`);
  }
  console.warn(`deploy/swarm: ${found.reason}; checking the stack files parsed and interpolated by this test instead of \`docker stack config\``);
}

/** ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err} and $$, as the CLI interpolates (fallback only). */
function interpolate(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}/g, (whole, name?: string, colon?: string, op?: string, arg?: string) => {
    if (whole === '$$') return '$';
    const value = env[name!];
    const unset = value === undefined || (colon === ':' && value === '');
    if (op === '-') return unset ? arg! : value!;
    if (op === '?' && unset) throw new Error(`required variable ${name} is missing a value: ${arg}`);
    if (value === undefined) throw new Error(`variable ${name} is not set`);
    return value;
  });
}

/** Rendered stack (docker stack config) as an object; throws with the CLI's message when it refuses the file. */
async function render(file: string, env: Record<string, string> = ENV): Promise<any> {
  const path = join(SWARM, file);
  if ('bin' in found) {
    const run = Bun.spawnSync([found.bin, 'stack', 'config', '-c', path], { env: { PATH: process.env.PATH ?? '', ...env } });
    if (run.exitCode !== 0) throw new Error(`docker stack config -c ${file}: ${run.stderr.toString().trim() || run.stdout.toString().trim()}`);
    return Bun.YAML.parse(run.stdout.toString());
  }
  return Bun.YAML.parse(interpolate(await readFile(path, 'utf8'), env));
}

const labelsOf = (service: any): Record<string, string> => {
  const labels = service.deploy?.labels ?? {};
  return Array.isArray(labels) ? Object.fromEntries(labels.map((l: string) => l.split(/=(.*)/s, 2) as [string, string])) : labels;
};
const envOf = (service: any): Record<string, string> => {
  const env = service.environment ?? {};
  return Array.isArray(env) ? Object.fromEntries(env.map((l: string) => l.split(/=(.*)/s, 2) as [string, string])) : env;
};
const secretNames = (service: any): string[] => (service.secrets ?? []).map((s: any) => (typeof s === 'string' ? s : s.source));
/** Host ports a service publishes (the rendered stack uses the long syntax only). */
const publishedPorts = (service: any): number[] => (service.ports ?? []).map((p: any) => Number(p.published));
/** Traefik's static flags as a map (--entryPoints.web.address=:80 → entryPoints.web.address: ':80'). */
const traefikFlags = (service: any): Map<string, string> =>
  new Map((service.command as string[]).map((arg) => arg.replace(/^--/, '').split(/=(.*)/s, 2) as [string, string]));

/** Assertions both variants share. */
function checkCommon(stack: any, file: string): void {
  const { postgres, gateway, traefik } = stack.services;
  expect(postgres && gateway && traefik, `${file}: postgres, gateway and traefik`).toBeTruthy();

  // Two gateway replicas, on managers (the Swarm API), spread, replaced start-first, healthy before traffic.
  expect(gateway.deploy.replicas).toBe(2);
  expect(gateway.deploy.placement.constraints).toContain('node.role == manager');
  expect(gateway.deploy.update_config.order).toBe('start-first');
  expect(gateway.healthcheck.test.join(' ')).toContain('/readyz');
  expect(gateway.deploy.resources.limits.memory).toBeTruthy();
  expect(gateway.deploy.resources.limits.cpus).toBeTruthy();
  expect(gateway.volumes.some((v: any) => v.source === '/var/run/docker.sock' && v.target === '/var/run/docker.sock')).toBe(true);
  const env = envOf(gateway);
  // Swarm's task template, filled per task by the daemon (docker service create --env templates).
  expect(env.GATEWAY_REPLICA_ID).toContain('{{.Task.Slot}}');
  expect(env.WORKER_GATEWAY_URL).toBe('ws://traefik:8081');

  // Traefik v3 with its Swarm provider, on managers; routers for the API and the worker path.
  expect(traefik.image).toMatch(/^traefik:v3/);
  expect(traefik.deploy.placement.constraints).toContain('node.role == manager');
  expect(traefik.healthcheck.test).toEqual(['CMD', 'traefik', 'healthcheck', '--ping']);
  const flags = traefikFlags(traefik);
  expect(flags.get('providers.swarm.endpoint')).toBe('unix:///var/run/docker.sock');
  expect(flags.get('providers.swarm.exposedByDefault')).toBe('false');
  expect(flags.get('providers.swarm.network')).toBe(stack.networks.wgs.name);
  expect(flags.get('entryPoints.workers.address')).toBe(':8081');
  expect(flags.get('entryPoints.workers.transport.respondingTimeouts.readTimeout')).toBe('0');

  const labels = labelsOf(gateway);
  expect(labels['traefik.enable']).toBe('true');
  expect(labels['traefik.http.services.wgs-gateway.loadbalancer.server.port']).toBe('3000');
  const routers = new Set(Object.keys(labels).flatMap((k) => k.match(/^traefik\.http\.routers\.([^.]+)\./)?.[1] ?? []));
  for (const router of routers) {
    // Every router sits on an entrypoint Traefik defines and sends to the gateway service.
    for (const ep of labels[`traefik.http.routers.${router}.entrypoints`]!.split(',')) expect(flags.has(`entryPoints.${ep}.address`)).toBe(true);
    expect(labels[`traefik.http.routers.${router}.service`]).toBe('wgs-gateway');
  }
  const api = labels['traefik.http.routers.wgs-api.rule']!;
  expect(api).toContain('Host(`wgs.example.com`)');
  expect(api).toContain('!PathPrefix(`/internal/`)'); // worker sockets are never on the public entrypoints
  const workers = labels['traefik.http.routers.wgs-workers.rule']!.match(/^PathPrefix\(`([^`]+)`\)$/)?.[1];
  expect(workers && WORKER_WS_PATH.startsWith(workers)).toBe(true);
  expect(labels['traefik.http.routers.wgs-workers.entrypoints']).toBe('workers');
  expect(WORKER_GATEWAY_PORT(env.WORKER_GATEWAY_URL!)).toBe(flags.get('entryPoints.workers.address')!.slice(1));

  // No worker port (the workers entrypoint, the gateway's own) is published by anything.
  for (const [name, service] of Object.entries<any>(stack.services)) {
    for (const port of publishedPorts(service)) expect([80, 443], `${file}: ${name} publishes ${port}`).toContain(port);
  }
  expect(publishedPorts(gateway)).toEqual([]);

  // Secrets: only as Docker secrets, declared external (created beforehand), and every *_FILE points at one the service mounts.
  for (const [name, service] of Object.entries<any>(stack.services)) {
    const serviceEnv = envOf(service);
    for (const variable of SECRET_VARS) expect(serviceEnv[variable], `${file}: ${name} has ${variable} inline`).toBeUndefined();
    for (const [key, value] of Object.entries(serviceEnv)) {
      if (!key.endsWith('_FILE')) continue;
      const secret = value.match(/^\/run\/secrets\/(.+)$/)?.[1];
      expect(secret && secretNames(service).includes(secret), `${file}: ${name} ${key}=${value}`).toBe(true);
    }
    for (const secret of secretNames(service)) expect(stack.secrets[secret]?.external, `${file}: secret ${secret}`).toBe(true);
  }
  expect(secretNames(gateway).sort()).toEqual(['wgs_admin_api_secret', 'wgs_database_url', 'wgs_metrics_token', 'wgs_webhook_secret_key']);

  // Postgres: one task, pinned to the labelled node, its data on a named volume, stopped before a new one starts.
  expect(postgres.deploy.replicas).toBe(1);
  expect(postgres.deploy.placement.constraints).toEqual(['node.labels.wgs.postgres == true']);
  expect(postgres.deploy.update_config.order).toBe('stop-first');
  const data = postgres.volumes.find((v: any) => v.target === '/var/lib/postgresql/data');
  expect(data?.type).toBe('volume');
  expect(stack.volumes).toHaveProperty(data.source);
  expect(envOf(postgres).POSTGRES_PASSWORD_FILE).toBe('/run/secrets/wgs_postgres_password');

  // The overlay every worker service joins: attachable, encrypted between hosts.
  expect(stack.networks.wgs).toMatchObject({ name: 'wgs', driver: 'overlay', attachable: true, driver_opts: { encrypted: 'true' } });
}

function WORKER_GATEWAY_PORT(url: string): string {
  return new URL(url.replace(/^ws/, 'http')).port;
}

describe('deploy/swarm stack files', () => {
  test('stack.yaml: Postgres, two gateways and Traefik on 80/443 with TLS from secrets; the worker entrypoint unpublished', async () => {
    const stack = await render('stack.yaml');
    checkCommon(stack, 'stack.yaml');
    const { traefik, gateway } = stack.services;
    expect(Object.keys(stack.services).sort()).toEqual(['gateway', 'postgres', 'traefik']);
    expect(publishedPorts(traefik).sort()).toEqual([443, 80]);
    expect(traefik.ports.every((p: any) => p.mode === 'host')).toBe(true);
    const flags = traefikFlags(traefik);
    expect(flags.get('entryPoints.web.http.redirections.entryPoint.to')).toBe('websecure');
    expect(flags.get('entryPoints.websecure.transport.respondingTimeouts.readTimeout')).toBe('0');
    expect(secretNames(traefik).sort()).toEqual(['wgs_tls_cert', 'wgs_tls_key']);
    const labels = labelsOf(gateway);
    expect(labels['traefik.http.routers.wgs-api.entrypoints']).toBe('websecure');
    expect(labels['traefik.http.routers.wgs-api.tls']).toBe('true');
    // The file provider's certificate paths are the mounted secrets.
    const tls = Bun.YAML.parse(await readFile(join(SWARM, 'traefik-tls.yaml'), 'utf8')) as any;
    expect(tls.tls.certificates[0]).toEqual({ certFile: '/run/secrets/wgs_tls_cert', keyFile: '/run/secrets/wgs_tls_key' });
    const config = traefik.configs.find((c: any) => c.target === flags.get('providers.file.filename'));
    expect(stack.configs[config.source].file).toEndWith('traefik-tls.yaml');
  });

  test('stack.cloudflare.yaml: cloudflared with its token from a secret, no port published anywhere, the same Postgres and gateways', async () => {
    const stack = await render('stack.cloudflare.yaml');
    checkCommon(stack, 'stack.cloudflare.yaml');
    expect(Object.keys(stack.services).sort()).toEqual(['cloudflared', 'gateway', 'postgres', 'traefik']);
    for (const [name, service] of Object.entries<any>(stack.services)) expect(publishedPorts(service), `${name} publishes`).toEqual([]);
    const { cloudflared, traefik, gateway } = stack.services;
    expect(cloudflared.command).toEqual(['tunnel', '--no-autoupdate', 'run']);
    expect(envOf(cloudflared).TUNNEL_TOKEN_FILE).toBe('/run/secrets/wgs_tunnel_token');
    expect(cloudflared.deploy.replicas).toBeGreaterThanOrEqual(2);
    // The tunnel's origin is Traefik's plain :80, routed to the gateways like :443 in stack.yaml.
    const flags = traefikFlags(traefik);
    expect(flags.get('entryPoints.web.address')).toBe(':80');
    expect(flags.has('entryPoints.web.http.redirections.entryPoint.to')).toBe(false);
    expect(flags.get('entryPoints.web.transport.respondingTimeouts.readTimeout')).toBe('0');
    expect(labelsOf(gateway)['traefik.http.routers.wgs-api-http.entrypoints']).toBe('web');

    const direct = await render('stack.yaml');
    expect(stack.services.gateway).toEqual(direct.services.gateway);
    expect(stack.services.postgres).toEqual(direct.services.postgres);
    expect(stack.networks).toEqual(direct.networks);
  });

  test('a stack without WGS_HOST or DOCKER_GID is refused, naming the variable', async () => {
    for (const file of ['stack.yaml', 'stack.cloudflare.yaml']) {
      await expect(render(file, { DOCKER_GID: '988' })).rejects.toThrow(/WGS_HOST/);
      await expect(render(file, { WGS_HOST: 'wgs.example.com' })).rejects.toThrow(/DOCKER_GID/);
    }
  });

  test("the gateway's rendered environment, with its secrets read from files, is a configuration the gateway accepts", async () => {
    const { gateway } = (await render('stack.yaml')).services;
    const env = envOf(gateway);
    const values: Record<string, string> = {
      DATABASE_URL: 'postgres://wgs:pw@postgres:5432/wgs',
      ADMIN_API_SECRET: 'admin-secret-0123456789',
      WEBHOOK_SECRET_KEY: Buffer.alloc(32, 7).toString('base64'),
      METRICS_TOKEN: 'metrics-token-0123456789',
    };
    // What Swarm fills in per task: slot 2, a task id as the daemon makes them (25 lowercase alphanumerics).
    const task = { '{{.Task.Slot}}': '2', '{{.Task.ID}}': 'x7k2m9q4w1e8r5t3y6u0i2o4p' };
    const resolved: Record<string, string> = {};
    for (const [key, value] of Object.entries(env)) {
      if (key.endsWith('_FILE')) resolved[key.slice(0, -5)] = values[key.slice(0, -5)]!;
      else resolved[key] = value.replace(/\{\{\.Task\.(Slot|ID)\}\}/g, (t) => task[t as keyof typeof task]);
    }
    const config = loadConfig(resolved);
    expect((config as { replicaId?: string }).replicaId).toBe('gateway-2-x7k2m9q4w1e8r5t3y6u0i2o4p');
    expect(config.host).toBe('0.0.0.0');
    expect(config.port).toBe(3000);
    expect(config.workerGatewayUrl).toBe('ws://traefik:8081');
    expect(config.metrics.token).toBe(values.METRICS_TOKEN);
  });
});

describe('deploy/swarm/gateway-entrypoint.mjs', () => {
  async function runEntrypoint(env: Record<string, string>): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const proc = Bun.spawn([process.execPath, join(SWARM, 'gateway-entrypoint.mjs')], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdout: 'pipe',
      stderr: 'pipe',
    });
    const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { exitCode, stdout, stderr };
  }

  test('reads each *_FILE secret into its variable, removes the *_FILE, then starts the gateway module in the same process', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wgs-entrypoint-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    // Stands in for /app/gateway/main.js: prints what the gateway would read.
    const main = join(dir, 'main.mjs');
    await writeFile(
      main,
      "const keys = ['DATABASE_URL', 'DATABASE_URL_FILE', 'ADMIN_API_SECRET', 'ADMIN_API_SECRET_FILE', 'METRICS_TOKEN', 'WORKER_CA_FILE'];\n" +
        'process.stdout.write(JSON.stringify(Object.fromEntries(keys.map((k) => [k, process.env[k] ?? null]))));\n',
    );
    await writeFile(join(dir, 'db'), 'postgres://wgs:secret@postgres:5432/wgs\n');
    await writeFile(join(dir, 'admin'), '  wgsadm_abc\n');
    const ok = await runEntrypoint({
      WGS_GATEWAY_MAIN: main,
      DATABASE_URL_FILE: join(dir, 'db'),
      ADMIN_API_SECRET_FILE: join(dir, 'admin'),
      WORKER_CA_FILE: '/etc/ssl/ca.pem',
    });
    expect(ok.stderr).toBe('');
    expect(ok.exitCode).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({
      DATABASE_URL: 'postgres://wgs:secret@postgres:5432/wgs',
      DATABASE_URL_FILE: null,
      ADMIN_API_SECRET: 'wgsadm_abc',
      ADMIN_API_SECRET_FILE: null,
      METRICS_TOKEN: null,
      // Not a secret of the list: a real setting whose name happens to end in _FILE.
      WORKER_CA_FILE: '/etc/ssl/ca.pem',
    });

    await writeFile(join(dir, 'empty'), '\n');
    const empty = await runEntrypoint({ WGS_GATEWAY_MAIN: main, ADMIN_API_SECRET_FILE: join(dir, 'empty') });
    expect(empty.exitCode).toBe(1);
    expect(empty.stderr).toContain('ADMIN_API_SECRET_FILE');
    expect(empty.stdout).toBe('');

    const missing = await runEntrypoint({ WGS_GATEWAY_MAIN: main, DATABASE_URL_FILE: join(dir, 'absent') });
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain(`cannot read DATABASE_URL_FILE (${join(dir, 'absent')})`);

    const both = await runEntrypoint({ WGS_GATEWAY_MAIN: main, METRICS_TOKEN: 'x'.repeat(16), METRICS_TOKEN_FILE: join(dir, 'db') });
    expect(both.exitCode).toBe(1);
    expect(both.stderr).toContain('both METRICS_TOKEN and METRICS_TOKEN_FILE');
  });
});
