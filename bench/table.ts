import { cpus, totalmem } from 'node:os';

/** The p-quantile (0..1) of `xs`, nearest rank below; NaN when empty. */
export const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;

/** Prints a benchmark's table in markdown, headed by its title, the date and the machine; `header` names the columns (one result column unless given). */
export function printTable(title: string, rows: string[][], notes: string[] = [], header: string[] = ['measure', 'result']): void {
  console.log(`\nwgs ${title} — ${new Date().toISOString()}`);
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Bun ${Bun.version}`);
  for (const note of notes) console.log(note);
  console.log(`\n| ${header.join(' | ')} |\n|${' --- |'.repeat(header.length)}`);
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
}

/** Rows with one result column per key (e.g. per provider), filled in any order; `rows()` keeps the order measures first appeared in, '—' where a column has none. */
export class Columns<K extends string> {
  private readonly byMeasure = new Map<string, Partial<Record<K, string>>>();
  constructor(readonly keys: readonly K[]) {}
  set(measure: string, key: K, value: string): void {
    const row: Partial<Record<K, string>> = this.byMeasure.get(measure) ?? {};
    row[key] = value;
    this.byMeasure.set(measure, row);
  }
  rows(): string[][] {
    return [...this.byMeasure].map(([measure, row]) => [measure, ...this.keys.map((k) => row[k] ?? '—')]);
  }
  header(): string[] {
    return ['measure', ...this.keys];
  }
}
