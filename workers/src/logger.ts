import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs on stdout; the gateway's process engine reads them
 * line by line. The token is never handed to the logger; the redact paths
 * are a second line of defence in case a frame or config object slips in.
 */
export function createLogger(
  opts: { level: string; instanceId: number | undefined },
  destination?: DestinationStream,
): Logger {
  return pino(
    {
      level: opts.level,
      base: { service: 'wgs-worker', instanceId: opts.instanceId },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['token', '*.token', 'frame.token'], censor: '<redacted>' },
    },
    destination,
  );
}
