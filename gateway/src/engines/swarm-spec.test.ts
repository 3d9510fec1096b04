import { describe, expect, test } from 'bun:test';
import { CONTAINER_CA_FILE, LABELS } from './docker-spec';
import {
  constraintsFor,
  isUp,
  latestTask,
  nodeMatches,
  serviceImage,
  serviceSpec,
  STOP_GRACE_NS,
  swarmCapacity,
  taskExit,
  taskReason,
  type SwarmNode,
} from './swarm-spec';

const spec = {
  instanceId: 12,
  name: 'Support Line #1',
  provider: 'sandbox',
  env: { WGS_INSTANCE_ID: '12', WGS_WORKER_TOKEN: 'secret-token' },
  resources: { cpu: '0.5', memory: '512m' },
};
const node = { name: 'swarm-eu', network: 'host', labels: { zone: 'eu-1', 'node.hostname': 'vps-3' } };

describe('service spec', () => {
  test('one replica, limits and reservations, labels, constraints, restart none, init, host network, environment', () => {
    const s = serviceSpec(spec, node, { image: 'sha256:' + 'a'.repeat(64), gatewayId: 'gw-a' });
    expect(s.Name).toBe('wgs-gw-a-12-support-line-1');
    expect(s.Mode).toEqual({ Replicated: { Replicas: 1 } });
    expect(s.Labels).toEqual({ [LABELS.instance]: '12', [LABELS.node]: 'swarm-eu', [LABELS.provider]: 'sandbox', [LABELS.gateway]: 'gw-a' });
    const task = s.TaskTemplate as import('dockerode').ContainerTaskSpec;
    const limits = { NanoCPUs: 500_000_000, MemoryBytes: 512 * 1024 * 1024 };
    expect(task.Resources).toEqual({ Limits: limits, Reservations: limits });
    expect(task.RestartPolicy).toEqual({ Condition: 'none' });
    expect(task.Placement).toEqual({ Constraints: ['node.hostname==vps-3', 'node.labels.zone==eu-1'] });
    expect(task.Networks).toEqual([{ Target: 'host' }]);
    expect(task.ContainerSpec).toEqual({
      Image: 'sha256:' + 'a'.repeat(64),
      Env: ['WGS_INSTANCE_ID=12', 'WGS_WORKER_TOKEN=secret-token'],
      // No gateway label on the containers: a docker engine on the same daemon lists containers by it.
      Labels: { [LABELS.instance]: '12', [LABELS.node]: 'swarm-eu', [LABELS.provider]: 'sandbox' },
      Init: true,
      StopGracePeriod: STOP_GRACE_NS,
    });
    // The default installation keeps the plain wgs-<id>[-name], as containers do.
    expect(serviceSpec(spec, node, { image: 'i', gatewayId: 'wgs' }).Name).toBe('wgs-12-support-line-1');
  });

  test('no limits, no constraints, a named network and a command', () => {
    const s = serviceSpec({ ...spec, resources: undefined }, { name: 'n', network: 'wgs-overlay', labels: {} }, { image: 'i', gatewayId: 'g', cmd: ['-e', 'x'] });
    const task = s.TaskTemplate as import('dockerode').ContainerTaskSpec;
    expect(task.Resources).toEqual({});
    expect(task.Placement).toBeUndefined();
    expect(task.Networks).toEqual([{ Target: 'wgs-overlay' }]);
    expect(task.ContainerSpec!.Args).toEqual(['-e', 'x']);
  });

  test('a CA bundle is bind-mounted read-only and named by SSL_CERT_FILE and NODE_EXTRA_CA_CERTS', () => {
    const task = serviceSpec({ ...spec, caFile: '/srv/ca.pem' }, node, { image: 'i', gatewayId: 'g' }).TaskTemplate as import('dockerode').ContainerTaskSpec;
    expect(task.ContainerSpec!.Mounts).toEqual([{ Type: 'bind', Source: '/srv/ca.pem', Target: CONTAINER_CA_FILE, ReadOnly: true }]);
    expect(task.ContainerSpec!.Env).toContain(`SSL_CERT_FILE=${CONTAINER_CA_FILE}`);
    expect(task.ContainerSpec!.Env).toContain(`NODE_EXTRA_CA_CERTS=${CONTAINER_CA_FILE}`);
  });

  test('bad limits are typed errors', () => {
    expect(() => serviceSpec({ ...spec, resources: { cpu: 'lots' } }, node, { image: 'i', gatewayId: 'g' })).toThrow(
      expect.objectContaining({ name: 'EngineError', code: 'start_failed' }),
    );
  });
});

