/**
 * The worker process: one WhatsApp number, dialling the gateway. Logic lives
 * in the modules wired here; this file only starts and stops them.
 */
import { loadConfig } from './config';
import { GatewayConnection } from './connection';
import { createLogger } from './logger';
import { createProvider } from './providers';

/** After a stop signal the process is gone within this long, stuck or not. */
const HARD_EXIT_MS = 5_000;

try {
  const config = loadConfig(process.env);
  const log = createLogger({ level: config.logLevel, instanceId: config.instanceId });
  const provider = createProvider(config.provider, config);
  let stopping = false;

  /** Stops the provider's timers and the socket (close 1000), then exits; a stuck stop is cut short. */
  const shutdown = (code: number, why: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ why, code }, 'worker stopping');
    setTimeout(() => {
      log.error({ afterMs: HARD_EXIT_MS }, 'graceful stop took too long; exiting');
      process.exit(1);
    }, HARD_EXIT_MS).unref();
    Promise.allSettled([provider.stop(), connection.stop()]).then(() => process.exit(code));
  };

  const connection = new GatewayConnection({
    url: config.workerUrl,
    instanceId: config.instanceId,
    token: config.token,
    provider,
    log,
    exit: (code) => shutdown(code, 'gateway closed the connection for good'),
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping) process.exit(1); // a second signal means "now"
      shutdown(0, signal);
    });
  }
  // A crash in a provider timer would otherwise leave a half-working worker; the gateway restarts it.
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    log.fatal({ err }, 'unhandled rejection');
    process.exit(1);
  });

  log.info({ gateway: config.workerUrl, provider: config.provider }, 'worker starting');
  await provider.start(connection.context);
  connection.start();
} catch (err) {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`wgs worker failed to start: ${message.replace(/\s+/g, ' ')}\n`);
  process.exit(1);
}
