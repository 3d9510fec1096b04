/**
 * The gateway process: configuration, database, HTTP. Logic lives in the
 * modules wired here; `gateway.ts` starts and stops them in order.
 */
import { ConfigError, loadConfig } from './config/config';
import { startGateway } from './gateway';

try {
  const config = loadConfig();
  const gateway = await startGateway(config);
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) process.exit(1);
      stopping = true;
      gateway.stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    });
  }
} catch (err) {
  const message = err instanceof ConfigError || err instanceof Error ? err.message : String(err);
  process.stderr.write(`wgs gateway failed to start: ${message}\n`);
  process.exit(1);
}
