/**
 * `bun simulator/src/graph/main.ts`: the fake Graph API (WhatsApp Cloud API)
 * in the foreground on 127.0.0.1:$FAKE_GRAPH_PORT (default 3200), set up
 * through its control API under /_fake/. JSON log lines on stderr.
 */
import { startFakeGraph } from './server';

const raw = process.env.FAKE_GRAPH_PORT?.trim() || '3200';
const port = Number(raw);
if (!/^\d+$/.test(raw) || port > 65535) {
  process.stderr.write(`invalid configuration: FAKE_GRAPH_PORT: must be a port from 0 to 65535 (got ${JSON.stringify(raw)})\n`);
  process.exit(1);
}
const debug = process.env.LOG_LEVEL === 'debug' || process.env.LOG_LEVEL === 'trace';
const graph = await startFakeGraph({
  port,
  log: (level, msg, fields) => {
    if (level === 'debug' && !debug) return;
    process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + '\n');
  },
});
const stop = () => {
  void graph.close().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
