import { cpus, totalmem } from 'node:os';

/** Prints a benchmark's table in markdown, headed by its title, the date and the machine. */
export function printTable(title: string, rows: [string, string][], notes: string[] = []): void {
  console.log(`\nwgs ${title} — ${new Date().toISOString()}`);
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Bun ${Bun.version}`);
  for (const note of notes) console.log(note);
  console.log('\n| measure | result |\n| --- | --- |');
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
}
