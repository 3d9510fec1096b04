/**
 * Baileys' authentication state (credentials and every Signal key) in the
 * instance's own Postgres schema, on the state store's one connection (the
 * one that holds the instance lock).
 *
 * Tables (schema version AUTH_SCHEMA_VERSION, recorded in baileys_schema):
 * - baileys_creds: one row, the AuthenticationCreds as BufferJSON text;
 * - baileys_keys: (type, id) → value, for every key type of Baileys'
 *   SignalDataTypeMap (pre-key, session, sender-key, sender-key-memory,
 *   app-state-sync-key, app-state-sync-version, lid-mapping, device-list,
 *   tctoken, identity-key) and any type a later Baileys adds: the type is a
 *   column, not a table, so a new type needs no migration;
 * - baileys_sent_messages: what this number sent (WhatsApp id → gateway
 *   message id, the message itself for retry requests), kept for a bounded
 *   time.
 *
 * Values are JSON with Baileys' BufferJSON replacer, so Buffers and
 * Uint8Arrays come back as Buffers. Each `keys.set` is one transaction with
 * one statement per type for the upserts and one for the deletes (null).
 */
import { BufferJSON, initAuthCreds, proto, type AuthenticationCreds, type SignalDataSet, type SignalDataTypeMap, type SignalKeyStore } from 'baileys';
import type { Sql } from 'postgres';

/** Bump when the stored format changes; `openAuthStore` then migrates older rows once. */
export const AUTH_SCHEMA_VERSION = 1;

export const BAILEYS_TABLES = [
  `create table if not exists baileys_schema (
     id int primary key check (id = 1),
     version int not null,
     updated_at timestamptz not null default now()
   )`,
  `create table if not exists baileys_creds (
     id int primary key check (id = 1),
     value text not null,
     updated_at timestamptz not null default now()
   )`,
  `create table if not exists baileys_keys (
     type text not null,
     id text not null,
     value text not null,
     primary key (type, id)
   )`,
  `create table if not exists baileys_sent_messages (
     wa_id text primary key,
     message_id text not null,
     chat text not null,
     message bytea,
     created_at timestamptz not null default now()
   )`,
  `create index if not exists baileys_sent_messages_message_id on baileys_sent_messages (message_id)`,
  `create index if not exists baileys_sent_messages_created_at on baileys_sent_messages (created_at)`,
] as const;

/** A store that cannot be used as it is: the provider reports `failed` with this message instead of crashing. */
export class AuthStoreError extends Error {
  override name = 'AuthStoreError';
}

export function encodeValue(value: unknown): string {
  return JSON.stringify(value, BufferJSON.replacer);
}

export function decodeValue(text: string): unknown {
  return JSON.parse(text, BufferJSON.reviver);
}

/** Restores the class Baileys expects for a key type (app-state sync keys are protobuf objects). */
function revive<T extends keyof SignalDataTypeMap>(type: T, value: unknown): SignalDataTypeMap[T] {
  if (type === 'app-state-sync-key' && value) {
    return proto.Message.AppStateSyncKeyData.fromObject(value as object) as unknown as SignalDataTypeMap[T];
  }
  return value as SignalDataTypeMap[T];
}

export interface AuthStore {
  creds: AuthenticationCreds;
  /** True when the credentials came from the store (a linked session), false for fresh ones. */
  restored: boolean;
  /** The raw key store (wrap it in makeCacheableSignalKeyStore for the socket). */
  keys: SignalKeyStore & { clear(): Promise<void> };
  /** Writes the current credentials (after Baileys' creds.update). */
  saveCreds(): Promise<void>;
  /** Forgets the session: every key and the credentials; fresh credentials are saved and returned. */
  reset(): Promise<AuthenticationCreds>;
}

/**
 * Creates the tables if missing, checks the schema version, and loads the
 * credentials (fresh ones when there are none). Throws AuthStoreError when
 * the store holds a format this worker does not know or rows it cannot read.
 */
