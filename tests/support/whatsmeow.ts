/**
 * A whatsmeow stack for end-to-end tests: the in-repo WhatsApp simulator
 * in-process, a test database and a real gateway process whose whatsmeow and
 * Baileys workers dial the simulator (WHATSMEOW_WS_URL, WHATSMEOW_ROOT_PUBLIC_KEY,
 * BAILEYS_WS_URL and, for media, WORKER_CA_FILE: the settings a user would
 * set), plus the
 * calls the tests share. Everything on loopback.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'bun:test';
import { startSimulator, type RunningSimulator } from '../../simulator/src/server';
import { buildImages } from './docker';
import { gatewayApi, startGatewayProcess, waitConnected, type GatewayProcess } from './gateway-process';
import { until } from './poll';
import { createTestDatabase, type TestDatabase } from './postgres';

export interface WhatsmeowStack {
  sim: RunningSimulator;
  db: TestDatabase;
  /** The gateway's environment (start another with it after a kill). */
  env: Record<string, string>;
  gatewayId: string;
  /** Every simulated phone made by `newNumber`. */
  phones: string[];
}

/** Starts the simulator and prepares a database and the gateway environment; `cleanup` undoes it all. */
export async function whatsmeowStack(cleanup: (() => Promise<unknown>)[], opts: { docker?: boolean; env?: Record<string, string> } = {}): Promise<WhatsmeowStack> {
  const sim = startSimulator();
  cleanup.push(() => sim.stop());
  const db = await createTestDatabase();
  cleanup.push(() => db.drop());
  const dir = await mkdtemp(join(tmpdir(), 'wgs-e2e-whatsmeow-'));
  await chmod(dir, 0o755);
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  const info = (await (await fetch(`${sim.url}/info`)).json()) as { wsUrl: string; rootPublicKey: string; mediaCaCertificate?: string };
  const gatewayId = `e2e-wm-${randomBytes(3).toString('hex')}`;
  const env: Record<string, string> = {
    DATABASE_URL: db.url,
    ADMIN_API_SECRET: 's',
    DATA_DIR: dir,
    GATEWAY_ID: gatewayId,
    // What `make run` gets from the simulator's GET /info.
    WHATSMEOW_WS_URL: info.wsUrl,
    WHATSMEOW_ROOT_PUBLIC_KEY: info.rootPublicKey,
    BAILEYS_WS_URL: info.wsUrl,
    ...(opts.docker && { WORKER_IMAGE_WHATSMEOW: buildImages().whatsmeow }),
    ...opts.env,
  };
  if (info.mediaCaCertificate) {
    // World-readable: workers run as other users in containers.
    const ca = join(dir, 'simulator-ca.pem');
    await writeFile(ca, info.mediaCaCertificate, { mode: 0o644 });
    env.WORKER_CA_FILE = ca;
  }
  return { sim, db, env, gatewayId, phones: [] };
}

/** A JSON call to the simulator's control API. */
export async function control(stack: WhatsmeowStack, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${stack.sim.url}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

let seq = 0;

/** A simulated WhatsApp account with its phone, and an instance for that number (whatsmeow unless `provider` says otherwise). */
export async function newNumber(
  stack: WhatsmeowStack,
  g: GatewayProcess,
  key: string,
  opts: { node?: string; provider?: string } = {},
): Promise<{ phone: string; id: number }> {
  const phone = `4915${String(process.pid % 100).padStart(2, '0')}${String(Date.now() % 1e5).padStart(5, '0')}${seq++ % 10}`;
  expect((await control(stack, 'POST', '/phones', { phone })).status).toBe(201);
  stack.phones.push(phone);
  const created = await gatewayApi(g, 'POST', '/api/instances', key, { provider: opts.provider ?? 'whatsmeow', phone, ...(opts.node && { node: opts.node }) });
  expect(created.status).toBe(200);
  return { phone, id: created.body.id };
}

/** The pending QR's text, once the worker reported one. */
export async function qrText(g: GatewayProcess, key: string, id: number): Promise<string> {
  return until(
    `a QR for instance ${id}`,
    async () => {
      const r = await gatewayApi(g, 'GET', `/api/instances/${id}/qr?format=json`, key);
      return r.status === 200 ? (r.body.qr as string) : undefined;
    },
    30_000,
    100,
  );
}

/** The phone scans the instance's QR; resolves with the linked device's JID once the instance is connected. */
export async function linkByQr(stack: WhatsmeowStack, g: GatewayProcess, key: string, phone: string, id: number): Promise<string> {
  const link = await control(stack, 'POST', `/phones/${phone}/link`, { qr: await qrText(g, key, id) });
  expect(link.status).toBe(200);
  await waitConnected(g, id, key, 30_000);
  return link.body.deviceJid;
}

/** The instance's events of one type after event id `after`, oldest first. */
export async function eventsOf(stack: WhatsmeowStack, id: number, type: string, after = 0): Promise<{ id: number; data: any }[]> {
  const rows = await stack.db.database.sql`select id, data from events where instance_id = ${id} and type = ${type} and id > ${after} order by id`;
  return rows.map((r) => ({ id: Number(r.id), data: r.data }));
}

export async function lastEventId(stack: WhatsmeowStack, id: number): Promise<number> {
  const [row] = await stack.db.database.sql`select coalesce(max(id), 0)::bigint as id from events where instance_id = ${id}`;
  return Number(row!.id);
}

/** Starts the stack's gateway and makes a user; returns both. */
export async function startStackGateway(stack: WhatsmeowStack, cleanup: (() => Promise<unknown>)[], email: string): Promise<{ g: GatewayProcess; key: string }> {
  const g = await startGatewayProcess(stack.env, cleanup);
  const key = (await gatewayApi(g, 'POST', '/admin/users', undefined, { email })).body.apiKey as string;
  return { g, key };
}
