import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { createTestApp, type TestApp } from '../../../../tests/support/app';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

describe('admin authentication', () => {
  test('missing secret is 401', async () => {
    const res = await t.call('GET', '/admin/users', { admin: false });
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'missing X-Admin-API-Secret header', code: 'unauthorized' });
  });
  test('wrong secret is 401, also before body validation', async () => {
    expect((await t.call('GET', '/admin/users', { admin: 'nope' })).status).toBe(401);
    const res = await t.call('POST', '/admin/users', { admin: 'nope', raw: '{broken' });
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('unauthorized');
  });
  test('an API key is not an admin secret', async () => {
    const user = await t.createUser();
    expect((await t.call('GET', '/admin/users', { admin: user.apiKey })).status).toBe(401);
  });
});

describe('POST /admin/users', () => {
  test('creates a user with a wgs_ key, shown once', async () => {
    const res = await t.call('POST', '/admin/users', { body: { email: 'Alice@Example.com' } });
    expect(res.status).toBe(201);
    expect(typeof res.body.id).toBe('number');
    expect(res.body.email).toBe('alice@example.com');
    expect(res.body.apiKey).toMatch(/^wgs_[A-Za-z0-9_-]{43}$/);
    const list = await t.call('GET', '/admin/users');
    const listed = list.body.find((u: { id: number }) => u.id === res.body.id);
    expect(JSON.stringify(list.body)).not.toContain(res.body.apiKey);
    expect(listed.keys).toHaveLength(1);
    expect(res.body.apiKey.startsWith(listed.keys[0].prefix)).toBe(true);
  });
  test('duplicate email (any case) is 409', async () => {
    await t.createUser('dup@example.com');
    const res = await t.call('POST', '/admin/users', { body: { email: 'DUP@example.com' } });
    expect(res.status).toBe(409);
    expect(res.body).toEqual({ error: 'a user with email dup@example.com already exists', code: 'email_taken' });
  });
  test('missing email names the field', async () => {
    const res = await t.call('POST', '/admin/users', { body: {} });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: "invalid field 'email': is required", code: 'validation_failed' });
  });
  test('invalid email names the field', async () => {
    for (const email of ['not-an-email', 42, '', `${'a'.repeat(250)}@x.io`]) {
      const res = await t.call('POST', '/admin/users', { body: { email } });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('validation_failed');
      expect(res.body.error).toContain("'email'");
    }
  });
  test('malformed JSON is 400', async () => {
    const res = await t.call('POST', '/admin/users', { raw: '{"email":' });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'request body is not valid JSON', code: 'invalid_body' });
  });
  test('keys are stored only as SHA-256 hashes', async () => {
    const user = await t.createUser();
    const rows = await t.db.database.sql`select * from api_keys where user_id = ${user.id}`;
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows)).not.toContain(user.apiKey);
    expect(rows[0]!.hash).toBe(createHash('sha256').update(user.apiKey).digest('hex'));
  });
});

describe('key rotation', () => {
  test('a second key works beside the first; revoking one leaves the other', async () => {
    const user = await t.createUser();
    const second = await t.call('POST', `/admin/users/${user.id}/keys`);
    expect(second.status).toBe(201);
    expect(second.body.apiKey).toMatch(/^wgs_/);
    expect(second.body.apiKey).not.toBe(user.apiKey);
    for (const key of [user.apiKey, second.body.apiKey]) {
      expect((await t.call('GET', '/api/me', { key })).body).toMatchObject({ id: user.id, email: user.email });
    }
    const revoke = await t.call('DELETE', `/admin/users/${user.id}/keys/${user.keyId}`);
    expect(revoke.status).toBe(204);
    expect(revoke.body).toBeNull();
    expect((await t.call('GET', '/api/me', { key: user.apiKey })).status).toBe(401);
    expect((await t.call('GET', '/api/me', { key: second.body.apiKey })).status).toBe(200);
  });
  test('keys of an unknown user, or another user\'s key, are 404', async () => {
    const a = await t.createUser();
    const b = await t.createUser();
    expect((await t.call('POST', '/admin/users/999999/keys')).status).toBe(404);
    const res = await t.call('DELETE', `/admin/users/${a.id}/keys/${b.keyId}`);
    expect(res.status).toBe(404);
    expect(res.body.code).toBe('not_found');
    expect((await t.call('GET', '/api/me', { key: b.apiKey })).status).toBe(200);
  });
  test('non-numeric ids are 400 naming the parameter', async () => {
    const res = await t.call('DELETE', '/admin/users/1/keys/abc');
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: "invalid path parameter 'keyId': must be a positive integer", code: 'validation_failed' });
    expect((await t.call('DELETE', '/admin/users/99999999999')).status).toBe(400);
  });
});

describe('DELETE /admin/users/:id', () => {
  test('deletes the user and its keys', async () => {
    const user = await t.createUser();
    expect((await t.call('DELETE', `/admin/users/${user.id}`)).status).toBe(204);
    expect((await t.call('GET', '/api/me', { key: user.apiKey })).status).toBe(401);
    expect((await t.db.database.sql`select 1 from api_keys where user_id = ${user.id}`).length).toBe(0);
    expect((await t.call('DELETE', `/admin/users/${user.id}`)).status).toBe(404);
  });
  test('a user with instances is 409', async () => {
    const user = await t.createUser();
    await t.db.database.sql`insert into instances (user_id, phone_number, provider) values (${user.id}, '15550001', 'sandbox')`;
    const res = await t.call('DELETE', `/admin/users/${user.id}`);
    expect(res.status).toBe(409);
    expect(res.body.code).toBe('user_has_instances');
    expect((await t.call('GET', '/api/me', { key: user.apiKey })).status).toBe(200);
  });
});
