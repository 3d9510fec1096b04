import pino, { type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { Writable } from 'node:stream';

export type { Logger };

/** LOG_FORMAT: `json` (one object per line, for shippers) or `pretty` (for a terminal). */
export type LogFormat = 'json' | 'pretty';

/** Paths redacted from every record, whatever the format. */
const REDACT_PATHS = [
  'authorization',
  'password',
  'apiKey',
  'secret',
  'adminApiSecret',
  '*.authorization',
  '*.password',
  '*.apiKey',
  '*.secret',
  'headers["x-admin-api-secret"]',
  'headers.authorization',
];

/**
 * Structured JSON logs. Header and secret fields are redacted by path as a
 * second line of defence; the first is never passing secrets to a logger.
 *
 * `pretty` formats the same records with pino-pretty as a synchronous
 * stream in this thread (not a worker-thread transport: the gateway runs on
 * Bun); redaction happens before formatting, so it holds in both formats.
 * Lines go to `destination` (stdout when unset).
 */
export function createLogger(level: string, destination?: DestinationStream, format: LogFormat = 'json'): Logger {
  const options = {
    level,
    base: { service: 'wgs-gateway' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '<redacted>' },
  };
  if (format === 'pretty') {
    // pino-pretty writes to a stream; a plain { write } destination is wrapped (written through synchronously).
    const out = destination
      ? new Writable({
          write(chunk, _encoding, done) {
            destination.write(String(chunk));
            done();
          },
        })
      : pino.destination({ dest: 1, sync: true });
    const colorize = !destination && Boolean(process.stdout.isTTY);
    return pino(options, pretty({ sync: true, colorize, destination: out, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' }));
  }
  return pino(options, destination);
}
