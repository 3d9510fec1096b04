import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { ADMIN_SECRET, createTestApp, type TestApp } from '../../../../tests/support/app';
import { makePki } from '../../../../tests/support/tls';
import { sshKeypair } from '../../../../tests/support/sshd';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

let seq = 0;
const dockerNode = (extra: Record<string, unknown> = {}) => ({
  name: `node-${++seq}`,
  engine: 'docker',
  endpoint: 'unix:///var/run/docker.sock',
  ...extra,
});

async function addInstance(nodeId: number) {
  const user = await t.createUser();
  await t.db.database.sql`insert into instances (user_id, node_id, phone_number, provider) values (${user.id}, ${nodeId}, '15550002', 'sandbox')`;
}

test('a fresh database has the default process node `local`', async () => {
  const res = await t.call('GET', '/admin/nodes');
  expect(res.status).toBe(200);
  expect(res.body).toHaveLength(1);
  expect(res.body[0]).toMatchObject({ name: 'local', engine: 'process', endpoint: 'local', capacity: null });
});

test('node routes need the admin secret', async () => {
  expect((await t.call('GET', '/admin/nodes', { admin: false })).status).toBe(401);
  expect((await t.call('POST', '/admin/nodes', { admin: 'x', body: dockerNode() })).status).toBe(401);
  expect((await t.call('DELETE', '/admin/nodes/1', { admin: 'x' })).status).toBe(401);
});