describe('placement constraints', () => {
  test('labels are swarm node labels; constraint keys pass through', () => {
    expect(constraintsFor({})).toEqual([]);
    expect(constraintsFor({ zone: 'b', 'node.role': 'worker', 'node.labels.disk': 'ssd', 'engine.labels.gpu': 'no', 'node.id': 'x1' })).toEqual([
      'engine.labels.gpu==no',
      'node.id==x1',
      'node.labels.disk==ssd',
      'node.labels.zone==b',
      'node.role==worker',
    ]);
    // Not a constraint attribute: a label named like one.
    expect(constraintsFor({ 'node.colour': 'red' })).toEqual(['node.labels.node.colour==red']);
  });

  const nodes: SwarmNode[] = [
    {
      ID: 'n1',
      Spec: { Role: 'manager', Availability: 'active', Labels: { zone: 'a' } },
      Description: { Hostname: 'VPS-1', Resources: { NanoCPUs: 2_000_000_000, MemoryBytes: 4 * 2 ** 30 } },
      Status: { State: 'ready' },
    },
    {
      ID: 'n2',
      Spec: { Role: 'worker', Availability: 'active', Labels: { zone: 'b' } },
      Description: { Hostname: 'vps-2', Resources: { NanoCPUs: 4_000_000_000, MemoryBytes: 8 * 2 ** 30 } },
      Status: { State: 'ready' },
    },
    {
      ID: 'n3',
      Spec: { Role: 'worker', Availability: 'drain', Labels: { zone: 'b' } },
      Description: { Hostname: 'vps-3', Resources: { NanoCPUs: 4_000_000_000, MemoryBytes: 8 * 2 ** 30 } },
      Status: { State: 'ready' },
    },
    {
      ID: 'n4',
      Spec: { Role: 'worker', Availability: 'active', Labels: { zone: 'b' } },
      Description: { Hostname: 'vps-4', Resources: { NanoCPUs: 1_000_000_000, MemoryBytes: 2 ** 30 } },
      Status: { State: 'down' },
    },
  ];

  test('nodes match by hostname (any case), id, role and labels', () => {
    expect(nodeMatches(nodes[0]!, ['node.hostname==vps-1'])).toBe(true);
    expect(nodeMatches(nodes[0]!, ['node.id==n1', 'node.role==manager', 'node.labels.zone==a'])).toBe(true);
    expect(nodeMatches(nodes[0]!, ['node.labels.zone==A'])).toBe(false);
    expect(nodeMatches(nodes[1]!, ['node.hostname==vps-1'])).toBe(false);
  });

  test('capacity: the sum over ready, active nodes the constraints allow', () => {
    expect(swarmCapacity(nodes, [])).toEqual({ millicpu: 6000, memoryBytes: 12 * 2 ** 30, nodes: 2 });
    // vps-3 is drained, vps-4 down: only vps-2 counts for zone b.
    expect(swarmCapacity(nodes, constraintsFor({ zone: 'b' }))).toEqual({ millicpu: 4000, memoryBytes: 8 * 2 ** 30, nodes: 1 });
    expect(swarmCapacity(nodes, constraintsFor({ zone: 'c' }))).toEqual({ millicpu: 0, memoryBytes: 0, nodes: 0 });
  });
});

