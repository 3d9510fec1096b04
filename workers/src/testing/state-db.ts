/**
 * Test support: real Postgres for the worker's state store. One empty
 * database per test file (tests/support/postgres.ts, on the server the test
 * preload started) and, per simulated instance, a login role owning a schema
 * of the same name, as the gateway sets them up. Roles are cluster-wide, so
 * their names carry a random suffix; cleanup() drops them.
 */
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { adminSql, createTestDatabase, type TestDatabase } from '../../../tests/support/postgres';

export interface TestInstanceState {
  role: string;
  password: string;
  /** Also the schema's name. */
  schema: string;
  /** What the worker gets as WGS_STATE_DSN. */
  dsn: string;
}

export class TestStateDb {
  private readonly roles: string[] = [];

  private constructor(
    readonly database: TestDatabase,
    /** Superuser connection to the test database. */
    readonly admin: postgres.Sql,
  ) {}

  static async create(): Promise<TestStateDb> {
    const database = await createTestDatabase({ empty: true });
    const admin = postgres(database.url, { max: 2, onnotice: () => {} });
    return new TestStateDb(database, admin);
  }

  /** A fresh role and schema, as the gateway creates them for one instance. */
  async createInstance(): Promise<TestInstanceState> {
    const role = `wgs_i_t${randomBytes(5).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    await this.admin.unsafe(`create role ${role} login password '${password}'`);
    this.roles.push(role);
    await this.admin.unsafe(`create schema ${role} authorization ${role}`);
    const url = new URL(this.database.url);
    url.username = role;
    url.password = password;
    return { role, password, schema: role, dsn: url.toString() };
  }

  /** Backend pids of a role's sessions. */
  async backends(role: string): Promise<number[]> {
    const rows = await this.admin<{ pid: number }[]>`select pid from pg_stat_activity where usename = ${role} order by pid`;
    return rows.map((r) => r.pid);
  }

  /** Kills every session of a role, as a crashed network or a restarted server would. */
  async terminate(role: string): Promise<number[]> {
    const pids = await this.backends(role);
    for (const pid of pids) await this.admin`select pg_terminate_backend(${pid})`;
    return pids;
  }

  async cleanup(): Promise<void> {
    const roles = this.roles.splice(0);
    for (const role of roles) await this.admin.unsafe(`drop schema if exists ${role} cascade`);
    await this.admin.end({ timeout: 5 });
    // Roles are cluster-wide and outlive the database (drop … with force ends their sessions).
    await this.database.drop();
    await adminSql(async (sql) => {
      for (const role of roles) await sql.unsafe(`drop role if exists ${role}`);
    });
  }
}
