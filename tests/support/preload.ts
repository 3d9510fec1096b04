/**
 * Loaded before every test file (bunfig.toml). Starts one real embedded
 * Postgres for the whole run, unless TEST_DATABASE_URL names a server, and
 * migrates the template database that test files clone.
 */
import { afterAll } from 'bun:test';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../gateway/src/db/embedded';
import { connect } from '../../gateway/src/db/client';
import { migrateAndSeed } from '../../gateway/src/db/migrate';
import { createLogger } from '../../gateway/src/logging/logger';
import { adminSql, databaseUrl, TEMPLATE_DB } from './postgres';

let embedded: EmbeddedPostgresHandle | undefined;
let dir: string | undefined;

if (!process.env.WGS_TEST_SERVER_URL) {
  if (process.env.TEST_DATABASE_URL) {
    process.env.WGS_TEST_SERVER_URL = process.env.TEST_DATABASE_URL;
  } else {
    dir = await mkdtemp(join(tmpdir(), 'wgs-test-pg-'));
    await chmod(dir, 0o755); // reachable by the postgres user when tests run as root
    embedded = await startEmbeddedPostgres({ dataDir: dir, port: 0, logger: createLogger('warn') });
    process.env.WGS_TEST_SERVER_URL = embedded.url;
  }
  await adminSql(async (sql) => {
    await sql.unsafe(`drop database if exists ${TEMPLATE_DB} with (force)`);
    await sql.unsafe(`create database ${TEMPLATE_DB}`);
  });
  const template = connect(databaseUrl(TEMPLATE_DB), { max: 2 });
  await migrateAndSeed(template);
  await template.close();
}

afterAll(async () => {
  await embedded?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});
