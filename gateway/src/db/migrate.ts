import { migrate } from 'drizzle-orm/postgres-js/migrator';
import { join } from 'node:path';
import type { Database } from './client';

/** The committed migrations; the gateway image, a bundle, says where it put them. */
export const MIGRATIONS_DIR = process.env.WGS_MIGRATIONS_DIR || join(import.meta.dir, '..', '..', 'drizzle');

/** Arbitrary constant: the advisory lock key that serialises gateway start-up work. */
const STARTUP_LOCK_KEY = 0x77_67_73_01; // "wgs" 1

/**
 * Applies committed drizzle-kit migrations, then seeds the default node.
 * Gateways starting at once against one database take turns on an advisory
 * lock held on a reserved connection, so each migration runs exactly once.
 */
export async function migrateAndSeed(database: Database): Promise<void> {
  const lockConn = await database.sql.reserve();
  try {
    await lockConn`select pg_advisory_lock(${STARTUP_LOCK_KEY})`;
    try {
      await migrate(database.db, { migrationsFolder: MIGRATIONS_DIR });
      await seedDefaultNode(database);
    } finally {
      await lockConn`select pg_advisory_unlock(${STARTUP_LOCK_KEY})`;
    }
  } finally {
    lockConn.release();
  }
}

/** On a database with no nodes at all, register `local` for the process engine. */
async function seedDefaultNode(database: Database): Promise<void> {
  await database.sql`
    insert into nodes (name, engine, endpoint)
    select 'local', 'process', 'local'
    where not exists (select 1 from nodes)`;
}
