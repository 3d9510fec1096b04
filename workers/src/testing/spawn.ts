/**
 * Test support: starts a worker program with only PATH, HOME and the given
 * environment (as an engine would), its output collected, and registers a
 * cleanup that kills it if it still runs when the test ends.
 */
import { join } from 'node:path';
import type { Subprocess } from 'bun';

/** The repository root: workers are started from there. */
export const REPO = join(import.meta.dir, '..', '..', '..');

export interface SpawnedProgram {
  proc: Subprocess<'ignore', 'pipe', 'pipe'>;
  /** Everything written to stdout, once the program has exited. */
  stdout: Promise<string>;
  stderr: Promise<string>;
}

export function spawnProgram(argv: string[], env: Record<string, string>, cleanups: (() => unknown)[]): SpawnedProgram {
  const proc = Bun.spawn(argv, {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  cleanups.push(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  return { proc, stdout: new Response(proc.stdout).text(), stderr: new Response(proc.stderr).text() };
}
