import { Elysia, t } from 'elysia';
import { asc, count, eq, or, sql } from 'drizzle-orm';
import type { AppDeps } from '../../http/context';
import { adminSecurity } from '../../http/auth';
import { conflict, errorResponses, noContent, FOREIGN_KEY_VIOLATION, notFound, sqlState, UNIQUE_VIOLATION } from '../../http/errors';
import { IdParams } from '../../http/params';
import { strictJsonBody } from '../../http/json-body';
import { instances, nodes, type Node } from '../../db/schema';
import { nodeLoads } from '../../scheduler/loads';
import { capacityColumns, checkEndpoint, checkLabels, CreateNodeBody, NodeView, sshColumns, takesSsh, takesTls, tlsColumns, toNodeView, UpdateNodeBody } from '../../nodes/node-input';

const NodeLoadView = t.Object({
  id: t.Integer({ description: 'node id' }),
  name: t.String(),
  instances: t.Integer({ description: 'instances placed on the node, counting those moving onto it' }),
  reserved: t.Object(
    { cpu: t.Number({ description: 'cores' }), memoryBytes: t.Integer() },
    { description: 'sum of the limits of those instances, as the scheduler counts them' },
  ),
  capacity: t.Object(
    { cpu: t.Nullable(t.Number({ description: 'cores' })), memoryBytes: t.Nullable(t.Integer()) },
    { description: 'configured capacity, else what the node reported; null: unlimited (the scheduler does not count it)' },
  ),
});

const NodeInstanceView = t.Object({
  id: t.Integer(),
  userId: t.Integer(),
  name: t.Nullable(t.String()),
  phone: t.String(),
  provider: t.String(),
  status: t.String(),
  state: t.String(),
  nodeId: t.Nullable(t.Integer({ description: 'the node the instance is on' })),
  targetNodeId: t.Nullable(t.Integer({ description: 'while it moves: the node it moves to' })),
});

const NODE_IN_USE = 'Cannot delete node because it has instances assigned to it.';

const nameTaken = (name: string) => conflict('node_name_taken', `a node named ${name} already exists`);

function rethrowUnique(name: string | undefined) {
  return (err: unknown): never => {
    if (sqlState(err) === UNIQUE_VIOLATION) throw nameTaken(name ?? '');
    throw err;
  };
}

