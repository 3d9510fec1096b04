import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** Whether a process with this pid exists (signal 0 checks without sending). A zombie counts: see processState. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * What a pid is now: `alive` (running or sleeping), `zombie` (exited, not yet
 * reaped by its parent: it holds no memory, files or locks, but signal 0
 * still finds it), or `gone`.
 */
export function processState(pid: number): 'alive' | 'zombie' | 'gone' {
  if (!isAlive(pid)) return 'gone';
  const fields = statFields(pid);
  // No /proc entry (another OS, or it vanished between the two checks).
  if (!fields) return isAlive(pid) ? 'alive' : 'gone';
  return fields[0] === 'Z' || fields[0] === 'X' ? 'zombie' : 'alive';
}

/**
 * The fields of /proc/PID/stat after the command ("pid (comm) S ppid ...":
 * the command may hold spaces and ')', so they start after the last ')'):
 * [0] is the state, [1] the parent pid, [11] and [12] user and system time.
 * Undefined once the process is gone or on a system without /proc.
 */
export function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The parent pid, or undefined once the process is gone. */
export function parentPid(pid: number): number | undefined {
  const fields = statFields(pid);
  return fields ? Number(fields[1]) : undefined;
}

/**
 * Live processes whose working directory is `dir` (a real path). A Postgres
 * server and every backend it forked run in its data directory, so this finds
 * them all, orphaned backends of a killed postmaster included. Processes whose
 * cwd cannot be read (another user's, without root) are not seen.
 */
export function processesInDirectory(dir: string): number[] {
  const found: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return found;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      if (readlinkSync(`/proc/${pid}/cwd`) === dir && processState(pid) === 'alive') found.push(pid);
    } catch {
      // gone meanwhile, a zombie (no cwd) or not ours to read
    }
  }
  return found;
}
