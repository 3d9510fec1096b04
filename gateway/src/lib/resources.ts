/**
 * Resource sizes as the API speaks them: memory as Docker-style size strings
 * ("512m", "4g"), CPU as a number of cores. Stored as bytes and millicores.
 */

const UNITS = { b: 1n, k: 1024n, m: 1024n ** 2n, g: 1024n ** 3n, t: 1024n ** 4n } as const;
type Unit = keyof typeof UNITS;

export const MEMORY_PATTERN = '^[1-9][0-9]{0,15}[bBkKmMgGtT]?$';
const MEMORY_RE = new RegExp(MEMORY_PATTERN);

/** Bytes in a size string like "512m"; a bare number is bytes. Null when malformed. */
export function parseMemory(size: string): number | null {
  if (!MEMORY_RE.test(size)) return null;
  const last = size.at(-1)!.toLowerCase();
  const unit: Unit = last in UNITS ? (last as Unit) : 'b';
  const digits = unit === 'b' && /\d$/.test(size) ? size : size.slice(0, -1);
  const bytes = BigInt(digits) * UNITS[unit];
  return bytes > BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(bytes);
}

/** The shortest exact size string for a byte count: 536870912 → "512m". */
export function formatMemory(bytes: number): string {
  let value = BigInt(bytes);
  for (const unit of ['t', 'g', 'm', 'k'] as const) {
    if (value >= UNITS[unit] && value % UNITS[unit] === 0n) return `${value / UNITS[unit]}${unit}`;
  }
  return `${value}b`;
}

/** Millicores for a core count (0.5 → 500); null unless a positive multiple of 0.001. */
export function parseCpu(cores: number): number | null {
  if (!Number.isFinite(cores) || cores <= 0) return null;
  const milli = Math.round(cores * 1000);
  return Math.abs(milli - cores * 1000) < 1e-6 && milli > 0 ? milli : null;
}

export function formatCpu(millicores: number): number {
  return millicores / 1000;
}
