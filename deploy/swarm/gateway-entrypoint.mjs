// Entry point of the gateway in deploy/swarm/stack*.yaml (a Docker config
// mounted at /etc/wgs/gateway-entrypoint.mjs, run by the image's own Bun).
//
// The gateway reads its settings from the environment only, and Docker
// secrets are files (/run/secrets/<name>). For each variable below, NAME_FILE
// names such a file: its content (trimmed) becomes NAME, NAME_FILE is removed,
// and then the gateway bundle starts in this same process. The service spec
// (`docker service inspect`) then holds only paths, never a secret; the
// gateway hands workers their own environment, never its own.
import { readFileSync } from 'node:fs';

const FROM_FILES = ['DATABASE_URL', 'ADMIN_API_SECRET', 'WEBHOOK_SECRET_KEY', 'METRICS_TOKEN', 'BILLING_WEBHOOK_SECRET'];

function fail(message) {
  process.stderr.write(`wgs gateway entrypoint: ${message}\n`);
  process.exit(1);
}

for (const name of FROM_FILES) {
  const file = process.env[`${name}_FILE`];
  if (!file) continue;
  delete process.env[`${name}_FILE`];
  if (process.env[name]) fail(`both ${name} and ${name}_FILE are set; keep one`);
  let value;
  try {
    value = readFileSync(file, 'utf8').trim();
  } catch (err) {
    fail(`cannot read ${name}_FILE (${file}): ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!value) fail(`${name}_FILE (${file}) is empty`);
  process.env[name] = value;
}

await import(process.env.WGS_GATEWAY_MAIN || '/app/gateway/main.js');
