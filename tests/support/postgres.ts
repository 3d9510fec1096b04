/**
 * Real Postgres for tests. One embedded server per `bun test` run (started by
 * preload.ts, or TEST_DATABASE_URL's server when given), a template database
 * migrated once, and one database per test file cloned from it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { connect, type Database } from '../../gateway/src/db/client';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../gateway/src/db/embedded';
import { migrateAndSeed } from '../../gateway/src/db/migrate';
import { createLogger } from '../../gateway/src/logging/logger';

export const TEMPLATE_DB = 'wgs_test_template';

/** Admin URL of the test server (any database on it), set by preload.ts. */
export function serverUrl(): string {
  const url = process.env.WGS_TEST_SERVER_URL;
  if (!url) throw new Error('WGS_TEST_SERVER_URL is unset: run tests with `make test` (bunfig.toml preloads tests/support/preload.ts)');
  return url;
}

export function databaseUrl(name: string): string {
  const u = new URL(serverUrl());
  u.pathname = `/${name}`;
  return u.toString();
}

export async function adminSql<T>(fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(databaseUrl('postgres'), { max: 1, onnotice: () => {} });
  try {
    return await fn(sql);
  } finally {
    await sql.end();
  }
}

export interface TestDatabase {
  name: string;
  url: string;
  database: Database;
  drop(): Promise<void>;
}

/** A fresh database: migrated (cloned from the template) unless `empty`. */
export async function createTestDatabase(opts: { empty?: boolean } = {}): Promise<TestDatabase> {
  const name = `wgs_test_${randomBytes(6).toString('hex')}`;
  await adminSql((sql) =>
    opts.empty ? sql.unsafe(`create database ${name}`) : sql.unsafe(`create database ${name} template ${TEMPLATE_DB}`),
  );
  const url = databaseUrl(name);
  const database = connect(url, { max: 5 });
  return {
    name,
    url,
    database,
    async drop() {
      await database.close();
      await adminSql(async (sql) => {
        await sql.unsafe(`drop database if exists ${name} with (force)`);
        // Instance roles are cluster-wide; their names carry a digest of this database's name.
        const prefix = `wgs_${createHash('sha256').update(name).digest('hex').slice(0, 8)}_i`;
        const roles = await sql`select rolname from pg_roles where starts_with(rolname, ${prefix})`;
        for (const { rolname } of roles) await sql.unsafe(`drop role if exists "${rolname}"`);
      });
    },
  };
}

/**
 * The Postgres server tests (and benches) use: TEST_DATABASE_URL's, or a real
 * embedded one in a temp dir; the template database migrated. Sets
 * WGS_TEST_SERVER_URL; resolves to what undoes it. A no-op when the variable
 * is already set (another caller started the server).
 */
export async function startTestServer(): Promise<() => Promise<void>> {
  if (process.env.WGS_TEST_SERVER_URL) return async () => {};
  let embedded: EmbeddedPostgresHandle | undefined;
  let dir: string | undefined;
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
  return async () => {
    await embedded?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  };
}