describe('POST /admin/nodes', () => {
  test('registers a node and returns it with 200', async () => {
    const body = dockerNode({
      endpoint: 'tcp://10.0.0.5:2376',
      publicHost: 'node-a.example.com',
      labels: { region: 'eu', tier: 'gold' },
      capacity: { cpu: 4, memory: '8192m' },
    });
    const res = await t.call('POST', '/admin/nodes', { body });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      name: body.name,
      engine: 'docker',
      endpoint: 'tcp://10.0.0.5:2376',
      publicHost: 'node-a.example.com',
      labels: { region: 'eu', tier: 'gold' },
      capacity: { cpu: 4, memory: '8g' },
      status: 'unknown',
    });
    const got = await t.call('GET', `/admin/nodes/${res.body.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(res.body);
  });
  test('a process node defaults its endpoint to local', async () => {
    const res = await t.call('POST', '/admin/nodes', { body: { name: 'proc-2', engine: 'process' } });
    expect(res.status).toBe(200);
    expect(res.body.endpoint).toBe('local');
  });
  test('duplicate name is 409', async () => {
    const body = dockerNode();
    expect((await t.call('POST', '/admin/nodes', { body })).status).toBe(200);
    const res = await t.call('POST', '/admin/nodes', { body });
    expect(res.status).toBe(409);
    expect(res.body).toEqual({ error: `a node named ${body.name} already exists`, code: 'node_name_taken' });
  });
  test('bad fields are 400 naming the field', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ engine: 'docker', endpoint: 'unix:///x' }, "'name'"],
      [dockerNode({ name: 'has space' }), "'name'"],
      [dockerNode({ engine: 'kubernetes' }), "'engine'"],
      [dockerNode({ capacity: { cpu: -1 } }), "'capacity.cpu'"],
      [dockerNode({ capacity: { memory: 'lots' } }), "'capacity.memory'"],
      [dockerNode({ labels: { a: 7 } }), "'labels.a'"],
      [dockerNode({ endpoint: 42 }), "'endpoint'"],
    ];
    for (const [body, field] of cases) {
      const res = await t.call('POST', '/admin/nodes', { body });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('validation_failed');
      expect(res.body.error).toContain(field);
    }
  });
  test('an endpoint that does not fit the engine is 422 naming the field', async () => {
    const cases = [
      dockerNode({ endpoint: undefined }),
      dockerNode({ endpoint: 'not a url' }),
      dockerNode({ endpoint: 'ftp://host' }),
      dockerNode({ endpoint: 'unix://' }),
      { name: 'p-bad', engine: 'process', endpoint: 'tcp://x:1' },
    ];
    const badLabel = await t.call('POST', '/admin/nodes', { body: dockerNode({ labels: { 'bad key!': 'x' } }) });
    expect(badLabel.status).toBe(422);
    expect(badLabel.body.error).toContain("'labels.bad key!'");
    for (const body of cases) {
      const res = await t.call('POST', '/admin/nodes', { body });
      expect(res.status).toBe(422);
      expect(res.body.code).toBe('invalid_field');
      expect(res.body.error).toContain("'endpoint'");
    }
    for (const endpoint of ['ssh://root@203.0.113.7', 'tcp://docker:2376', 'unix:///run/docker.sock']) {
      expect((await t.call('POST', '/admin/nodes', { body: dockerNode({ endpoint, engine: 'swarm' }) })).status).toBe(200);
    }
  });

  test('TLS client certificates: checked on the way in, only for tcp/https endpoints, the key never returned', async () => {
    const pki = makePki();
    const tls = { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey };
    const bad = [
      [dockerNode({ tls }), "'tls'"], // unix:// socket
      [{ name: 'p-tls', engine: 'process', tls }, "'tls'"],
      [dockerNode({ endpoint: 'tcp://127.0.0.1:2376', tls: { ...tls, ca: 'nope' } }), "'tls.ca'"],
      [dockerNode({ endpoint: 'tcp://127.0.0.1:2376', tls: { ...tls, cert: pki.clientKey } }), "'tls.cert'"],
      [dockerNode({ endpoint: 'tcp://127.0.0.1:2376', tls: { ...tls, key: pki.clientCert } }), "'tls.key'"],
    ] as const;
    for (const [body, field] of bad) {
      const res = await t.call('POST', '/admin/nodes', { body });
      expect(res.status).toBe(422);
      expect(res.body.error).toContain(field);
    }
    const missingPart = await t.call('POST', '/admin/nodes', { body: dockerNode({ endpoint: 'tcp://127.0.0.1:2376', tls: { ca: pki.ca } }) });
    expect(missingPart.status).toBe(400);

    const ok = await t.call('POST', '/admin/nodes', { body: dockerNode({ endpoint: 'tcp://127.0.0.1:2376', tls }) });
    expect(ok.status).toBe(200);
    expect(ok.body.tls).toBe(true);
    expect(JSON.stringify(ok.body)).not.toContain('BEGIN');
    // Moving the node to a unix socket drops the certificate it cannot use.
    const movedTo = 'unix:///var/run/docker.sock';
    const moved = await t.call('PUT', `/admin/nodes/${ok.body.id}`, { body: { endpoint: movedTo } });
    expect(moved.status).toBe(200);
    expect(moved.body.tls).toBe(false);
  });

  test('SSH logins: checked on the way in, only for ssh:// endpoints, the key never returned', async () => {
    const plain = sshKeypair();
    const locked = sshKeypair('hunter2');
    const endpoint = 'ssh://root@127.0.0.1:2222';
    const bad = [
      [dockerNode({ ssh: { privateKey: plain.privateKey } }), 422, "'ssh'"], // unix:// socket
      [dockerNode({ endpoint, ssh: { privateKey: 'nope' } }), 422, "'ssh.privateKey'"],
      [dockerNode({ endpoint, ssh: { privateKey: plain.publicKey } }), 422, "'ssh.privateKey'"],
      [dockerNode({ endpoint, ssh: { privateKey: locked.privateKey } }), 422, "'ssh.privateKey'"],
      [dockerNode({ endpoint, ssh: { privateKey: locked.privateKey, passphrase: 'wrong' } }), 422, 'with that passphrase'],
      [dockerNode({ endpoint, ssh: { privateKey: plain.privateKey, hostKey: 'md5:aa' } }), 400, "'ssh.hostKey'"],
    ] as const;
    for (const [body, status, text] of bad) {
      const res = await t.call('POST', '/admin/nodes', { body });
      expect([res.status, res.body.error]).toEqual([status, expect.stringContaining(text)]);
    }
    const ok = await t.call('POST', '/admin/nodes', { body: dockerNode({ endpoint, ssh: { privateKey: locked.privateKey, passphrase: 'hunter2' } }) });
    expect(ok.status).toBe(200);
    expect(ok.body.ssh).toEqual({ hostKey: null });
    expect(JSON.stringify(ok.body)).not.toContain('PRIVATE KEY');
    expect(JSON.stringify(ok.body)).not.toContain('hunter2');
    const cleared = await t.call('PUT', `/admin/nodes/${ok.body.id}`, { body: { ssh: null } });
    expect(cleared.body.ssh).toBeNull();
  });
});

describe('GET /admin/nodes/:id', () => {
  test('unknown id is 404, bad id is 400', async () => {
    const res = await t.call('GET', '/admin/nodes/424242');
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: 'node 424242 not found', code: 'not_found' });
    expect((await t.call('GET', '/admin/nodes/zero')).status).toBe(400);
    expect((await t.call('GET', '/admin/nodes/0')).status).toBe(400);
  });
});

describe('PUT /admin/nodes/:id', () => {
  test('updates only the given fields', async () => {
    const created = (await t.call('POST', '/admin/nodes', { body: dockerNode({ labels: { a: '1' }, capacity: { cpu: 2, memory: '2g' } }) })).body;
    const res = await t.call('PUT', `/admin/nodes/${created.id}`, { body: { labels: { b: '2' }, publicHost: '198.51.100.4' } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      name: created.name,
      endpoint: created.endpoint,
      labels: { b: '2' },
      publicHost: '198.51.100.4',
      capacity: { cpu: 2, memory: '2g' },
    });
    expect(new Date(res.body.updatedAt).getTime()).toBeGreaterThanOrEqual(new Date(created.updatedAt).getTime());
    const cleared = await t.call('PUT', `/admin/nodes/${created.id}`, { body: { capacity: null } });
    expect(cleared.body.capacity).toBeNull();
    const renamed = await t.call('PUT', `/admin/nodes/${created.id}`, { body: { name: 'renamed-node' } });
    expect(renamed.body.name).toBe('renamed-node');
  });
  test('renaming onto a taken name is 409, unknown id 404, empty body 400', async () => {
    const a = (await t.call('POST', '/admin/nodes', { body: dockerNode() })).body;
    const b = (await t.call('POST', '/admin/nodes', { body: dockerNode() })).body;
    const res = await t.call('PUT', `/admin/nodes/${b.id}`, { body: { name: a.name } });
    expect(res.status).toBe(409);
    expect(res.body.code).toBe('node_name_taken');
    expect((await t.call('PUT', '/admin/nodes/999999', { body: { name: 'x' } })).status).toBe(404);
    expect((await t.call('PUT', `/admin/nodes/${b.id}`, { body: {} })).status).toBe(400);
  });
  test('switching engine checks the endpoint again', async () => {
    const node = (await t.call('POST', '/admin/nodes', { body: { name: 'switch-me', engine: 'process' } })).body;
    const bad = await t.call('PUT', `/admin/nodes/${node.id}`, { body: { engine: 'docker' } });
    expect(bad.status).toBe(422);
    expect(bad.body.error).toContain("'endpoint'");
    const good = await t.call('PUT', `/admin/nodes/${node.id}`, { body: { engine: 'docker', endpoint: 'unix:///var/run/docker.sock' } });
    expect(good.status).toBe(200);
    expect(good.body).toMatchObject({ engine: 'docker', endpoint: 'unix:///var/run/docker.sock' });
  });
  test('the engine of a node with instances cannot change', async () => {
    const node = (await t.call('POST', '/admin/nodes', { body: dockerNode() })).body;
    await addInstance(node.id);
    const res = await t.call('PUT', `/admin/nodes/${node.id}`, { body: { engine: 'swarm' } });
    expect(res.status).toBe(409);
    expect(res.body.code).toBe('node_in_use');
  });
});

describe('node bodies are checked as sent', () => {
  const stored = async (id: number) => (await t.db.database.sql`select * from nodes where id = ${id}`)[0];
  const noNode = async (name: string) => expect((await t.db.database.sql`select 1 from nodes where name = ${name}`).length).toBe(0);

  test('labels must be an object of strings: a string or a list is 400 naming labels, the stored labels stay', async () => {
    const node = (await t.call('POST', '/admin/nodes', { body: dockerNode({ labels: { zone: 'a' }, capacity: { cpu: 2, memory: '1g' } }) })).body;
    const before = await stored(node.id);
    for (const labels of ['abc', ['x'], 5, null, true]) {
      const res = await t.call('PUT', `/admin/nodes/${node.id}`, { body: { labels } });
      expect([labels, res.status, res.body]).toEqual([labels, 400, { error: "invalid field 'labels': must be an object of up to 64 labels, each a string value", code: 'validation_failed' }]);
      const body = dockerNode({ labels });
      const created = await t.call('POST', '/admin/nodes', { body });
      expect([labels, created.status, created.body.error]).toEqual([labels, 400, expect.stringContaining("'labels'")]);
      await noNode(body.name);
    }
    expect(await stored(node.id)).toEqual(before);
    expect((await t.call('GET', `/admin/nodes/${node.id}`)).body.labels).toEqual({ zone: 'a' });
  });

  test('a capacity not of the shape {cpu?, memory?} is 400 naming capacity and leaves the stored capacity alone', async () => {
    const node = (await t.call('POST', '/admin/nodes', { body: dockerNode({ capacity: { cpu: 2, memory: '1g' } }) })).body;
    const before = await stored(node.id);
    const cases: [string, string][] = [
      ['5', 'capacity'],
      ['"abc"', 'capacity'],
      ['9223372036854775808', 'capacity'],
      ['[]', 'capacity'],
      ['true', 'capacity'],
      ['{}', 'capacity'],
      ['{"cpu":2,"cores":4}', 'capacity.cores'],
      ['{"cpu":"2"}', 'capacity.cpu'],
    ];
    for (const [capacity, field] of cases) {
      const res = await t.call('PUT', `/admin/nodes/${node.id}`, { raw: `{"capacity":${capacity}}` });
      expect([capacity, res.status, res.body.code]).toEqual([capacity, 400, 'validation_failed']);
      expect(res.body.error).toStartWith(`invalid field '${field}': `);
      const name = `node-${++seq}`;
      const created = await t.call('POST', '/admin/nodes', { raw: `{"name":"${name}","engine":"process","capacity":${capacity}}` });
      expect([capacity, created.status, created.body.error]).toEqual([capacity, 400, expect.stringContaining(`'${field}'`)]);
      await noNode(name);
    }
    expect((await t.call('PUT', `/admin/nodes/${node.id}`, { raw: '{"capacity":5}' })).body.error).toBe(
      "invalid field 'capacity': must be an object {cpu?, memory?} with at least one of them, or null (no configured capacity)",
    );
    expect(await stored(node.id)).toEqual(before);
    expect((await t.call('GET', `/admin/nodes/${node.id}`)).body.capacity).toEqual({ cpu: 2, memory: '1g' });
  });

  test('an unknown field, a body that is not a JSON object or not JSON is 400; nothing changes', async () => {
    const node = (await t.call('POST', '/admin/nodes', { body: dockerNode({ capacity: { cpu: 2, memory: '1g' } }) })).body;
    const before = await stored(node.id);
    const unknown = await t.call('PUT', `/admin/nodes/${node.id}`, { body: { name: 'renamed', cpu: 4 } });
    expect(unknown.status).toBe(400);
    expect(unknown.body).toEqual({ error: "invalid field 'cpu': unknown field; one of name, engine, endpoint, publicHost, labels, capacity, network, tls, ssh", code: 'validation_failed' });
    const body = dockerNode({ capacityCpu: 4 });
    const created = await t.call('POST', '/admin/nodes', { body });
    expect(created.status).toBe(400);
    expect(created.body.error).toStartWith("invalid field 'capacityCpu': unknown field");
    await noNode(body.name);
    const empty = await t.call('PUT', `/admin/nodes/${node.id}`, { body: {} });
    expect(empty.body).toEqual({ error: 'nothing to change: give at least one of name, engine, endpoint, publicHost, labels, capacity, network, tls, ssh', code: 'validation_failed' });
    for (const raw of ['null', '[]', '"x"']) {
      const res = await t.call('PUT', `/admin/nodes/${node.id}`, { raw });
      expect([raw, res.status, res.body.code]).toEqual([raw, 400, 'invalid_body']);
    }
    const plain = await t.app.handle(
      new Request(`http://wgs.test/admin/nodes/${node.id}`, { method: 'PUT', headers: { 'x-admin-api-secret': ADMIN_SECRET, 'content-type': 'text/plain' }, body: '{"capacity":null}' }),
    );
    expect(plain.status).toBe(400);
    expect(await plain.json()).toEqual({ error: 'request body must be a JSON object sent as content-type application/json, not text/plain', code: 'invalid_body' });
    expect(await stored(node.id)).toEqual(before);
  });
});

