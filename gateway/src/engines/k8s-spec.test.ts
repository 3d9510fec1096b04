import { describe, expect, test } from 'bun:test';
import { EngineError } from './engine';
import { LABELS } from './docker-spec';
import { cpuQuantity, k8sWorkerObjects, memoryQuantity, nodeAffinityFor, podName, POD_CA_FILE, secretName } from './k8s-spec';

const spec = {
  instanceId: 12,
  tenantId: 3,
  name: 'Support Line #1',
  provider: 'sandbox',
  env: { WGS_INSTANCE_ID: '12', WGS_WORKER_TOKEN: 'secret-token', WGS_GATEWAY_URL: 'ws://gateway:3000' },
  resources: { cpu: '0.5', memory: '512m' },
};
const node = { name: 'k8s-a', namespace: 'wgs', labels: {} };

describe('kubernetes objects for one worker', () => {
  test('a Secret with the environment and a bare Pod that only references it: exact objects', () => {
    const { secret, pod } = k8sWorkerObjects(spec, node, { image: 'registry.example/wgs-worker-ts:1.2', gatewayId: 'wgs' });
    const labels = { [LABELS.instance]: '12', [LABELS.node]: 'k8s-a', [LABELS.provider]: 'sandbox', [LABELS.gateway]: 'wgs' };
    expect(secret).toEqual({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'wgs-12-support-line-1-env', namespace: 'wgs', labels },
      type: 'Opaque',
      immutable: true,
      stringData: { WGS_INSTANCE_ID: '12', WGS_WORKER_TOKEN: 'secret-token', WGS_GATEWAY_URL: 'ws://gateway:3000' },
    });
    expect(pod).toEqual({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'wgs-12-support-line-1', namespace: 'wgs', labels, annotations: { 'wgs.name': 'Support Line #1', 'wgs.tenant': '3' } },
      spec: {
        restartPolicy: 'Never',
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        shareProcessNamespace: true,
        terminationGracePeriodSeconds: 10,
        securityContext: { runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534, seccompProfile: { type: 'RuntimeDefault' } },
        containers: [
          {
            name: 'worker',
            image: 'registry.example/wgs-worker-ts:1.2',
            envFrom: [{ secretRef: { name: 'wgs-12-support-line-1-env' } }],
            resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { cpu: '500m', memory: '512Mi' } },
            securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
            volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
          },
        ],
        volumes: [{ name: 'tmp', emptyDir: { sizeLimit: '16Mi' } }],
      },
    });
    // Neither the token nor any other value of the environment appears in the pod.
    const podText = JSON.stringify(pod);
    for (const value of ['secret-token', 'ws://gateway:3000', 'WGS_WORKER_TOKEN']) expect(podText).not.toContain(value);
  });

  test('no limits, no name: no resources (BestEffort), plain wgs-<id>; args, a liveness probe and the CA bundle when given', () => {
    const { pod, secret } = k8sWorkerObjects(
      { ...spec, name: null, tenantId: undefined, resources: undefined, caFile: '/srv/ca/simulator.pem' },
      node,
      { image: 'i', gatewayId: 'wgs', cmd: ['run'], healthCmd: ['/usr/local/bin/bun', '/app/worker.js', '--health'] },
    );
    expect(pod.metadata.name).toBe('wgs-12');
    expect(pod.metadata.annotations).toBeUndefined();
    expect(secret.metadata.name).toBe('wgs-12-env');
    const c = pod.spec.containers[0] as any;
    expect(c.resources).toBeUndefined();
    expect(c.args).toEqual(['run']);
    expect(c.livenessProbe.exec.command).toEqual(['/usr/local/bin/bun', '/app/worker.js', '--health']);
    expect(c.env).toEqual([
      { name: 'SSL_CERT_FILE', value: POD_CA_FILE },
      { name: 'NODE_EXTRA_CA_CERTS', value: POD_CA_FILE },
    ]);
    expect(c.volumeMounts).toContainEqual({ name: 'wgs-ca', mountPath: POD_CA_FILE, readOnly: true });
    expect(pod.spec.volumes).toContainEqual({ name: 'wgs-ca', hostPath: { path: '/srv/ca/simulator.pem', type: 'File' } });
    // The CA paths are not secrets and stay out of the Secret.
    expect(Object.keys(secret.stringData)).not.toContain('SSL_CERT_FILE');
  });

  test('names: the gateway id, made DNS-safe, and every name within 63 characters with the Secret suffix', () => {
    expect(podName(12, 'Support Line #1', 'Gw_A.prod')).toBe('wgs-gw-a-prod-12-support-line-1');
    const long = podName(2147483647, 'x'.repeat(200), 'g'.repeat(40));
    expect(long.length).toBeLessThanOrEqual(59);
    expect(secretName(long).length).toBeLessThanOrEqual(63);
    expect(long).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(podName(7, '---')).toBe('wgs-7');
  });
});

