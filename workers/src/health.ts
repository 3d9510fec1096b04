/**
 * Container health without a port: while the worker is connected to the
 * gateway it writes the time to a file every few seconds, and
 * `worker --health` (the image's HEALTHCHECK) passes while that time is
 * recent. A worker that lost its gateway, hangs, or is still waiting for the
 * instance lock turns unhealthy; one that lost its state store exits anyway.
 */
import { readFileSync, writeFileSync } from 'node:fs';

export const HEALTH_WRITE_MS = 2_000;
/** Older than this and the worker counts as unhealthy. */
export const HEALTH_MAX_AGE_MS = 30_000;

/** Writes Date.now() to `path` every `intervalMs` while `healthy()`; returns a stopper. */
export function writeHealth(path: string, healthy: () => boolean, intervalMs = HEALTH_WRITE_MS): () => void {
  const beat = () => {
    if (!healthy()) return;
    try {
      writeFileSync(path, String(Date.now()));
    } catch {
      // An unwritable file just reads as unhealthy.
    }
  };
  beat();
  const timer = setInterval(beat, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** Why the worker is unhealthy, or undefined when it is healthy. */
export function healthProblem(path: string | undefined, now = Date.now(), maxAgeMs = HEALTH_MAX_AGE_MS): string | undefined {
  if (!path) return 'WGS_HEALTH_FILE is not set';
  let written: number;
  try {
    written = Number(readFileSync(path, 'utf8'));
  } catch {
    return 'never connected to the gateway';
  }
  if (!Number.isFinite(written)) return `${path} holds no time`;
  const age = now - written;
  return age > maxAgeMs ? `last connected to the gateway ${Math.round(age / 1000)} s ago` : undefined;
}