describe('image reference (--no-resolve-image)', () => {
  const id = 'sha256:' + 'b'.repeat(64);
  const digest = 'sha256:' + 'c'.repeat(64);
  test('an image built on the manager is named by id, so no node tries to pull it', () => {
    expect(serviceImage('wgs-worker-ts:local', { Id: id })).toBe(id);
    expect(serviceImage('wgs-worker-ts:local', { Id: id, RepoDigests: [] })).toBe(id);
  });
  test('a pulled image is pinned to its repo digest', () => {
    expect(serviceImage('ghcr.io/acme/wgs-worker:1.2', { Id: id, RepoDigests: [`ghcr.io/acme/wgs-worker@${digest}`] })).toBe(`ghcr.io/acme/wgs-worker@${digest}`);
    expect(serviceImage('worker:1', { Id: id, RepoDigests: [`worker@${digest}`] })).toBe(`worker@${digest}`);
    expect(serviceImage('localhost:5000/w:1', { Id: id, RepoDigests: [`other/w@${digest}`, `localhost:5000/w@${digest}`] })).toBe(`localhost:5000/w@${digest}`);
    // Digests of another repository do not pin this one: the id does.
    expect(serviceImage('w:1', { Id: id, RepoDigests: [`other/w@${digest}`] })).toBe(id);
  });
  test('absent from the manager, or already pinned: as given', () => {
    expect(serviceImage('registry.example:5000/w:1', null)).toBe('registry.example:5000/w:1');
    expect(serviceImage(`w@${digest}`, { Id: id })).toBe(`w@${digest}`);
    expect(serviceImage(id, { Id: id })).toBe(id);
  });
});

describe("swarm's view of a task", () => {
  const task = (state: string, extra: Record<string, unknown> = {}) => ({ ID: state, ServiceID: 's', Status: { State: state, ...extra } });
  test('reasons in swarm words; none for a running task', () => {
    expect(taskReason(task('running'))).toBeNull();
    expect(taskReason(task('preparing'))).toBeNull();
    expect(taskReason(task('pending', { Err: 'no suitable node (insufficient resources on 1 node)' }))).toBe(
      'swarm task pending: no suitable node (insufficient resources on 1 node)',
    );
    expect(taskReason(task('rejected', { Err: 'No such image: x:1' }))).toBe('swarm task rejected: No such image: x:1');
    expect(taskReason(task('shutdown', { Message: 'shutdown' }))).toBe('swarm task shutdown: shutdown');
  });
  test('a task starting with its container made is up (Swarm waits for the HEALTHCHECK to say running)', () => {
    expect(isUp(task('running'))).toBe(true);
    expect(isUp(task('starting', { ContainerStatus: { ContainerID: 'c1' } }))).toBe(true);
    expect(isUp(task('starting'))).toBe(false);
    expect(isUp(task('preparing'))).toBe(false);
    expect(isUp(task('failed', { ContainerStatus: { ContainerID: 'c1' } }))).toBe(false);
  });
  test('exit code 137 is SIGKILL, as on docker nodes', () => {
    expect(taskExit(task('failed', { ContainerStatus: { ExitCode: 137 } }))).toEqual({ exitCode: 137, signal: 'SIGKILL' });
    expect(taskExit(task('complete', { ContainerStatus: { ExitCode: 0 } }))).toEqual({ exitCode: 0, signal: null });
    expect(taskExit(task('rejected'))).toEqual({ exitCode: null, signal: null });
  });
  test('the newest task is the one that counts', () => {
    const old = { ID: 'a', ServiceID: 's', CreatedAt: '2026-01-01T00:00:00Z' };
    const recent = { ID: 'b', ServiceID: 's', CreatedAt: '2026-01-01T00:00:05Z' };
    expect(latestTask([old, recent])!.ID).toBe('b');
    expect(latestTask([recent, old])!.ID).toBe('b');
    expect(latestTask([])).toBeUndefined();
  });
});
