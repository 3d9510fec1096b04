/**
 * `bun simulator/src/main.ts` (or `make simulator`): the WhatsApp protocol
 * simulator in the foreground on 127.0.0.1:$SIMULATOR_PORT (default 3100),
 * its HTTPS media server on 127.0.0.1:$SIMULATOR_MEDIA_PORT (default 0: a
 * free port, named in the start line and GET /info).
 * Logs are JSON lines on stderr (LOG_LEVEL debug shows every protocol step).
 */
import { startSimulator } from './server';

const raw = process.env.SIMULATOR_PORT?.trim() || '3100';
const port = Number(raw);
if (!/^\d+$/.test(raw) || port < 1 || port > 65535) {
  process.stderr.write(`invalid configuration: SIMULATOR_PORT: must be a port from 1 to 65535 (got ${JSON.stringify(raw)})\n`);
  process.exit(1);
}
const rawMedia = process.env.SIMULATOR_MEDIA_PORT?.trim() || '0';
const mediaPort = Number(rawMedia);
if (!/^\d+$/.test(rawMedia) || mediaPort > 65535) {
  process.stderr.write(`invalid configuration: SIMULATOR_MEDIA_PORT: must be a port from 0 to 65535 (got ${JSON.stringify(rawMedia)})\n`);
  process.exit(1);
}
const debug = process.env.LOG_LEVEL === 'debug' || process.env.LOG_LEVEL === 'trace';
const running = startSimulator({
  port,
  mediaPort,
  log: (level, msg, fields) => {
    if (level === 'debug' && !debug) return;
    process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + '\n');
  },
});
process.stderr.write(
  JSON.stringify({
    time: new Date().toISOString(),
    level: 'info',
    msg: 'simulator listening',
    url: running.url,
    wsUrl: running.wsUrl,
    rootPublicKey: running.rootPublicKey,
    mediaUrl: running.media.url,
    // whatsmeow uploads and downloads media over https: point SSL_CERT_FILE at this file (Go on Linux)
    mediaCaFile: running.mediaCaFile,
  }) + '\n',
);
const stop = () => {
  void running.stop().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