describe('placement as required node affinity', () => {
  const terms = (labels: Record<string, string>) =>
    nodeAffinityFor(labels)?.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;

  test('no labels: no affinity (any schedulable node)', () => {
    expect(nodeAffinityFor({})).toBeUndefined();
    expect(k8sWorkerObjects(spec, node, { image: 'i', gatewayId: 'wgs' }).pod.spec.affinity).toBeUndefined();
  });

  test('node labels: all required in one term, sorted', () => {
    expect(terms({ 'topology.kubernetes.io/zone': 'eu-1b', tier: 'numbers' })).toEqual([
      {
        matchExpressions: [
          { key: 'tier', operator: 'In', values: ['numbers'] },
          { key: 'topology.kubernetes.io/zone', operator: 'In', values: ['eu-1b'] },
        ],
      },
    ]);
  });

  test('an explicit node: kubernetes.io/hostname, or the swarm spelling node.hostname; node.labels.x is label x', () => {
    const explicit = [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In' as const, values: ['vps-2'] }] }];
    expect(terms({ 'kubernetes.io/hostname': 'vps-2' })).toEqual(explicit);
    expect(terms({ 'node.hostname': 'vps-2' })).toEqual(explicit);
    expect(terms({ 'node.labels.zone': 'b' })).toEqual([{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['b'] }] }]);
    const { pod } = k8sWorkerObjects(spec, { ...node, labels: { 'node.hostname': 'vps-2' } }, { image: 'i', gatewayId: 'wgs' });
    expect(pod.spec.affinity).toEqual({ nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: explicit } } });
  });

  test('swarm-only keys and values Kubernetes cannot hold are refused as start_failed', () => {
    for (const labels of <Record<string, string>[]>[{ 'node.role': 'worker' }, { 'node.id': 'abc' }, { 'engine.labels.x': 'y' }, { 'bad key!': 'v' }, { zone: 'not ok!' }, { zone: 'x'.repeat(64) }]) {
      expect(() => nodeAffinityFor(labels)).toThrow(EngineError);
    }
  });
});

describe('resource quantities', () => {
  test('cpu cores → Kubernetes CPU: millicores unless whole', () => {
    expect(cpuQuantity('0.5')).toBe('500m');
    expect(cpuQuantity('0.25')).toBe('250m');
    expect(cpuQuantity('0.001')).toBe('1m');
    expect(cpuQuantity('1.5')).toBe('1500m');
    expect(cpuQuantity('2')).toBe('2');
    expect(cpuQuantity(undefined)).toBeUndefined();
    expect(cpuQuantity(null)).toBeUndefined();
  });

  test('Docker sizes (binary) → binary Kubernetes suffixes, shortest exact', () => {
    expect(memoryQuantity('512m')).toBe('512Mi');
    expect(memoryQuantity('1g')).toBe('1Gi');
    expect(memoryQuantity('1536m')).toBe('1536Mi');
    expect(memoryQuantity('2048m')).toBe('2Gi');
    expect(memoryQuantity('64k')).toBe('64Ki');
    expect(memoryQuantity('1t')).toBe('1Ti');
    expect(memoryQuantity('1000')).toBe('1000');
    expect(memoryQuantity(undefined)).toBeUndefined();
  });

  test('bad input is an EngineError start_failed naming the value', () => {
    for (const cpu of ['0', '-1', 'abc', '0.0001', '1e3', '']) {
      expect(() => cpuQuantity(cpu)).toThrow(EngineError);
    }
    for (const memory of ['0', '512x', 'lots', '-5m', '']) {
      expect(() => memoryQuantity(memory)).toThrow(EngineError);
    }
    try {
      k8sWorkerObjects({ ...spec, resources: { memory: '12q' } }, node, { image: 'i', gatewayId: 'wgs' });
      throw new Error('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(EngineError);
      expect((err as EngineError).code).toBe('start_failed');
      expect((err as Error).message).toContain('"12q"');
    }
    expect(() => k8sWorkerObjects(spec, { ...node, namespace: 'Bad_NS' }, { image: 'i', gatewayId: 'wgs' })).toThrow(EngineError);
    expect(() => k8sWorkerObjects({ ...spec, env: { 'BAD KEY': 'x' } }, node, { image: 'i', gatewayId: 'wgs' })).toThrow(EngineError);
    expect(() => k8sWorkerObjects({ ...spec, instanceId: 0 }, node, { image: 'i', gatewayId: 'wgs' })).toThrow(EngineError);
  });
});