describe('DELETE /admin/nodes/:id', () => {
  test('deletes a node without instances', async () => {
    const node = (await t.call('POST', '/admin/nodes', { body: dockerNode() })).body;
    const res = await t.call('DELETE', `/admin/nodes/${node.id}`);
    expect(res.status).toBe(204);
    expect((await t.call('GET', `/admin/nodes/${node.id}`)).status).toBe(404);
    expect((await t.call('DELETE', `/admin/nodes/${node.id}`)).status).toBe(404);
  });
  test('a node with instances is 409 with the documented message', async () => {
    const node = (await t.call('POST', '/admin/nodes', { body: dockerNode() })).body;
    await addInstance(node.id);
    const res = await t.call('DELETE', `/admin/nodes/${node.id}`);
    expect(res.status).toBe(409);
    expect(res.body).toEqual({ error: 'Cannot delete node because it has instances assigned to it.', code: 'node_in_use' });
    expect((await t.call('GET', `/admin/nodes/${node.id}`)).status).toBe(200);
  });
});

describe('GET /admin/nodes/loads and /admin/nodes/:id/instances', () => {
  test('reserved CPU and memory sum the limits placed on a node, a moving instance counting on both; the instance list shows both directions', async () => {
    const a = (await t.call('POST', '/admin/nodes', { body: dockerNode({ capacity: { cpu: 4, memory: '2g' } }) })).body;
    const b = (await t.call('POST', '/admin/nodes', { body: dockerNode() })).body;
    const user = await t.createUser();
    const sql = t.db.database.sql;
    const [stay] = await sql`insert into instances (user_id, node_id, phone_number, provider, cpu_limit, memory_limit)
      values (${user.id}, ${a.id}, '15550101', 'sandbox', '0.5', '512m') returning id`;
    const [moving] = await sql`insert into instances (user_id, node_id, target_node_id, phone_number, provider, cpu_limit, memory_limit)
      values (${user.id}, ${a.id}, ${b.id}, '15550102', 'sandbox', '1', '256m') returning id`;
    await sql`insert into instances (user_id, node_id, phone_number, provider) values (${user.id}, ${b.id}, '15550103', 'sandbox')`;

    const res = await t.call('GET', '/admin/nodes/loads');
    expect(res.status).toBe(200);
    const byId = new Map(res.body.map((l: { id: number }) => [l.id, l]));
    expect(byId.get(a.id)).toEqual({
      id: a.id,
      name: a.name,
      instances: 2,
      reserved: { cpu: 1.5, memoryBytes: 768 * 1024 * 1024 },
      capacity: { cpu: 4, memoryBytes: 2 * 1024 * 1024 * 1024 },
    });
    // The moving instance holds its place on its target; an instance without limits reserves nothing; no capacity: null.
    expect(byId.get(b.id)).toEqual({ id: b.id, name: b.name, instances: 2, reserved: { cpu: 1, memoryBytes: 256 * 1024 * 1024 }, capacity: { cpu: null, memoryBytes: null } });
    // Every node is listed, in id order.
    expect(res.body.map((l: { id: number }) => l.id)).toEqual((await t.call('GET', '/admin/nodes')).body.map((n: { id: number }) => n.id));

    const onA = await t.call('GET', `/admin/nodes/${a.id}/instances`);
    expect(onA.status).toBe(200);
    expect(onA.body.map((i: { id: number }) => i.id)).toEqual([stay!.id, moving!.id]);
    expect(onA.body[0]).toEqual({ id: stay!.id, userId: user.id, name: null, phone: '15550101', provider: 'sandbox', status: 'creating', state: 'starting', nodeId: a.id, targetNodeId: null });
    const onB = await t.call('GET', `/admin/nodes/${b.id}/instances`);
    expect(onB.body).toHaveLength(2);
    expect(onB.body[0]).toMatchObject({ id: moving!.id, nodeId: a.id, targetNodeId: b.id });
  });
  test('need the admin secret; an unknown node is 404', async () => {
    expect((await t.call('GET', '/admin/nodes/loads', { admin: false })).status).toBe(401);
    expect((await t.call('GET', '/admin/nodes/1/instances', { admin: false })).status).toBe(401);
    expect((await t.call('GET', '/admin/nodes/999999/instances')).status).toBe(404);
  });
});
