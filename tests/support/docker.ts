/**
 * A real Docker daemon for tests. `dockerOrSkip()` says whether Docker tests
 * run: with REQUIRE_DOCKER=1 (CI) a missing daemon is an error, on a laptop
 * without Docker the tests are skipped with the reason printed.
 * `buildImages()` builds the images without a registry (shared/MACHINE.md):
 * a Bun base from the bun binary, the libraries `ldd` lists and the loader,
 * and the worker image on it.
 */
import type { WorkerImages } from '../../gateway/src/engines/docker';
import Dockerode from 'dockerode';
import { join } from 'node:path';

export const BUN_BASE_IMAGE = 'wgs-bun-base:local';
export const docker = new Dockerode({ socketPath: '/var/run/docker.sock' });

export async function dockerAvailable(): Promise<boolean> {
  const ok = await docker.ping().then(
    () => true,
    () => false,
  );
  if (!ok && process.env.REQUIRE_DOCKER === '1') {
    throw new Error('REQUIRE_DOCKER=1 but no Docker daemon answers on /var/run/docker.sock (.ci/run installs and starts one)');
  }
  if (!ok) console.warn('Docker tests skipped: no Docker daemon on /var/run/docker.sock (set REQUIRE_DOCKER=1 to make this an error)');
  return ok;
}

/**
 * Builds the base and worker images with `scripts/build-images` (the same
 * path as `make images`); returns the worker image. The base is imported once.
 */
export function buildImages(): WorkerImages & { gateway: string } {
  const root = join(import.meta.dir, '..', '..');
  const run = Bun.spawnSync(['bash', 'scripts/build-images'], { cwd: root });
  if (run.exitCode !== 0) throw new Error(`scripts/build-images failed: ${run.stderr.toString()}`);
  // One `family=image` line per image.
  const built = Object.fromEntries(run.stdout.toString().trim().split('\n').map((line) => line.split('=', 2) as [string, string]));
  if (!built.typescript || !built.gateway) throw new Error(`scripts/build-images printed no image names: ${run.stdout}`);
  return {
    typescript: built.typescript,
    gateway: built.gateway,
    whatsmeow: built.whatsmeow ?? 'wgs-worker-whatsmeow:local',
    node: built.node ?? 'wgs-worker-node:local',
  };
}

/** Removes every container with this label (test cleanup). */
export async function removeLabelled(label: string): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: [label] } })) {
    await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
  }
}

/**
 * Restarts the local Docker daemon the way a package upgrade or `systemctl
 * restart docker` does: SIGTERM (it stops the containers it runs), then the
 * same command line again, detached. Only where the daemon belongs to the
 * test run (CI sets WGS_TEST_RESTART_DOCKERD=1): never someone's own Docker.
 */
export async function restartDockerd(): Promise<void> {
  const { readdir, readFile } = await import('node:fs/promises');
  let pid = 0;
  let argv: string[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const comm = (await readFile(`/proc/${entry}/comm`, 'utf8').catch(() => '')).trim();
    if (comm !== 'dockerd') continue;
    pid = Number(entry);
    argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0').filter(Boolean);
  }
  if (!pid) throw new Error('no dockerd process to restart');
  process.kill(pid, 'SIGTERM');
  const gone = Date.now() + 60_000;
  while ((await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim() === 'dockerd') {
    if (Date.now() > gone) throw new Error(`dockerd ${pid} did not stop within 60 s`);
    await Bun.sleep(50);
  }
  // setsid -f: a new session, not a child of the test runner (which kills its leftover children).
  const started = Bun.spawnSync(['sh', '-c', 'setsid -f "$@" >>/tmp/wgs-test-dockerd.log 2>&1', 'sh', ...argv]);
  if (started.exitCode !== 0) throw new Error(`could not start ${argv.join(' ')} again: ${started.stderr.toString()}`);
  const ready = Date.now() + 60_000;
  while (!(await docker.ping().then(() => true, () => false))) {
    if (Date.now() > ready) throw new Error('dockerd did not answer within 60 s of its restart (see /tmp/wgs-test-dockerd.log)');
    await Bun.sleep(50);
  }
}

/** True once the instance recorded an `instance.status` whose reason matches the SQL LIKE pattern, at or after `since` (less a second). */
export async function statusReasonSince(sql: import('postgres').Sql, instanceId: number, like: string, since: number): Promise<boolean> {
  const rows = await sql`select 1 from events where instance_id = ${instanceId} and type = 'instance.status'
    and data->>'statusReason' like ${like} and created_at >= ${new Date(since - 1000).toISOString()}::timestamptz`;
  return rows.length > 0;
}
