import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs. Header and secret fields are redacted by path as a
 * second line of defence; the first is never passing secrets to a logger.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'wgs-gateway' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
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
        ],
        censor: '<redacted>',
      },
    },
    destination,
  );
}
