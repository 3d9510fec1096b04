/**
 * The Baileys auth store against real Postgres: the instance's role and
 * schema, on the state store's one locked connection, as the worker runs it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { Writable } from 'node:stream';
import { BufferJSON, Curve, initAuthCreds, makeCacheableSignalKeyStore, proto, type SignalDataSet } from 'baileys';
import { createLogger } from '../../logger';
import { openStateStore, type StateStore } from '../../state/store';
import { TestStateDb } from '../../testing/state-db';
import { AUTH_SCHEMA_VERSION, AuthStoreError, openAuthStore, planKeyWrites, sentMessages } from './auth-store';

let db: TestStateDb;
beforeAll(async () => {
  db = await TestStateDb.create();
});
afterAll(async () => {
  await db.cleanup();
});

const stores: StateStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

const quiet = createLogger({ level: 'silent', instanceId: 1 }, new Writable({ write: (_c, _e, done) => done() }));
let nextInstance = 9001;

async function stateStore(instance?: Awaited<ReturnType<TestStateDb['createInstance']>>) {
  const state = instance ?? (await db.createInstance());
  const store = await openStateStore({ dsn: state.dsn, schema: state.schema, instanceId: nextInstance++, log: quiet, onLost: () => {} });
  stores.push(store);
  return { state, store };
}
const open = (store: StateStore) => openAuthStore(store.sql, (name, statements) => store.migrate(name, statements));

describe('planKeyWrites', () => {
  test('splits upserts and deletes per type; null and undefined delete; the last value for an id wins', () => {
    const plan = planKeyWrites({
      'pre-key': { '1': { public: Buffer.from([1]), private: Buffer.from([2]) }, '2': null },
      session: {},
      'lid-mapping': { a: 'b', c: undefined as never },
    });
    expect(plan.map((p) => [p.type, p.upserts.map((u) => u.id), p.deletes])).toEqual([
      ['pre-key', ['1'], ['2']],
      ['lid-mapping', ['a'], ['c']],
    ]);
  });
});

describe('openAuthStore', () => {
  test('a fresh schema: tables created, version recorded, fresh credentials (not restored)', async () => {
    const { store } = await stateStore();
    const auth = await open(store);
    expect(auth.restored).toBe(false);
    expect(auth.creds.noiseKey.private).toBeInstanceOf(Uint8Array);
    const [row] = await store.sql<{ version: number }[]>`select version from baileys_schema`;
    expect(row?.version).toBe(AUTH_SCHEMA_VERSION);
  });

  test('credentials round-trip byte for byte; a linked session comes back as restored', async () => {
    const { state, store } = await stateStore();
    const auth = await open(store);
    auth.creds.me = { id: '4915100000001:3@s.whatsapp.net', name: 'x' };
    auth.creds.account = { details: Buffer.from([1, 2, 3]), accountSignatureKey: Buffer.from([4]), accountSignature: Buffer.from([5]), deviceSignature: Buffer.from([6]) };
    await auth.saveCreds();
    const expected = JSON.stringify(auth.creds, BufferJSON.replacer);
    await store.close();
    stores.splice(stores.indexOf(store), 1);
    const again = await open((await stateStore(state)).store);
    expect(again.restored).toBe(true);
    expect(Buffer.isBuffer(again.creds.noiseKey.private)).toBe(true);
    expect(Buffer.from(again.creds.signedIdentityKey.private).equals(Buffer.from(auth.creds.signedIdentityKey.private))).toBe(true);
    expect(JSON.stringify(again.creds, BufferJSON.replacer)).toBe(expected);
  });

  test('every key type of SignalDataTypeMap round-trips; null deletes; app-state sync keys come back as protobuf objects', async () => {
    const { store } = await stateStore();
    const auth = await open(store);
    const keyPair = Curve.generateKeyPair();
    const data: SignalDataSet = {
      'pre-key': { '1': keyPair },
      session: { 'a.0': new Uint8Array([9, 8, 7]) },
      'sender-key': { 'g::a': new Uint8Array([1, 1]) },
      'sender-key-memory': { g: { a: true } },
      'app-state-sync-key': { k1: proto.Message.AppStateSyncKeyData.fromObject({ keyData: Buffer.from([5, 5]), timestamp: 7 }) },
      'app-state-sync-version': { regular: { version: 3, hash: Buffer.alloc(128, 1), indexValueMap: { x: { valueMac: Buffer.from([2]) } } } },
      'lid-mapping': { '4915100000001': '123@lid' },
      'device-list': { '4915100000001': ['0', '3'] },
      tctoken: { a: { token: Buffer.from([3]), timestamp: '5' } },
      'identity-key': { 'a.0': new Uint8Array([4, 4]) },
    };
    await auth.keys.set(data);
    for (const [type, byId] of Object.entries(data)) {
      const got = await auth.keys.get(type as never, Object.keys(byId!));
      for (const [id, value] of Object.entries(byId!)) {
        expect(JSON.stringify(got[id], BufferJSON.replacer)).toBe(JSON.stringify(value, BufferJSON.replacer));
      }
    }
    const syncKey = (await auth.keys.get('app-state-sync-key', ['k1'])).k1;
    expect(syncKey).toBeInstanceOf(proto.Message.AppStateSyncKeyData);
    expect(Buffer.from(syncKey!.keyData!).equals(Buffer.from([5, 5]))).toBe(true);
    const session = (await auth.keys.get('session', ['a.0']))['a.0'];
    expect(Buffer.isBuffer(session)).toBe(true);
    await auth.keys.set({ session: { 'a.0': null }, 'pre-key': { '1': null } });
    expect(await auth.keys.get('session', ['a.0'])).toEqual({});
    expect(await auth.keys.get('pre-key', ['1', 'missing'])).toEqual({});
  });

  test('800 prekeys in one set: one transaction, one upsert statement, readable through the cacheable store', async () => {
    const { store } = await stateStore();
    const auth = await open(store);
    const preKeys: Record<string, ReturnType<typeof Curve.generateKeyPair>> = {};
    for (let i = 1; i <= 800; i++) preKeys[String(i)] = Curve.generateKeyPair();
    const started = performance.now();
    await auth.keys.set({ 'pre-key': preKeys });
    const ms = performance.now() - started;
    const [count] = await store.sql<{ n: number }[]>`select count(*)::int as n from baileys_keys where type = 'pre-key'`;
    expect(count?.n).toBe(800);
    expect(ms).toBeLessThan(5_000);
    const cached = makeCacheableSignalKeyStore(auth.keys, quiet as never);
    const got = await cached.get('pre-key', ['1', '400', '800']);
    expect(Object.keys(got).sort()).toEqual(['1', '400', '800']);
    expect(Buffer.from(got['400']!.private).equals(Buffer.from(preKeys['400']!.private))).toBe(true);
  });

  test('a failing set writes nothing (one transaction for every type)', async () => {
    const { store } = await stateStore();
    const auth = await open(store);
    // The second type's statement fails (a constraint made for the test): the first type's write rolls back too.
    await store.sql`alter table baileys_keys add constraint no_lid_mapping check (type <> 'lid-mapping')`;
    await expect(auth.keys.set({ session: { ok: new Uint8Array([1]) }, 'lid-mapping': { x: 'y' } })).rejects.toThrow('no_lid_mapping');
    expect(await auth.keys.get('session', ['ok'])).toEqual({});
  });

  test('reset forgets keys, sent messages and the session, and saves fresh credentials', async () => {
    const { store } = await stateStore();
    const auth = await open(store);
    auth.creds.me = { id: '4915100000001:3@s.whatsapp.net' };
    await auth.saveCreds();
    await auth.keys.set({ session: { a: new Uint8Array([1]) } });
    await sentMessages(store.sql).reserve('W1', 'm1', '4915100000002');
    const oldNoise = Buffer.from(auth.creds.noiseKey.private);
    const fresh = await auth.reset();
    expect(fresh.me).toBeUndefined();
    expect(Buffer.from(fresh.noiseKey.private).equals(oldNoise)).toBe(false);
    expect(await auth.keys.get('session', ['a'])).toEqual({});
    expect(await sentMessages(store.sql).messageIdFor('W1')).toBeUndefined();
    const again = await open(store);
    expect(again.restored).toBe(false);
    expect(Buffer.from(again.creds.noiseKey.private).equals(Buffer.from(fresh.noiseKey.private))).toBe(true);
  });

  test('corrupt credentials, a damaged table or a newer format: AuthStoreError naming the problem', async () => {
    const { store } = await stateStore();
    await open(store);
    await store.sql`insert into baileys_creds (id, value) values (1, '{not json') on conflict (id) do update set value = excluded.value`;
    await expect(open(store)).rejects.toThrow(AuthStoreError);
    await expect(open(store)).rejects.toThrow('not valid JSON');

    await store.sql`update baileys_creds set value = '{"me":{"id":"x"}}'`;
    await expect(open(store)).rejects.toThrow('incomplete');

    await store.sql`delete from baileys_creds`;
    await store.sql`update baileys_schema set version = ${AUTH_SCHEMA_VERSION + 1}`;
    await expect(open(store)).rejects.toThrow(`format version ${AUTH_SCHEMA_VERSION + 1}`);

    await store.sql`update baileys_schema set version = ${AUTH_SCHEMA_VERSION}`;
    await store.sql`alter table baileys_keys drop column value`;
    await expect(open(store)).rejects.toThrow('unreadable');
  });

  test('missing tables are created again', async () => {
    const { store } = await stateStore();
    await open(store);
    await store.sql`drop table baileys_keys`;
    const auth = await open(store);
    await auth.keys.set({ session: { a: new Uint8Array([1]) } });
    expect(Object.keys(await auth.keys.get('session', ['a']))).toEqual(['a']);
  });
});

describe('sentMessages', () => {
  test('id pairs, the kept message for getMessage, undefined on a miss, pruning by age', async () => {
    const { store } = await stateStore();
    await open(store);
    const sent = sentMessages(store.sql);
    await sent.reserve('WA1', 'msg_1', '4915100000002');
    expect(await sent.waIdFor('msg_1')).toBe('WA1');
    expect(await sent.messageIdFor('WA1')).toBe('msg_1');
    expect(await sent.message('WA1')).toBeUndefined(); // reserved, not sent yet
    await sent.keep('WA1', { conversation: 'hello' });
    expect((await sent.message('WA1'))?.conversation).toBe('hello');
    expect(await sent.message('nope')).toBeUndefined();
    expect(await sent.messageIdFor('nope')).toBeUndefined();
    await store.sql`update baileys_sent_messages set created_at = now() - interval '8 days' where wa_id = 'WA1'`;
    await sent.reserve('WA2', 'msg_2', '4915100000002');
    expect(await sent.prune(7)).toBe(1);
    expect(await sent.messageIdFor('WA1')).toBeUndefined();
    expect(await sent.messageIdFor('WA2')).toBe('msg_2');
  });
});

test('initAuthCreds is what a fresh store starts from', () => {
  expect(Object.keys(initAuthCreds())).toContain('noiseKey');
});
