/**
 * A real Docker daemon for tests. `dockerOrSkip()` says whether Docker tests
 * run: with REQUIRE_DOCKER=1 (CI) a missing daemon is an error, on a laptop
 * without Docker the tests are skipped with the reason printed.
 * `bunBaseImage()` builds the Bun base image without a registry
 * (shared/MACHINE.md): the bun binary, the libraries `ldd` lists and the
 * loader, imported as `wgs-bun-base:local` with bun as entrypoint.
 */
import Dockerode from 'dockerode';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

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

export async function bunBaseImage(): Promise<string> {
  const found = await docker.getImage(BUN_BASE_IMAGE).inspect().then(
    () => true,
    () => false,
  );
  if (found) return BUN_BASE_IMAGE;
  const root = await mkdtemp(join(tmpdir(), 'wgs-rootfs-'));
  try {
    const bun = process.execPath;
    const ldd = Bun.spawnSync(['ldd', bun]).stdout.toString();
    const files = [...ldd.matchAll(/(\/\S+)/g)].map((m) => m[1]!);
    await mkdir(join(root, 'usr/local/bin'), { recursive: true });
    await cp(bun, join(root, 'usr/local/bin/bun'));
    for (const file of files) {
      await mkdir(join(root, dirname(file)), { recursive: true });
      await cp(file, join(root, file), { dereference: true });
    }
    await mkdir(join(root, 'tmp'), { recursive: true });
    const tar = Bun.spawnSync(['tar', '-C', root, '-c', '.']);
    if (tar.exitCode !== 0) throw new Error(`tar failed: ${tar.stderr}`);
    const imported = Bun.spawnSync(['/usr/bin/docker', 'import', '-c', 'ENTRYPOINT ["/usr/local/bin/bun"]', '-', BUN_BASE_IMAGE], { stdin: tar.stdout });
    if (imported.exitCode !== 0) throw new Error(`docker import failed: ${imported.stderr}`);
    return BUN_BASE_IMAGE;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** Removes every container with this label (test cleanup). */
export async function removeLabelled(label: string): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: [label] } })) {
    await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
  }
}
