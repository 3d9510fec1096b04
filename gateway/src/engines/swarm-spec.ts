/**
 * What the swarm engine asks of a Swarm manager, as pure functions: the
 * service spec of one worker, the placement constraints a gateway node
 * stands for, which image reference a service names, and what Swarm's view
 * of tasks and nodes means to the gateway (run state, reason, capacity).
 */
import type Dockerode from 'dockerode';
import type { WorkerSpec } from './engine';
import { CONTAINER_CA_FILE, containerName, LABELS, memoryBytes, nanoCpus } from './docker-spec';

export interface SwarmNodeSettings {
  /** The gateway node's name, recorded as a label. */
  name: string;
  /** `host` unless the node names a (swarm-scoped) network. */
  network: string;
  /** The gateway node's labels: its placement inside the swarm (see `constraintsFor`). */
  labels: Record<string, string>;
}

/** How long Swarm gives a task between SIGTERM and SIGKILL (`docker stop`'s default). */
export const STOP_GRACE_NS = 10_000_000_000;

/**
 * Label keys that already are Swarm constraint expressions (`node.hostname`,
 * `node.id`, `node.role`, `node.platform.os`, `node.labels.zone`,
 * `engine.labels.x`): they pass through as `key==value`. Any other label is
 * a Swarm node label: `zone=b` becomes `node.labels.zone==b`.
 */
const CONSTRAINT_KEY = /^(node\.(id|hostname|role|platform\.os|platform\.arch|labels\.[^=!]+)|engine\.labels\.[^=!]+)$/;

/**
 * A swarm gateway node stands for the swarm's nodes that carry its labels
 * (and, with a `node.hostname` or `node.id` label, for one explicit node):
 * these are the service's placement constraints. Sorted, so a spec is stable.
 */
export function constraintsFor(labels: Record<string, string>): string[] {
  return Object.entries(labels)
    .map(([key, value]) => (CONSTRAINT_KEY.test(key) ? `${key}==${value}` : `node.labels.${key}==${value}`))
    .sort();
}

/** A swarm node as the Engine API lists it (`GET /nodes`), the fields the gateway reads. */
export interface SwarmNode {
  ID: string;
  Spec?: { Role?: string; Availability?: string; Labels?: Record<string, string> };
  Description?: {
    Hostname?: string;
    Platform?: { OS?: string; Architecture?: string };
    Resources?: { NanoCPUs?: number; MemoryBytes?: number };
    Engine?: { Labels?: Record<string, string> };
  };
  Status?: { State?: string };
}

/** Whether a swarm node satisfies `key==value` constraints (the forms constraintsFor writes). */
export function nodeMatches(node: SwarmNode, constraints: string[]): boolean {
  return constraints.every((c) => {
    const [key, value] = c.split('==', 2) as [string, string];
    const attr = (() => {
      if (key === 'node.id') return node.ID;
      if (key === 'node.hostname') return node.Description?.Hostname;
      if (key === 'node.role') return node.Spec?.Role;
      if (key === 'node.platform.os') return node.Description?.Platform?.OS;
      if (key === 'node.platform.arch') return node.Description?.Platform?.Architecture;
      if (key.startsWith('node.labels.')) return node.Spec?.Labels?.[key.slice('node.labels.'.length)];
      if (key.startsWith('engine.labels.')) return node.Description?.Engine?.Labels?.[key.slice('engine.labels.'.length)];
      return undefined;
    })();
    // Swarm compares node.hostname, node.role and platform case-insensitively; labels exactly.
    return key.startsWith('node.labels.') || key.startsWith('engine.labels.') || key === 'node.id'
      ? attr === value
      : attr?.toLowerCase() === value.toLowerCase();
  });
}

/**
 * What a swarm gateway node can run on: the ready, active swarm nodes its
 * constraints allow, summed (as a docker node reports its daemon's NCPU and
 * MemTotal). `nodes` counts them; 0 means nothing can be scheduled.
 */
export function swarmCapacity(nodes: SwarmNode[], constraints: string[]): { millicpu: number; memoryBytes: number; nodes: number } {
  const usable = nodes.filter((n) => n.Status?.State === 'ready' && n.Spec?.Availability === 'active' && nodeMatches(n, constraints));
  return {
    millicpu: Math.floor(usable.reduce((sum, n) => sum + (n.Description?.Resources?.NanoCPUs ?? 0), 0) / 1_000_000),
    memoryBytes: usable.reduce((sum, n) => sum + (n.Description?.Resources?.MemoryBytes ?? 0), 0),
    nodes: usable.length,
  };
}

/**
 * The image reference a service names, with `docker service create
 * --no-resolve-image` semantics: the gateway never asks a registry; it reads
 * the image on the manager's daemon (`local`, null when absent there).
 * - a reference by digest or id: as given;
 * - present and pulled from a registry (it has a repo digest): `repo@sha256:…`,
 *   pinned like the CLI pins it, so every node runs the same image and pulls it
 *   only when it lacks it;
 * - present but built here (no repo digest): its id, which Swarm's agents
 *   never try to pull (every node must have built or loaded that image);
 * - absent from the manager: the name as given, pulled by each node per
 *   Swarm's rules (a failure is the task's error, "No such image").
 */
export function serviceImage(image: string, local: { Id: string; RepoDigests?: string[] } | null): string {
  if (image.includes('@') || /^sha256:[0-9a-f]{64}$/.test(image)) return image;
  if (!local) return image;
  const repo = repository(image);
  const digest = (local.RepoDigests ?? []).find((d) => repository(d.split('@')[0]!) === repo);
  return digest ?? local.Id;
}

