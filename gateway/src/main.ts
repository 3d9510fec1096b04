/**
 * The gateway process: configuration, database, HTTP. Logic lives in the
 * modules wired here; `gateway.ts` starts and stops them in order.
 */
import { loadConfig } from './config/config';
import { startGateway, type RunningGateway } from './gateway';

let gateway: RunningGateway | undefined;
let signalled = false;

// Handlers first: a signal during start-up stops the gateway once it is up,
// instead of killing it half-started. A second signal exits at once.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (signalled) process.exit(1);
    signalled = true;
    if (gateway) void stop(gateway);
  });
}

async function stop(g: RunningGateway): Promise<never> {
  try {
    await g.stop();
    process.exit(0);
  } catch {
    process.exit(1);
  }
}

try {
  gateway = await startGateway(loadConfig());
  if (signalled) await stop(gateway);
} catch (err) {
  process.stderr.write(`wgs gateway failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
