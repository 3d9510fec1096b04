/** Rows for tests of the event log's readers (streams, pages): an instance without a worker, and events written straight into the log. */
import type { Sql } from 'postgres';

/** A sandbox instance row of the user on node `local`, with no worker behind it. */
export async function fixtureInstance(sql: Sql, userId: number, phone: string): Promise<number> {
  const [row] = await sql<{ id: number }[]>`
    insert into instances (user_id, node_id, phone_number, provider)
    values (${userId}, (select id from nodes where name = 'local'), ${phone}, 'sandbox') returning id`;
  return row!.id;
}

/** One event in the log, as a worker's would be stored; its id. */
export async function addEvent(sql: Sql, instanceId: number, type: string, data: Record<string, unknown>): Promise<number> {
  const [row] = await sql<{ id: string }[]>`insert into events (instance_id, type, data) values (${instanceId}, ${type}, ${JSON.stringify(data)}::jsonb) returning id`;
  return Number(row!.id);
}
