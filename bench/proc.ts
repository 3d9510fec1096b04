/** What benchmarks read from /proc: process trees and their memory. */
import { readdir, readFile } from 'node:fs/promises';
import { pct } from './table';
import { parentPid as parentOf, processState, statFields } from '../gateway/src/lib/process';

/** Every descendant pid of `pid` (children of every thread). */
export async function descendants(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const task of await readdir(`/proc/${pid}/task`).catch(() => [])) {
    const kids = (await readFile(`/proc/${pid}/task/${task}/children`, 'utf8').catch(() => '')).trim().split(/\s+/).filter(Boolean).map(Number);
    for (const kid of kids) out.push(kid, ...(await descendants(kid)));
  }
  return out;
}

/** Whether a process still runs (a zombie does not). */
export async function alive(pid: number): Promise<boolean> {
  return processState(pid) === 'alive';
}

/** Rss and Pss in kB. */
export type Mem = { rss: number; pss: number };

/** Rss and Pss in kB from /proc/PID/smaps_rollup. */
export async function memory(pid: number): Promise<Mem> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name: string) => Number(text.match(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN);
  return { rss: field('Rss'), pss: field('Pss') };
}

/** The parent pid; throws once the process is gone. */
export async function parentPid(pid: number): Promise<number> {
  const ppid = parentOf(pid);
  if (ppid === undefined) throw new Error(`process ${pid} is gone`);
  return ppid;
}

/** The process's command name (at most 15 characters), '' once it is gone. */
export const comm = async (pid: number) => (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();

/** How many processes on the whole machine run a program (they share its pages, which lowers each one's PSS). */
export async function processesOf(program: string): Promise<number> {
  let n = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv0 = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0')[0]!;
    if (argv0.split('/').pop() === program) n++;
  }
  return n;
}

export const MiB = (kB: number) => `${(kB / 1024).toFixed(1)} MiB`;
export const sum = (...ms: Mem[]): Mem => ({ rss: ms.reduce((a, m) => a + m.rss, 0), pss: ms.reduce((a, m) => a + m.pss, 0) });

/** `RSS / PSS` of one process, or the median and max over several. */
export const memStats = (ms: Mem[]) =>
  ms.length === 1
    ? `${MiB(ms[0]!.rss)} / ${MiB(ms[0]!.pss)}`
    : `median ${MiB(pct(ms.map((m) => m.rss), 0.5))} / ${MiB(pct(ms.map((m) => m.pss), 0.5))}, max ${MiB(Math.max(...ms.map((m) => m.rss)))} / ${MiB(Math.max(...ms.map((m) => m.pss)))}`;

/** CPU time (user + system) a process has used, in seconds, from /proc/PID/stat (clock ticks of 1/100 s on Linux). */
export async function cpuSeconds(pid: number): Promise<number> {
  const fields = statFields(pid);
  if (!fields) throw new Error(`process ${pid} is gone`);
  // After the command: state is field 3 of the line, utime 14 and stime 15.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU ticks (1/100 s) used by `root` and its descendants, reaped children included (utime, stime, cutime, cstime). */
async function treeTicks(root: number): Promise<number> {
  let ticks = 0;
  for (const pid of [root, ...(await descendants(root))]) {
    const f = statFields(pid);
    if (!f) continue;
    ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  }
  return ticks;
}

export interface CpuSample {
  /** Busy and total ticks of the machine (all cores), from /proc/stat. */
  busy: number;
  total: number;
  /** Ticks used by this process and its descendants. */
  ours: number;
}

/** The machine's CPU ticks so far and this process tree's (both in 1/100 s). */
export async function cpuSample(): Promise<CpuSample> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
  const busy = user! + nice! + system! + irq! + softirq! + steal!;
  return { busy, total: busy + idle! + iowait!, ours: await treeTicks(process.pid) };
}

/** The share of all cores busy between two samples, and the share that processes outside this tree used (both of the whole machine). */
export function cpuShare(a: CpuSample, b: CpuSample): string {
  const total = Math.max(1, b.total - a.total);
  const busy = (100 * (b.busy - a.busy)) / total;
  const others = Math.max(0, (100 * (b.busy - a.busy - (b.ours - a.ours))) / total);
  return `machine CPU ${busy.toFixed(0)} % busy (other processes ${others.toFixed(0)} %)`;
}