export async function openAuthStore(sql: Sql, migrate: (name: string, statements: readonly string[]) => Promise<void>): Promise<AuthStore> {
  try {
    await migrate('baileys', BAILEYS_TABLES);
  } catch (err) {
    throw new AuthStoreError(`cannot create the Baileys tables: ${message(err)}`, { cause: err });
  }
  let versionRow: { version: number } | undefined;
  let credsRow: { value: string } | undefined;
  try {
    [versionRow] = await sql<{ version: number }[]>`select version from baileys_schema where id = 1`;
    [credsRow] = await sql<{ value: string }[]>`select value from baileys_creds where id = 1`;
    // The key table must be readable as well: a damaged one fails here, not at the first message.
    await sql`select type, id, value from baileys_keys limit 1`;
    await sql`select wa_id, message_id, chat, message, created_at from baileys_sent_messages limit 1`;
  } catch (err) {
    throw new AuthStoreError(`the Baileys tables are unreadable: ${message(err)}`, { cause: err });
  }
  if (versionRow && versionRow.version > AUTH_SCHEMA_VERSION) {
    throw new AuthStoreError(
      `the Baileys store has format version ${versionRow.version}, newer than this worker's ${AUTH_SCHEMA_VERSION}; run a newer worker`,
    );
  }
  if (!versionRow || versionRow.version < AUTH_SCHEMA_VERSION) {
    // Version 1 is the first format: nothing to convert yet. A later version converts rows here, once.
    await sql`insert into baileys_schema (id, version) values (1, ${AUTH_SCHEMA_VERSION})
              on conflict (id) do update set version = excluded.version, updated_at = now()`;
  }
  let creds: AuthenticationCreds;
  let restored = false;
  if (credsRow) {
    try {
      creds = decodeValue(credsRow.value) as AuthenticationCreds;
    } catch (err) {
      throw new AuthStoreError(`the stored Baileys credentials are not valid JSON: ${message(err)}`, { cause: err });
    }
    if (!creds || typeof creds !== 'object' || !creds.noiseKey?.private || !creds.signedIdentityKey?.private) {
      throw new AuthStoreError('the stored Baileys credentials are incomplete (no noise or identity key)');
    }
    restored = Boolean(creds.me?.id);
  } else {
    creds = initAuthCreds();
  }

  const store: AuthStore = {
    creds,
    restored,
    keys: {
      async get(type, ids) {
        const out: { [id: string]: SignalDataTypeMap[typeof type] } = {};
        if (ids.length === 0) return out;
        const rows = await sql<{ id: string; value: string }[]>`
          select id, value from baileys_keys where type = ${type} and id = any(${sql.array(ids)}::text[])`;
        for (const row of rows) out[row.id] = revive(type, decodeValue(row.value));
        return out;
      },
      async set(data: SignalDataSet) {
        const plan = planKeyWrites(data);
        if (plan.length === 0) return;
        await sql.begin(async (tx) => {
          for (const { type, upserts, deletes } of plan) {
            if (upserts.length > 0) {
              await tx`
                insert into baileys_keys (type, id, value)
                select ${type}, t.id, t.value
                from unnest(${tx.array(upserts.map((u) => u.id))}::text[], ${tx.array(upserts.map((u) => u.value))}::text[]) as t(id, value)
                on conflict (type, id) do update set value = excluded.value`;
            }
            if (deletes.length > 0) {
              await tx`delete from baileys_keys where type = ${type} and id = any(${tx.array(deletes)}::text[])`;
            }
          }
        });
      },
      async clear() {
        await sql`delete from baileys_keys`;
      },
    },
    async saveCreds() {
      const value = encodeValue(store.creds);
      await sql`insert into baileys_creds (id, value) values (1, ${value})
                on conflict (id) do update set value = excluded.value, updated_at = now()`;
    },
    async reset() {
      const fresh = initAuthCreds();
      await sql.begin(async (tx) => {
        await tx`delete from baileys_keys`;
        await tx`delete from baileys_sent_messages`;
        await tx`insert into baileys_creds (id, value) values (1, ${encodeValue(fresh)})
                 on conflict (id) do update set value = excluded.value, updated_at = now()`;
      });
      store.creds = fresh;
      store.restored = false;
      return fresh;
    },
  };
  return store;
}

export interface KeyWrites {
  type: string;
  /** Ids with their encoded values; the last value wins when an id appears twice. */
  upserts: { id: string; value: string }[];
  deletes: string[];
}

/** Splits one `keys.set` into per-type upserts and deletes (null or undefined deletes). Pure. */
export function planKeyWrites(data: SignalDataSet): KeyWrites[] {
  const plan: KeyWrites[] = [];
  for (const [type, byId] of Object.entries(data)) {
    if (!byId) continue;
    const values = new Map<string, string | null>();
    for (const [id, value] of Object.entries(byId)) values.set(id, value == null ? null : encodeValue(value));
    const upserts: KeyWrites['upserts'] = [];
    const deletes: string[] = [];
    for (const [id, value] of values) {
      if (value === null) deletes.push(id);
      else upserts.push({ id, value });
    }
    if (upserts.length || deletes.length) plan.push({ type, upserts, deletes });
  }
  return plan;
}

// ---------------------------------------------------------------- sent messages

export interface SentMessages {
  /** The WhatsApp id already used for a gateway message id (a redelivered send reuses it). */
  waIdFor(messageId: string): Promise<string | undefined>;
  /** The gateway message id of a WhatsApp id this number sent. */
  messageIdFor(waId: string): Promise<string | undefined>;
  /** Records the id pair before the send, so an early receipt finds it. */
  reserve(waId: string, messageId: string, chat: string): Promise<void>;
  /** Keeps the sent message for retry requests. */
  keep(waId: string, message: proto.IMessage): Promise<void>;
  /** The sent message for Baileys' getMessage; undefined when unknown or pruned. */
  message(waId: string): Promise<proto.IMessage | undefined>;
  /** Deletes what is older than the retention; returns how many rows went. */
  prune(retentionDays: number): Promise<number>;
}

export function sentMessages(sql: Sql): SentMessages {
  return {
    async waIdFor(messageId) {
      const [row] = await sql<{ wa_id: string }[]>`
        select wa_id from baileys_sent_messages where message_id = ${messageId} order by created_at desc limit 1`;
      return row?.wa_id;
    },
    async messageIdFor(waId) {
      const [row] = await sql<{ message_id: string }[]>`select message_id from baileys_sent_messages where wa_id = ${waId}`;
      return row?.message_id;
    },
    async reserve(waId, messageId, chat) {
      await sql`insert into baileys_sent_messages (wa_id, message_id, chat) values (${waId}, ${messageId}, ${chat})
                on conflict (wa_id) do nothing`;
    },
    async keep(waId, msg) {
      const bytes = Buffer.from(proto.Message.encode(msg).finish());
      await sql`update baileys_sent_messages set message = ${bytes} where wa_id = ${waId}`;
    },
    async message(waId) {
      const [row] = await sql<{ message: Buffer | null }[]>`select message from baileys_sent_messages where wa_id = ${waId}`;
      if (!row?.message) return undefined;
      try {
        return proto.Message.decode(row.message);
      } catch {
        return undefined;
      }
    },
    async prune(retentionDays) {
      const rows = await sql`delete from baileys_sent_messages where created_at < now() - make_interval(days => ${retentionDays}) returning 1`;
      return rows.length;
    },
  };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
