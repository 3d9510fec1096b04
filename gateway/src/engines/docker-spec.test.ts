import { describe, expect, test } from 'bun:test';
import { CONTAINER_CA_FILE, containerName, containerSpec, LABELS, memoryBytes, nanoCpus } from './docker-spec';

describe('container spec', () => {
  const spec = {
    instanceId: 12,
    name: 'Support Line #1',
    provider: 'sandbox',
    env: { WGS_INSTANCE_ID: '12', WGS_WORKER_TOKEN: 'secret-token' },
    resources: { cpu: '0.5', memory: '512m' },
  };

  test('name, labels, limits, init, network and environment', () => {
    const c = containerSpec(spec, { name: 'vps-1', network: 'host' }, { image: 'wgs-worker-ts:local', gatewayId: 'gw-a' });
    expect(c.name).toBe('wgs-gw-a-12-support-line-1');
    // The default installation keeps the plain wgs-<id>[-name].
    expect(containerSpec(spec, { name: 'vps-1', network: 'host' }, { image: 'i', gatewayId: 'wgs' }).name).toBe('wgs-12-support-line-1');
    expect(c.Image).toBe('wgs-worker-ts:local');
    expect(c.Labels).toEqual({ [LABELS.instance]: '12', [LABELS.node]: 'vps-1', [LABELS.provider]: 'sandbox', [LABELS.gateway]: 'gw-a' });
    expect(c.HostConfig).toEqual({
      Init: true,
      NetworkMode: 'host',
      RestartPolicy: { Name: 'no' },
      NanoCpus: 500_000_000,
      Memory: 512 * 1024 * 1024,
      MemorySwap: 512 * 1024 * 1024,
    });
    expect(c.Env).toEqual(['WGS_INSTANCE_ID=12', 'WGS_WORKER_TOKEN=secret-token']);
    expect(c.Cmd).toBeUndefined();
  });

  test('a CA bundle is mounted read-only and named by SSL_CERT_FILE and NODE_EXTRA_CA_CERTS', () => {
    const c = containerSpec({ ...spec, caFile: '/srv/ca/simulator.pem' }, { name: 'vps-1', network: 'host' }, { image: 'i', gatewayId: 'g' });
    expect(c.HostConfig!.Binds).toEqual([`/srv/ca/simulator.pem:${CONTAINER_CA_FILE}:ro`]);
    expect(c.Env).toEqual(['WGS_INSTANCE_ID=12', 'WGS_WORKER_TOKEN=secret-token', `SSL_CERT_FILE=${CONTAINER_CA_FILE}`, `NODE_EXTRA_CA_CERTS=${CONTAINER_CA_FILE}`]);
    expect(containerSpec(spec, { name: 'vps-1', network: 'host' }, { image: 'i', gatewayId: 'g' }).HostConfig!.Binds).toBeUndefined();
  });

  test('no limits when none were asked for', () => {
    const c = containerSpec({ ...spec, resources: undefined }, { name: 'n', network: 'wgs' }, { image: 'i', gatewayId: 'g', cmd: ['run'] });
    expect(c.HostConfig!.NanoCpus).toBeUndefined();
    expect(c.HostConfig!.Memory).toBeUndefined();
    expect(c.HostConfig!.NetworkMode).toBe('wgs');
    expect(c.Cmd).toEqual(['run']);
  });

  test('names are safe and bounded', () => {
    expect(containerName(3)).toBe('wgs-3');
    expect(containerName(3, null)).toBe('wgs-3');
    expect(containerName(3, '---')).toBe('wgs-3');
    expect(containerName(3, 'Ünïcode ✓ name')).toBe('wgs-3-n-code-name');
    expect(containerName(3, 'x'.repeat(100))).toBe(`wgs-3-${'x'.repeat(40)}`);
    expect(containerName(3, 'Sales', 'staging')).toBe('wgs-staging-3-sales');
  });

  test('resource strings convert and bad ones are typed errors', () => {
    expect(nanoCpus('2')).toBe(2_000_000_000);
    expect(nanoCpus('0.25')).toBe(250_000_000);
    expect(memoryBytes('1g')).toBe(1024 ** 3);
    expect(nanoCpus(null)).toBeUndefined();
    expect(() => nanoCpus('lots')).toThrow(expect.objectContaining({ name: 'EngineError', code: 'start_failed' }));
    expect(() => memoryBytes('1.5g')).toThrow(expect.objectContaining({ name: 'EngineError' }));
  });
});
