/**
 * What the waba provider keeps in the instance's schema: the messages this
 * number sent through the gateway (wamid → the gateway's message id), so a
 * status webhook finds the gateway's message, a reaction or quote can say
 * whether it points at one of ours, and a send command redelivered after a
 * restart answers with the wamid it already has instead of sending again.
 * Rows are kept SENT_RETENTION_DAYS (Meta's statuses arrive within that
 * window; the conversation window is 24 hours) and pruned on a timer.
 */
import type { Sql } from 'postgres';

export const WABA_SCHEMA_VERSION = 1;
export const SENT_RETENTION_DAYS = 30;

export const WABA_TABLES = [
  `create table if not exists waba_schema (
     id int primary key check (id = 1),
     version int not null,
     updated_at timestamptz not null default now()
   )`,
  `create table if not exists waba_sent (
     wamid text primary key,
     message_id text not null,
     recipient text not null,
     sent_at timestamptz not null default now()
   )`,
  `create index if not exists waba_sent_message_id on waba_sent (message_id)`,
  `create index if not exists waba_sent_sent_at on waba_sent (sent_at)`,
  `insert into waba_schema (id, version) values (1, ${WABA_SCHEMA_VERSION}) on conflict (id) do nothing`,
] as const;

export class SentStore {
  constructor(private readonly sql: Sql) {}

  async record(wamid: string, messageId: string, recipient: string): Promise<void> {
    await this.sql`
      insert into waba_sent (wamid, message_id, recipient) values (${wamid}, ${messageId}, ${recipient})
      on conflict (wamid) do nothing`;
  }

  /** The gateway's message id for a wamid this number sent; undefined for anything else. */
  async messageIdFor(wamid: string): Promise<string | undefined> {
    const [row] = await this.sql<{ message_id: string }[]>`select message_id from waba_sent where wamid = ${wamid}`;
    return row?.message_id;
  }

  /** The wamid a gateway message was already sent as (a redelivered send). */
  async wamidFor(messageId: string): Promise<string | undefined> {
    const [row] = await this.sql<{ wamid: string }[]>`select wamid from waba_sent where message_id = ${messageId} order by sent_at limit 1`;
    return row?.wamid;
  }

  async prune(days = SENT_RETENTION_DAYS): Promise<number> {
    const rows = await this.sql`delete from waba_sent where sent_at < now() - make_interval(days => ${days}) returning 1`;
    return rows.length;
  }
}
