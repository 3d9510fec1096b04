import { afterAll, beforeAll, expect, test } from 'bun:test';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/postgres';
import { until } from '../../../tests/support/poll';
import { advanceMessage, advanceMessages, newMessageId } from './messages';

let t: TestDatabase;
let instanceId: number;
beforeAll(async () => {
  t = await createTestDatabase();
  const [user] = await t.database.sql`insert into users (email) values ('m@example.com') returning id`;
  const [inst] = await t.database.sql`insert into instances (user_id, phone_number, provider) values (${user!.id}, '4915100000001', 'sandbox') returning id`;
  instanceId = inst!.id;
});
afterAll(() => t.drop());

async function message(status = 'queued') {
  const id = newMessageId();
  await t.database.sql`insert into messages (id, instance_id, "to", type, text, status) values (${id}, ${instanceId}, '1555', 'text', 'x', ${status})`;
  return id;
}
async function row(id: string) {
  const [r] = await t.database.sql`select status, sent_at, delivered_at, read_at, failed_at, error, provider_message_id from messages where id = ${id}`;
  return r!;
}

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));

test('receipts move a message forward and fill the times they skipped', async () => {
  const id = await message();
  await advanceMessage(t.database.db, instanceId, id, 'sent', { at: at(1), providerMessageId: 'SBX1' });
  await advanceMessage(t.database.db, instanceId, id, 'read', { at: at(3) });
  const r = await row(id);
  expect(r.status).toBe('read');
  expect(r.provider_message_id).toBe('SBX1');
  expect(new Date(r.sent_at).getTime()).toBe(at(1).getTime());
  expect(new Date(r.delivered_at).getTime()).toBe(at(3).getTime());
  expect(new Date(r.read_at).getTime()).toBe(at(3).getTime());
});

test('late or repeated receipts change nothing; failed only from queued or sent', async () => {
  const id = await message();
  await advanceMessage(t.database.db, instanceId, id, 'delivered', { at: at(2) });
  await advanceMessage(t.database.db, instanceId, id, 'sent', { at: at(5) });
  await advanceMessage(t.database.db, instanceId, id, 'delivered', { at: at(6) });
  await advanceMessage(t.database.db, instanceId, id, 'failed', { at: at(7), error: 'boom' });
  const r = await row(id);
  expect(r.status).toBe('delivered');
  expect(new Date(r.sent_at).getTime()).toBe(at(2).getTime());
  expect(new Date(r.delivered_at).getTime()).toBe(at(2).getTime());
  expect(r.failed_at).toBeNull();

  const doomed = await message();
  await advanceMessage(t.database.db, instanceId, doomed, 'failed', { at: at(8), error: 'not connected' });
  await advanceMessage(t.database.db, instanceId, doomed, 'read', { at: at(9) });
  expect(await row(doomed)).toMatchObject({ status: 'failed', error: 'not connected', read_at: null });

  // Accepted, then failed (the Cloud API's 131047 outside the 24-hour window): failed, with its sent time kept.
  const refused = await message();
  await advanceMessage(t.database.db, instanceId, refused, 'sent', { at: at(10) });
  await advanceMessage(t.database.db, instanceId, refused, 'failed', { at: at(11), error: 'template_required' });
  await advanceMessage(t.database.db, instanceId, refused, 'delivered', { at: at(12) });
  const r2 = await row(refused);
  expect(r2).toMatchObject({ status: 'failed', error: 'template_required', delivered_at: null });
  expect(new Date(r2.sent_at).getTime()).toBe(at(10).getTime());
  expect(new Date(r2.failed_at).getTime()).toBe(at(11).getTime());
});

test("WhatsApp's id is kept when it comes after the status it belongs to, and changes nothing else", async () => {
  const id = await message();
  // The worker's sent event overtakes its command result, which carries the id.
  await advanceMessage(t.database.db, instanceId, id, 'sent', { at: at(1) });
  await advanceMessage(t.database.db, instanceId, id, 'delivered', { at: at(2) });
  await advanceMessage(t.database.db, instanceId, id, 'sent', { at: at(3), providerMessageId: '3EB0ABC' });
  const r = await row(id);
  expect(r).toMatchObject({ status: 'delivered', provider_message_id: '3EB0ABC' });
  expect(new Date(r.sent_at).getTime()).toBe(at(1).getTime());
  // A failure reported for a message already delivered changes nothing.
  await advanceMessage(t.database.db, instanceId, id, 'failed', { at: at(4), error: 'late', providerMessageId: '3EB0ABC' });
  expect(await row(id)).toMatchObject({ status: 'delivered', error: null, failed_at: null });
});

test('one batch updates many messages and collapses several receipts of one', async () => {
  const a = await message();
  const b = await message('sent');
  const c = await message('read');
  await advanceMessages(t.database.db, instanceId, [
    { messageId: a, status: 'sent', at: at(10) },
    { messageId: b, status: 'delivered', at: at(11) },
    { messageId: a, status: 'delivered', at: at(12) },
    { messageId: c, status: 'delivered', at: at(13) },
    { messageId: 'msg_unknown', status: 'read', at: at(14) },
  ]);
  expect((await row(a)).status).toBe('delivered');
  expect(new Date((await row(a)).sent_at).getTime()).toBe(at(10).getTime());
  expect((await row(b)).status).toBe('delivered');
  expect((await row(c)).status).toBe('read');
  await advanceMessages(t.database.db, instanceId, []);
});

test('another instance cannot move this instance\'s messages', async () => {
  const id = await message();
  await advanceMessage(t.database.db, instanceId + 1000, id, 'sent', { at: at(1) });
  expect((await row(id)).status).toBe('queued');
});

test('two batches over the same messages in opposite orders do not deadlock (a socket writes results and receipts side by side)', async () => {
  const ids = [await message(), await message(), await message()];
  // Another transaction holds the rows, so both batches wait and then take their locks at the same moment.
  let locked!: () => void;
  let release!: () => void;
  const holding = new Promise<void>((resolve) => (locked = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  const holder = t.database.sql.begin(async (tx) => {
    await tx`select id from messages where id in ${tx(ids)} for update`;
    locked();
    await released;
  });
  await holding;
  // The results of a run of sends, and the receipts of the same messages, listed the other way round.
  const results = advanceMessages(t.database.db, instanceId, ids.map((messageId) => ({ messageId, status: 'sent' as const, at: at(20), providerMessageId: `P-${messageId}` })));
  const receipts = advanceMessages(t.database.db, instanceId, [...ids].reverse().map((messageId) => ({ messageId, status: 'delivered' as const, at: at(21) })));
  await until('both batches wait for the rows', async () => {
    const [r] = await t.database.sql`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`;
    return r!.n === 2;
  }, 5_000, 10);
  release();
  await holder;
  // Without an order of locking one of them is the deadlock victim (after deadlock_timeout, 1 s) and fails.
  await Promise.all([results, receipts]);
  for (const id of ids) expect(await row(id)).toMatchObject({ status: 'delivered', provider_message_id: `P-${id}` });
  const [counted] = await t.database.sql`select count(*)::int as n from usage_ledger where source in ${t.database.sql(ids.map((id) => `sent:${id}`))}`;
  expect(counted!.n).toBe(3);
});
