import { cpus, totalmem } from 'node:os';

/** The p-quantile (0..1) of `xs`, nearest rank below; NaN when empty. */
export const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;

/** Prints a benchmark's table in markdown, headed by its title, the date and the machine. */
export function printTable(title: string, rows: [string, string][], notes: string[] = []): void {
  console.log(`\nwgs ${title} — ${new Date().toISOString()}`);
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Bun ${Bun.version}`);
  for (const note of notes) console.log(note);
  console.log('\n| measure | result |\n| --- | --- |');
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
}