export function adminNodeRoutes({ database, secrets, migrator }: AppDeps) {
  const { db } = database;

  async function instanceCount(nodeId: number): Promise<number> {
    const [row] = await db.select({ n: count() }).from(instances).where(eq(instances.nodeId, nodeId));
    return row!.n;
  }

  /** The node with this gateway's drain progress, when it has drained the node. */
  async function nodeView(node: Node) {
    const progress = migrator.progress(node.id);
    return toNodeView(node, progress ? { ...progress, remaining: await instanceCount(node.id) } : null);
  }

  async function findNode(id: number) {
    const node = await db.query.nodes.findFirst({ where: eq(nodes.id, id) });
    if (!node) throw notFound(`node ${id}`);
    return node;
  }

  return new Elysia({ name: 'admin-nodes', prefix: '/admin/nodes', detail: { tags: ['admin'], security: adminSecurity } })
    .post(
      '',
      async ({ body }) => {
        const endpoint = checkEndpoint(body.engine, body.endpoint);
        const [node] = await db
          .insert(nodes)
          .values({
            name: body.name,
            engine: body.engine,
            endpoint,
            publicHost: body.publicHost ?? null,
            network: body.network ?? null,
            labels: checkLabels(body.labels ?? {}),
            ...capacityColumns(body.capacity ?? null),
            ...tlsColumns(body.engine, endpoint, body.tls ?? null, secrets),
            ...sshColumns(body.engine, endpoint, body.ssh ?? null, secrets),
          })
          .returning()
          .catch(rethrowUnique(body.name));
        return toNodeView(node!);
      },
      {
        body: CreateNodeBody,
        transform: strictJsonBody(CreateNodeBody),
        detail: { summary: 'Register a node (an engine endpoint where workers run)' },
        response: { 200: NodeView, ...errorResponses(400, 401, 409, 422) },
      },
    )
    .get(
      '', async () => Promise.all((await db.select().from(nodes).orderBy(asc(nodes.id))).map(nodeView)), {
      detail: { summary: 'List nodes' },
      response: { 200: t.Array(NodeView), ...errorResponses(401) },
    })
    .get(
      '/loads',
      async () =>
        (await nodeLoads(db))
          .sort((a, b) => a.id - b.id)
          .map((l) => ({
            id: l.id,
            name: l.name,
            instances: l.used.instances,
            reserved: { cpu: l.used.millicpu / 1000, memoryBytes: l.used.memoryBytes },
            capacity: { cpu: l.capacity.millicpu === null ? null : l.capacity.millicpu / 1000, memoryBytes: l.capacity.memoryBytes },
          })),
      {
        detail: {
          summary: 'What each node holds: instances and reserved CPU/memory against its capacity',
          description:
            "Reservations as placement counts them: an instance's `resources` limits count on its node and, while it moves, on its target too. " +
            'Instances without limits count in `instances` but reserve nothing.',
        },
        response: { 200: t.Array(NodeLoadView), ...errorResponses(401) },
      },
    )
    .get('/:id', async ({ params }) => nodeView(await findNode(params.id)), {
      params: IdParams,
      detail: { summary: 'Get a node' },
      response: { 200: NodeView, ...errorResponses(400, 401, 404) },
    })
    .get(
      '/:id/instances',
      async ({ params }) => {
        await findNode(params.id);
        return db
          .select({
            id: instances.id,
            userId: instances.userId,
            name: instances.name,
            phone: instances.phoneNumber,
            provider: instances.provider,
            status: instances.status,
            state: instances.state,
            nodeId: instances.nodeId,
            targetNodeId: instances.targetNodeId,
          })
          .from(instances)
          .where(or(eq(instances.nodeId, params.id), eq(instances.targetNodeId, params.id)))
          .orderBy(asc(instances.id));
      },
      {
        params: IdParams,
        detail: {
          summary: "The instances on a node, of every tenant, and those moving onto it",
          description: 'An instance moving away still has `nodeId` here and `targetNodeId` elsewhere; one moving here has `targetNodeId` set to this node. Follow a drain with it.',
        },
        response: { 200: t.Array(NodeInstanceView), ...errorResponses(400, 401, 404) },
      },
    )
    .put(
      '/:id',
      async ({ params, body }) => {
        const current = await findNode(params.id);
        const engine = body.engine ?? current.engine;
        if (engine !== current.engine && (await instanceCount(current.id)) > 0) {
          throw conflict('node_in_use', 'Cannot change the engine of a node that has instances assigned to it.');
        }
        const endpointChanged = body.endpoint !== undefined || engine !== current.engine;
        const endpoint = endpointChanged
          ? // Switching engine without a new endpoint keeps none of the old one.
            checkEndpoint(engine, body.endpoint ?? (engine === current.engine ? current.endpoint : undefined))
          : current.endpoint;
        // Certificates stay with the endpoint they were given for, unless the request brings new ones.
        const tls =
          body.tls !== undefined
            ? tlsColumns(engine, endpoint, body.tls, secrets)
            : endpointChanged && current.tlsKeyEncrypted !== null && !takesTls(engine, endpoint)
              ? tlsColumns(engine, endpoint, null, secrets)
              : {};
        const ssh =
          body.ssh !== undefined
            ? sshColumns(engine, endpoint, body.ssh, secrets)
            : endpointChanged && current.sshKeyEncrypted !== null && !takesSsh(engine, endpoint)
              ? sshColumns(engine, endpoint, null, secrets)
              : {};
        const [node] = await db
          .update(nodes)
          .set({
            ...(body.name !== undefined && { name: body.name }),
            engine,
            endpoint,
            ...tls,
            ...ssh,
            ...(body.publicHost !== undefined && { publicHost: body.publicHost }),
            ...(body.network !== undefined && { network: body.network }),
            ...(body.labels !== undefined && { labels: checkLabels(body.labels) }),
            ...(body.capacity !== undefined && capacityColumns(body.capacity)),
            updatedAt: sql`now()`,
          })
          .where(eq(nodes.id, params.id))
          .returning()
          .catch(rethrowUnique(body.name));
        if (!node) throw notFound(`node ${params.id}`);
        return nodeView(node);
      },
      {
        params: IdParams,
        body: UpdateNodeBody,
        transform: strictJsonBody(UpdateNodeBody),
        detail: {
          summary: 'Update some fields of a node; `capacity: null` clears the configured capacity',
          description: '400 naming a bad or unknown field (nothing is changed), for `{}`, and for a body that is not a JSON object sent as application/json.',
        },
        response: { 200: NodeView, ...errorResponses(400, 401, 404, 409, 422) },
      },
    )
    .post(
      '/:id/drain',
      async ({ params }) => {
        await findNode(params.id);
        await migrator.drain(params.id);
        return nodeView(await findNode(params.id));
      },
      {
        params: IdParams,
        detail: {
          summary: 'Drain a node: nothing new is placed there and its instances move to other nodes',
          description:
            'Answers at once with `draining: true`; the moves run in the background, a few at a time, and `drain` in GET /admin/nodes/:id shows progress. ' +
            'Once `remaining` is 0 the node can be deleted.',
        },
        response: { 200: NodeView, ...errorResponses(400, 401, 404) },
      },
    )
    .post(
      '/:id/undrain',
      async ({ params }) => {
        await findNode(params.id);
        await migrator.undrain(params.id);
        return nodeView(await findNode(params.id));
      },
      {
        params: IdParams,
        detail: { summary: 'Take a drained node back: it takes instances again; moves under way finish' },
        response: { 200: NodeView, ...errorResponses(400, 401, 404) },
      },
    )
    .delete(
      '/:id',
      async ({ params, set }) => {
        await findNode(params.id);
        if ((await instanceCount(params.id)) > 0) throw conflict('node_in_use', NODE_IN_USE);
        await db
          .delete(nodes)
          .where(eq(nodes.id, params.id))
          .catch((err) => {
            throw sqlState(err) === FOREIGN_KEY_VIOLATION ? conflict('node_in_use', NODE_IN_USE) : err;
          });
        set.status = 204;
      },
      {
        params: IdParams,
        detail: { summary: 'Delete a node that has no instances'},
        response: { ...noContent, ...errorResponses(400, 401, 404, 409) },
      },
    );
}
