import { expect, test } from 'bun:test';
import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processesInDirectory, processState } from './process';
import { until } from '../../../tests/support/poll';

test('a zombie is told apart from a live process and from a gone one', async () => {
  // sh prints the pid of a short child, then becomes `sleep 5`, which never reaps it: a zombie.
  const parent = Bun.spawn(['sh', '-c', 'sleep 0.05 & echo $!; exec sleep 5'], { stdout: 'pipe' });
  try {
    const { value } = await parent.stdout.getReader().read(); // the first line; the pipe stays open
    const zombie = Number(new TextDecoder().decode(value).split('\n')[0]);
    expect(zombie).toBeGreaterThan(0);
    expect(processState(parent.pid)).toBe('alive');
    await until('the child to become a zombie', () => processState(zombie) === 'zombie', 5000);
    parent.kill('SIGKILL');
    await parent.exited;
    expect(processState(parent.pid)).toBe('gone'); // reaped by us
  } finally {
    parent.kill('SIGKILL');
  }
});

test('processes working in a directory are found; others are not', async () => {
  const dir = await realpath(await mkdtemp(join(tmpdir(), 'wgs-cwd-')));
  const inside = Bun.spawn(['sleep', '5'], { cwd: dir });
  const outside = Bun.spawn(['sleep', '5'], { cwd: tmpdir() });
  try {
    await until('the process seen in its directory', () => processesInDirectory(dir).includes(inside.pid), 5000);
    expect(processesInDirectory(dir)).not.toContain(outside.pid);
    inside.kill('SIGKILL');
    await inside.exited;
    expect(processesInDirectory(dir)).toEqual([]);
  } finally {
    inside.kill('SIGKILL');
    outside.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});
