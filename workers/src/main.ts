/**
 * The worker process: one WhatsApp number, dialling the gateway. Logic lives
 * in the modules wired here; this file only starts and stops them.
 *
 * Start: config → logger → gateway connection (it reports 'starting' and
 * holds commands) → state store (waits for the instance lock while a previous
 * owner lives) → provider → commands. Stop: commands, provider, socket,
 * store, in that order, within HARD_EXIT_MS.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from './config';
import { dialOrder } from './failover';
import { healthProblem, writeHealth } from './health';
import { GatewayConnection } from './connection';
import { createLogger } from './logger';
import { createProvider } from './providers';
import { openStateStore, type StateStore } from './state/store';

/** How often a worker started with WGS_EXIT_WITH_PARENT=1 checks its parent. */
const PARENT_CHECK_MS = 500;
/** After a stop signal the process is gone within this long, stuck or not. */
const HARD_EXIT_MS = 5_000;
/** How long a worker that cannot open its store waits for the gateway to hear why. */
const FAILED_REPORT_MS = 2_000;
/** How long a graceful stop lets the running command finish. */
const COMMAND_DRAIN_MS = 1_500;
/** How long a graceful stop lets the provider finish its writes. */
const PROVIDER_STOP_MS = 500;
/** How long a graceful stop waits for the gateway's close handshake. */
const SOCKET_CLOSE_MS = 1_000;
/** How long a graceful stop waits to release the lock and end the state connection. */
const STORE_CLOSE_MS = 1_500;

// The image's HEALTHCHECK: no config, no connections, just the health file.
if (process.argv.includes('--health')) {
  const problem = healthProblem(process.env.WGS_HEALTH_FILE);
  if (problem) process.stderr.write(`unhealthy: ${problem}\n`);
  process.exit(problem ? 1 : 0);
}

try {
  await main();
} catch (err) {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`wgs worker failed to start: ${message.replace(/\s+/g, ' ')}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const log = createLogger({ level: config.logLevel, instanceId: config.instanceId });
  const provider = createProvider(config.provider, config);
  let stopping = false;
  let store: StateStore | undefined;
  let providerStarted = false;
  /** Ends a store still waiting for the lock when the worker stops meanwhile. */
  const opening = new AbortController();

  /**
   * Graceful stop: no new commands (the running one may finish), provider
   * timers, socket (close 1000), store (releases the lock), exit. A stuck
   * step is cut short, and the whole stop by the hard exit.
   */
  const shutdown = (code: number, why: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ why, code }, 'worker stopping');
    setTimeout(() => {
      log.error({ afterMs: HARD_EXIT_MS }, 'graceful stop took too long; exiting');
      process.exit(1);
    }, HARD_EXIT_MS).unref();
    opening.abort();
    void (async () => {
      await within(connection.stopCommands(), COMMAND_DRAIN_MS);
      if (providerStarted) await within(provider.stop(), PROVIDER_STOP_MS);
      await connection.stop();
      await store?.close();
      process.exit(code);
    })().catch((err: unknown) => {
      log.error({ err }, 'graceful stop failed');
      process.exit(1);
    });
  };

  // Several gateway replicas: this worker's own order of them (spread over the replicas, the same at every start).
  const gatewayUrls = dialOrder(config.workerUrls, config.instanceId);
  const connection = new GatewayConnection({
    urls: gatewayUrls,
    instanceId: config.instanceId,
    token: config.token,
    provider,
    log,
    holdCommands: true,
    closeTimeoutMs: SOCKET_CLOSE_MS,
    exit: (code) => shutdown(code, 'gateway closed the connection for good'),
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping) process.exit(1); // a second signal means "now"
      shutdown(0, signal);
    });
  }
  // A worker orphaned by a killed gateway would hold the instance's lock until
  // its reconnect is refused; on the process engine it leaves with its parent.
  if (config.exitWithParent) {
    const parent = process.ppid;
    setInterval(() => process.ppid !== parent && shutdown(0, 'parent process gone'), PARENT_CHECK_MS).unref();
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

  log.info({ gateways: gatewayUrls, provider: config.provider }, 'worker starting');
  // The gateway hears 'starting' (and why) while the worker waits for the lock.
  connection.start();
  if (config.healthFile) writeHealth(config.healthFile, () => connection.ready && providerStarted && !stopping);
  try {
    store = await openStateStore({
      dsn: config.state.dsn,
      schema: config.state.schema,
      instanceId: config.instanceId,
      log,
      signal: opening.signal,
      onWaiting: () => connection.context.setState('starting', 'waiting for previous owner'),
      // Another worker may own the instance from now on: not one more write, not a graceful stop.
      onLost: (err) => {
        log.fatal({ err: { message: err.message } }, 'lost the state connection and the instance lock; exiting');
        process.exit(1);
      },
      closeTimeoutMs: STORE_CLOSE_MS,
    });
  } catch (err) {
    if (stopping) return; // aborted by a stop signal; shutdown() exits
    const message = err instanceof Error ? err.message : String(err);
    log.fatal({ err: { message } }, 'cannot open the state store');
    connection.context.setState('failed', `state store unavailable: ${message}`);
    // Let the gateway hear why (the state goes out with the welcome) before the socket closes.
    const deadline = Date.now() + FAILED_REPORT_MS;
    while (!connection.ready && !stopping && Date.now() < deadline) await sleep(50);
    shutdown(1, 'state store unavailable');
    return;
  }
  if (stopping) return; // the lock came with a stop signal; shutdown() closes the store
  providerStarted = true;
  await provider.start({ ...connection.context, store });
  connection.acceptCommands();
}

/** Waits for `promise` at most `ms`; a failure or a timeout just ends the wait. */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([promise.catch(() => {}), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
