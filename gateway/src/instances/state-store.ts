import { createHash, randomBytes } from 'node:crypto';
import type { Sql } from 'postgres';

/**
 * Each instance keeps its session state (the provider's keys) in a schema of
 * its own, reachable only through a login role of its own: the worker's
 * connection cannot see the gateway's tables or another instance's schema.
 * The role's password is replaced at every worker start, so nothing secret is
 * stored; the worker receives it in its environment only.
 */

export interface InstanceStateAccess {
  role: string;
  schema: string;
  /** postgres:// URL for the worker: the instance role on the gateway's database. */
  dsn: string;
}

export function stateSchemaName(instanceId: number): string {
  return `wgs_i_${instanceId}`;
}

/** Roles are cluster-wide: the name carries a digest of the database's name so databases never collide. */
export async function stateRoleName(sql: Sql, instanceId: number): Promise<string> {
  const [{ db }] = (await sql`select current_database() as db`) as unknown as [{ db: string }];
  return `wgs_${createHash('sha256').update(db).digest('hex').slice(0, 8)}_i${instanceId}`;
}

/** How often the server checks that an instance's worker is still there while it runs or waits (see grantInstanceState). */
export const CLIENT_CHECK_INTERVAL = '1s';

const ident = (name: string) => {
  if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`unsafe identifier ${name}`);
  return `"${name}"`;
};

/**
 * Creates the instance's role and schema if missing, gives the role a fresh
 * password and returns the worker's connection string.
 */
export async function grantInstanceState(sql: Sql, databaseUrl: string, instanceId: number): Promise<InstanceStateAccess> {
  const role = await stateRoleName(sql, instanceId);
  const schema = stateSchemaName(instanceId);
  const password = randomBytes(24).toString('base64url'); // no quote characters: safe in a literal
  await sql.begin(async (tx) => {
    // Serialise provisioning of one instance across gateway replicas.
    await tx`select pg_advisory_xact_lock(2003268354, ${instanceId})`;
    const [exists] = await tx`select 1 from pg_roles where rolname = ${role}`;
    if (!exists) await tx.unsafe(`create role ${ident(role)} login noinherit`);
    await tx.unsafe(`alter role ${ident(role)} with login password '${password}'`);
    // A worker killed while it waits for the instance lock leaves a backend queued for that
    // lock, which would take it (and hold up the next worker) before noticing its client is
    // gone. With this the server checks the client every second during a wait (PostgreSQL 14+).
    const [{ version }] = (await tx`select current_setting('server_version_num')::int as version`) as unknown as [{ version: number }];
    if (version >= 140000) await tx.unsafe(`alter role ${ident(role)} set client_connection_check_interval = '${CLIENT_CHECK_INTERVAL}'`);
    await tx.unsafe(`create schema if not exists ${ident(schema)} authorization ${ident(role)}`);
  });
  const url = new URL(databaseUrl);
  url.username = role;
  url.password = password;
  url.search = '';
  return { role, schema, dsn: url.toString() };
}

/** Drops the instance's schema (with everything in it) and its role, ending its sessions first. */
export async function dropInstanceState(sql: Sql, instanceId: number): Promise<void> {
  const role = await stateRoleName(sql, instanceId);
  const schema = stateSchemaName(instanceId);
  await sql`select pg_terminate_backend(pid) from pg_stat_activity where usename = ${role}`;
  await sql.unsafe(`drop schema if exists ${ident(schema)} cascade`);
  await sql.unsafe(`drop role if exists ${ident(role)}`);
}
