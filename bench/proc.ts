/** What benchmarks read from /proc: process trees and their memory. */
import { readdir, readFile } from 'node:fs/promises';

/** Every descendant pid of `pid` (children of every thread). */
export async function descendants(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const task of await readdir(`/proc/${pid}/task`).catch(() => [])) {
    const kids = (await readFile(`/proc/${pid}/task/${task}/children`, 'utf8').catch(() => '')).trim().split(/\s+/).filter(Boolean).map(Number);
    for (const kid of kids) out.push(kid, ...(await descendants(kid)));
  }
  return out;
}