/** `registry:5000/a/b:tag` → `registry:5000/a/b`; `b` → `docker.io/library/b`. */
function repository(ref: string): string {
  const lastSlash = ref.lastIndexOf('/');
  const colon = ref.indexOf(':', lastSlash + 1);
  const name = colon >= 0 ? ref.slice(0, colon) : ref;
  const first = name.split('/')[0]!;
  const hasRegistry = name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (hasRegistry) return name;
  return `docker.io/${name.includes('/') ? name : `library/${name}`}`;
}

/** The name of an instance's service: the same as a docker node's container (`wgs-<id>[-name]`). */
export const serviceName = containerName;

/**
 * One worker as a Swarm service: replicated, one replica; reservations and
 * limits both from the instance's limits (the gateway schedules by limits,
 * and Swarm's own scheduler then agrees with it); labels on the service
 * (`list` filters on them) and on its containers, except the gateway label,
 * so a docker engine on the same daemon never takes a task's container for
 * one of its own; the gateway node's placement as constraints; restart
 * condition `none` (the gateway restarts workers itself with a fresh token;
 * Swarm restarting a task would reuse the old one, which the gateway
 * refuses); `--init`; host networking unless the node names a network. The
 * environment, secrets included, travels only in this create call.
 */
export function serviceSpec(
  spec: WorkerSpec,
  node: SwarmNodeSettings,
  opts: { image: string; gatewayId: string; cmd?: string[] },
): Dockerode.ServiceSpec {
  const cpu = nanoCpus(spec.resources?.cpu);
  const memory = memoryBytes(spec.resources?.memory);
  const env = spec.caFile ? { ...spec.env, SSL_CERT_FILE: CONTAINER_CA_FILE, NODE_EXTRA_CA_CERTS: CONTAINER_CA_FILE } : spec.env;
  const resources = { ...(cpu !== undefined && { NanoCPUs: cpu }), ...(memory !== undefined && { MemoryBytes: memory }) };
  const labels = {
    [LABELS.instance]: String(spec.instanceId),
    [LABELS.node]: node.name,
    [LABELS.provider]: spec.provider,
  };
  const constraints = constraintsFor(node.labels);
  return {
    Name: serviceName(spec.instanceId, spec.name, opts.gatewayId),
    Labels: { ...labels, [LABELS.gateway]: opts.gatewayId },
    TaskTemplate: {
      ContainerSpec: {
        Image: opts.image,
        ...(opts.cmd && { Args: opts.cmd }),
        Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
        Labels: labels,
        Init: true,
        StopGracePeriod: STOP_GRACE_NS,
        ...(spec.caFile && { Mounts: [{ Type: 'bind' as const, Source: spec.caFile, Target: CONTAINER_CA_FILE, ReadOnly: true }] }),
      },
      Resources: Object.keys(resources).length ? { Limits: resources, Reservations: resources } : {},
      RestartPolicy: { Condition: 'none' },
      ...(constraints.length && { Placement: { Constraints: constraints } }),
      Networks: [{ Target: node.network }],
    },
    Mode: { Replicated: { Replicas: 1 } },
  };
}

/** A task as `GET /tasks` lists it: the fields the gateway reads. */
export interface SwarmTask {
  ID: string;
  ServiceID: string;
  CreatedAt?: string;
  UpdatedAt?: string;
  DesiredState?: string;
  Spec?: { ContainerSpec?: { Labels?: Record<string, string> } };
  Status?: {
    Timestamp?: string;
    State?: string;
    Message?: string;
    Err?: string;
    ContainerStatus?: { ContainerID?: string; PID?: number; ExitCode?: number };
  };
}

/** Task states after which the task never runs again (Swarm's TaskState ≥ complete). */
export const TERMINAL_TASK_STATES: ReadonlySet<string> = new Set(['complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned']);

/**
 * Whether the task's worker runs: `running`, or `starting` with its container
 * made. Swarm holds a task in `starting` until the image's HEALTHCHECK first
 * passes (the worker image checks every 15 s), while the worker already
 * runs and has dialled the gateway.
 */
export function isUp(task: SwarmTask): boolean {
  const state = task.Status?.State;
  return state === 'running' || (state === 'starting' && Boolean(task.Status?.ContainerStatus?.ContainerID));
}

export function isTerminal(task: SwarmTask): boolean {
  return TERMINAL_TASK_STATES.has(task.Status?.State ?? '');
}

/** The service's newest task (Swarm keeps a few old ones as history). */
export function latestTask(tasks: SwarmTask[]): SwarmTask | undefined {
  return [...tasks].sort((a, b) => Date.parse(b.CreatedAt ?? '') - Date.parse(a.CreatedAt ?? '') || (b.ID < a.ID ? -1 : 1))[0];
}

/**
 * Why a task does not run, in Swarm's words: the error it ended or waits
 * with ("no suitable node (insufficient resources on 1 node)", "No such
 * image: …", "task: non-zero exit (137)"), else its state's message.
 * Null for a task that runs or is on its way without complaint.
 */
export function taskReason(task: SwarmTask): string | null {
  const state = task.Status?.State ?? 'unknown';
  const err = task.Status?.Err?.trim();
  if ((state === 'running' || state === 'starting') && !err) return null;
  if (err) return `swarm task ${state}: ${err}`;
  if (TERMINAL_TASK_STATES.has(state)) return `swarm task ${state}${task.Status?.Message ? `: ${task.Status.Message}` : ''}`;
  return null;
}

/** A task's exit code, and the signal that code means (137: SIGKILL, as a docker node reports it). */
export function taskExit(task: SwarmTask): { exitCode: number | null; signal: string | null } {
  const code = task.Status?.ContainerStatus?.ExitCode;
  const exitCode = typeof code === 'number' ? code : null;
  return { exitCode, signal: exitCode === 137 ? 'SIGKILL' : exitCode === 143 ? 'SIGTERM' : null };
}
