import type { ContainerCreateOptions } from 'dockerode';
import { parseCpu, parseMemory } from '../lib/resources';
import { EngineError, type WorkerSpec } from './engine';

/** Labels every wgs container carries; `list` filters on the gateway's. */
export const LABELS = {
  instance: 'wgs.instance',
  node: 'wgs.node',
  provider: 'wgs.provider',
  gateway: 'wgs.gateway',
} as const;

export interface DockerNodeSettings {
  /** The node's name, recorded as a label. */
  name: string;
  /** `host` in tests; a named Docker network in production. */
  network: string;
}

/** The gateway id every installation has unless GATEWAY_ID says otherwise. */
export const DEFAULT_GATEWAY_ID = 'wgs';

/**
 * `wgs-<id>` plus the instance name made safe for a container name, when it
 * has one. Instance ids are per database, so a gateway with its own
 * GATEWAY_ID puts that in too (`wgs-<gateway>-<id>`): two installations
 * sharing a Docker host never claim the same name.
 */
export function containerName(instanceId: number, name?: string | null, gatewayId = DEFAULT_GATEWAY_ID): string {
  const safe = (name ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9_.-]+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '')
    .slice(0, 40);
  const base = gatewayId === DEFAULT_GATEWAY_ID ? `wgs-${instanceId}` : `wgs-${gatewayId}-${instanceId}`;
  return safe ? `${base}-${safe}` : base;
}

/** "0.5" cores → 500000000 NanoCpus; null when absent. */
export function nanoCpus(cpu: string | null | undefined): number | undefined {
  if (cpu === null || cpu === undefined) return undefined;
  const milli = /^[0-9]+(\.[0-9]+)?$/.test(cpu.trim()) ? parseCpu(Number(cpu)) : null;
  if (milli === null) throw new EngineError('start_failed', `invalid cpu limit "${cpu}": a positive number of cores, e.g. "0.5"`);
  return milli * 1_000_000;
}

/** "512m" → bytes; null when absent. */
export function memoryBytes(memory: string | null | undefined): number | undefined {
  if (memory === null || memory === undefined) return undefined;
  const bytes = parseMemory(memory);
  if (bytes === null) throw new EngineError('start_failed', `invalid memory limit "${memory}": a size like "512m"`);
  return bytes;
}

/**
 * The create call for one worker container: `--init` (Bun as PID 1 ignores
 * SIGTERM), the instance's limits, labels, and the environment, which
 * travels only in this call. Restart policy `no`: the gateway restarts
 * workers itself, with backoff, crash-loop detection and a fresh token; a
 * Docker restart would reuse the old token and be refused forever.
 */
/** Where a container finds WORKER_CA_FILE (mounted read-only from the node's machine). */
export const CONTAINER_CA_FILE = '/etc/wgs/ca.pem';

export function containerSpec(
  spec: WorkerSpec,
  node: DockerNodeSettings,
  opts: { image: string; gatewayId: string; cmd?: string[] },
): ContainerCreateOptions {
  const NanoCpus = nanoCpus(spec.resources?.cpu);
  const env = spec.caFile ? { ...spec.env, SSL_CERT_FILE: CONTAINER_CA_FILE, NODE_EXTRA_CA_CERTS: CONTAINER_CA_FILE } : spec.env;
  const Memory = memoryBytes(spec.resources?.memory);
  return {
    name: containerName(spec.instanceId, spec.name, opts.gatewayId),
    Image: opts.image,
    ...(opts.cmd && { Cmd: opts.cmd }),
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    Labels: {
      [LABELS.instance]: String(spec.instanceId),
      [LABELS.node]: node.name,
      [LABELS.provider]: spec.provider,
      [LABELS.gateway]: opts.gatewayId,
    },
    HostConfig: {
      Init: true,
      NetworkMode: node.network,
      RestartPolicy: { Name: 'no' },
      ...(spec.caFile && { Binds: [`${spec.caFile}:${CONTAINER_CA_FILE}:ro`] }),
      ...(NanoCpus !== undefined && { NanoCpus }),
      ...(Memory !== undefined && { Memory, MemorySwap: Memory }),
    },
  };
}
