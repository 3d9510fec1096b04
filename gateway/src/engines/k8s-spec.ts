/**
 * Kubernetes on paper: the objects a `kubernetes` engine would create for one
 * number, from the same WorkerSpec the docker and swarm engines take. Pure
 * functions, no client; docs/architecture.md "Kubernetes (on paper)" maps the
 * rest of the Engine interface.
 *
 * One bare Pod per number (and one Secret holding its environment), not a
 * Deployment. The reasons are the gateway's two rules:
 * - Tokens: every start of a worker gets a fresh token, and the gateway is
 *   the one that restarts workers (backoff, crash-loop detection, a new
 *   token each time). A Deployment's pod template must have
 *   `restartPolicy: Always`, so the kubelet would restart the container in
 *   place with the old Secret, i.e. the old token, which the gateway refuses
 *   once it has moved on; and its ReplicaSet would recreate a deleted pod
 *   behind the gateway's back. A bare Pod with `restartPolicy: Never` is the
 *   docker engine's `RestartPolicy: no` and the swarm engine's condition
 *   `none`: it runs once, and its end (phase Succeeded/Failed) is the exit
 *   the gateway acts on.
 * - Lock: two live sessions of one number must never exist. That is not left
 *   to the orchestrator: each worker holds its instance's single-owner
 *   advisory lock in Postgres for its whole life, and waits for it before it
 *   opens WhatsApp. `strategy: Recreate` would only promise "old pods gone
 *   before new ones", and not even that for a pod on a partitioned node
 *   (Kubernetes cannot see it die). With the lock, a leftover pod on a lost
 *   node holds an old token (refused by the gateway) and the lock (so its
 *   replacement waits), exactly as a leftover container does on docker nodes.
 */
import { parseCpu, parseMemory } from '../lib/resources';
import { LABELS, DEFAULT_GATEWAY_ID } from './docker-spec';
import { EngineError, type WorkerSpec } from './engine';

export interface K8sNodeSettings {
  /** The gateway node's name (a cluster, or part of one), recorded as a label. */
  name: string;
  /** Namespace the engine creates pods and secrets in. */
  namespace: string;
  /**
   * The gateway node's labels: its placement inside the cluster as required
   * node affinity (see `nodeAffinityFor`). `kubernetes.io/hostname` (or the
   * swarm engine's `node.hostname`) names one explicit node.
   */
  labels: Record<string, string>;
}

/** Where the worker finds WORKER_CA_FILE (a hostPath of the node, read-only), as in a docker container. */
export const POD_CA_FILE = '/etc/wgs/ca.pem';
/** The worker runs as nobody, as in the worker images (deploy/*.Dockerfile). */
const NOBODY = 65534;
/** `docker stop`'s default, and the swarm engine's StopGracePeriod. */
export const TERMINATION_GRACE_SECONDS = 10;
/** Annotation keys (free-form values, unlike labels). */
export const ANNOTATIONS = { name: 'wgs.name', tenant: 'wgs.tenant' } as const;

/** RFC 1123 label: what a pod, secret or namespace name may be (at most 63 here, so it also fits a hostname). */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** Kubernetes label keys: an optional DNS-subdomain prefix and `/`, then a name; values: up to 63 of [A-Za-z0-9_.-], alphanumeric at both ends. */
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

function isLabelKey(key: string): boolean {
  const slash = key.lastIndexOf('/');
  if (slash < 0) return LABEL_NAME.test(key);
  const prefix = key.slice(0, slash);
  return prefix.length <= 253 && LABEL_PREFIX.test(prefix) && LABEL_NAME.test(key.slice(slash + 1));
}

function labelValue(what: string, value: string): string {
  if (!LABEL_VALUE.test(value)) {
    throw new EngineError('start_failed', `${what} "${value}" cannot be a Kubernetes label value (at most 63 of A-Z a-z 0-9 - _ ., alphanumeric at both ends)`);
  }
  return value;
}

/**
 * `wgs-<id>` (`wgs-<gateway>-<id>` for a gateway with its own GATEWAY_ID),
 * plus the instance name made safe, cut so the whole stays a 63-character
 * DNS label: the pod's name and its hostname.
 */
export function podName(instanceId: number, name?: string | null, gatewayId = DEFAULT_GATEWAY_ID): string {
  if (!Number.isSafeInteger(instanceId) || instanceId < 1) throw new EngineError('start_failed', `invalid instance id ${instanceId}`);
  const dns = (s: string) =>
    s
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '');
  const base = gatewayId === DEFAULT_GATEWAY_ID ? `wgs-${instanceId}` : `wgs-${dns(gatewayId)}-${instanceId}`;
  if (base.length > 63 - '-env'.length) throw new EngineError('start_failed', `gateway id "${gatewayId}" makes the pod name longer than 63 characters`);
  // Room for the Secret's "-env" suffix.
  const room = 63 - '-env'.length - base.length - 1;
  const safe = dns(name ?? '').slice(0, Math.max(0, room)).replace(/-+$/, '');
  return safe ? `${base}-${safe}` : base;
}

/** The Secret holding one pod's environment. */
export function secretName(pod: string): string {
  return `${pod}-env`;
}

/** "0.5" cores → "500m", "2" → "2"; undefined when absent. Kubernetes' smallest CPU unit is 1m, as the gateway's. */
export function cpuQuantity(cpu: string | null | undefined): string | undefined {
  if (cpu === null || cpu === undefined) return undefined;
  const milli = /^[0-9]+(\.[0-9]+)?$/.test(cpu.trim()) ? parseCpu(Number(cpu)) : null;
  if (milli === null) throw new EngineError('start_failed', `invalid cpu limit "${cpu}": a positive number of cores, e.g. "0.5"`);
  return milli % 1000 === 0 ? String(milli / 1000) : `${milli}m`;
}

/**
 * "512m" → "512Mi": Docker's sizes are binary (m = MiB), Kubernetes' binary
 * suffixes say so (Ki, Mi, Gi, Ti; a plain "512M" would be 10^6). The
 * shortest exact form; plain bytes when no suffix divides. Undefined when absent.
 */
export function memoryQuantity(memory: string | null | undefined): string | undefined {
  if (memory === null || memory === undefined) return undefined;
  const bytes = parseMemory(memory);
  if (bytes === null) throw new EngineError('start_failed', `invalid memory limit "${memory}": a size like "512m"`);
  let value = BigInt(bytes);
  for (const [suffix, unit] of [
    ['Ti', 1024n ** 4n],
    ['Gi', 1024n ** 3n],
    ['Mi', 1024n ** 2n],
    ['Ki', 1024n],
  ] as const) {
    if (value >= unit && value % unit === 0n) return `${value / unit}${suffix}`;
  }
  return String(value);
}

/** The swarm engine's constraint keys (swarm-spec.ts) that have a Kubernetes node label of the same meaning. */
const SWARM_KEYS: Record<string, string> = {
  'node.hostname': 'kubernetes.io/hostname',
  'node.platform.os': 'kubernetes.io/os',
  'node.platform.arch': 'kubernetes.io/arch',
};

/**
 * A gateway node's labels as required node affinity: every label must be on
 * the Kubernetes node (`key In [value]`, ANDed in one term). A label key is a
 * Kubernetes node label; the swarm engine's spellings mean the same here
 * (`node.hostname` → `kubernetes.io/hostname`, `node.labels.zone` → `zone`),
 * so one gateway node's labels place workers alike on both. Swarm-only keys
 * (`node.id`, `node.role`, `engine.labels.*`) have no Kubernetes meaning and
 * are refused. Undefined when there is nothing to require.
 */
export function nodeAffinityFor(labels: Record<string, string>): K8sAffinity | undefined {
  const expressions = Object.entries(labels)
    .map(([rawKey, value]) => {
      const key = SWARM_KEYS[rawKey] ?? (rawKey.startsWith('node.labels.') ? rawKey.slice('node.labels.'.length) : rawKey);
      if (/^(node\.(id|role)|engine\.labels\.)/.test(rawKey) || !isLabelKey(key)) {
        throw new EngineError('start_failed', `node label "${rawKey}" cannot place a pod: use a Kubernetes node label key (e.g. kubernetes.io/hostname, topology.kubernetes.io/zone)`);
      }
      return { key, operator: 'In' as const, values: [labelValue(`node label ${rawKey}`, value)] };
    })
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  if (!expressions.length) return undefined;
  return { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: expressions }] } } };
}

export interface K8sAffinity {
  nodeAffinity: {
    requiredDuringSchedulingIgnoredDuringExecution: {
      nodeSelectorTerms: { matchExpressions: { key: string; operator: 'In'; values: string[] }[] }[];
    };
  };
}

export interface K8sObjectMeta {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface K8sSecret {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: K8sObjectMeta;
  type: 'Opaque';
  immutable: true;
  stringData: Record<string, string>;
}

export interface K8sPod {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: K8sObjectMeta;
  spec: Record<string, unknown> & {
    restartPolicy: 'Never';
    automountServiceAccountToken: false;
    containers: Record<string, unknown>[];
  };
}

/**
 * The Secret and the Pod for one start of a worker. The environment (token,
 * database DSN of the instance's role, everything in `spec.env`) goes only
 * into the Secret; the pod references it (`envFrom`) and holds no value of
 * it. The Secret is immutable: a new start (a new token) is a new Secret and
 * a new Pod, never an edit. The engine creates the Secret, then the Pod, then
 * makes the Pod the Secret's owner (ownerReferences need the Pod's uid), so
 * deleting the Pod deletes its Secret.
 *
 * The pod: `restartPolicy: Never` (above), no service account token, no
 * service links (the worker's environment is only its own, as on every
 * engine), nobody with no capabilities and a read-only root filesystem
 * (a small writable /tmp for the health file), `shareProcessNamespace` so
 * the worker is not PID 1 (the docker engine's `Init: true`: Bun as PID 1
 * ignores SIGTERM), requests equal to limits (the gateway schedules by
 * limits; with both set the pod is Guaranteed), and the node's placement as
 * required node affinity.
 */
export function k8sWorkerObjects(
  spec: WorkerSpec,
  node: K8sNodeSettings,
  opts: { image: string; gatewayId: string; cmd?: string[]; healthCmd?: string[] },
): { secret: K8sSecret; pod: K8sPod } {
  if (!DNS_LABEL.test(node.namespace)) throw new EngineError('start_failed', `invalid namespace "${node.namespace}"`);
  const name = podName(spec.instanceId, spec.name, opts.gatewayId);
  const labels = {
    [LABELS.instance]: String(spec.instanceId),
    [LABELS.node]: labelValue('node name', node.name),
    [LABELS.provider]: labelValue('provider', spec.provider),
    [LABELS.gateway]: labelValue('gateway id', opts.gatewayId),
  };
  const annotations = {
    ...(spec.name && { [ANNOTATIONS.name]: spec.name }),
    ...(spec.tenantId !== undefined && { [ANNOTATIONS.tenant]: String(spec.tenantId) }),
  };
  for (const key of Object.keys(spec.env)) {
    if (!/^[-._a-zA-Z0-9]+$/.test(key)) throw new EngineError('start_failed', `environment variable "${key}" cannot be a Secret key`);
  }

  const cpu = cpuQuantity(spec.resources?.cpu);
  const memory = memoryQuantity(spec.resources?.memory);
  const quantities = { ...(cpu !== undefined && { cpu }), ...(memory !== undefined && { memory }) };
  const affinity = nodeAffinityFor(node.labels);

  const secret: K8sSecret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: secretName(name), namespace: node.namespace, labels },
    type: 'Opaque',
    immutable: true,
    stringData: { ...spec.env },
  };

  const container = {
    name: 'worker',
    image: opts.image,
    ...(opts.cmd && { args: opts.cmd }),
    envFrom: [{ secretRef: { name: secret.metadata.name } }],
    // Paths, not secrets: where the mounted CA bundle is.
    ...(spec.caFile && {
      env: [
        { name: 'SSL_CERT_FILE', value: POD_CA_FILE },
        { name: 'NODE_EXTRA_CA_CERTS', value: POD_CA_FILE },
      ],
    }),
    ...(Object.keys(quantities).length > 0 && { resources: { requests: quantities, limits: quantities } }),
    ...(opts.healthCmd && {
      // The images' HEALTHCHECK (Kubernetes ignores it): fails when the worker has lost the gateway for 30 s;
      // with restartPolicy Never the pod then ends and the gateway starts a new one.
      livenessProbe: { exec: { command: opts.healthCmd }, initialDelaySeconds: 30, periodSeconds: 15, timeoutSeconds: 5, failureThreshold: 3 },
    }),
    securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
    volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }, ...(spec.caFile ? [{ name: 'wgs-ca', mountPath: POD_CA_FILE, readOnly: true }] : [])],
  };

  const pod: K8sPod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: node.namespace, labels, ...(Object.keys(annotations).length > 0 && { annotations }) },
    spec: {
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      shareProcessNamespace: true,
      terminationGracePeriodSeconds: TERMINATION_GRACE_SECONDS,
      securityContext: { runAsNonRoot: true, runAsUser: NOBODY, runAsGroup: NOBODY, seccompProfile: { type: 'RuntimeDefault' } },
      ...(affinity && { affinity }),
      containers: [container],
      volumes: [
        { name: 'tmp', emptyDir: { sizeLimit: '16Mi' } },
        ...(spec.caFile ? [{ name: 'wgs-ca', hostPath: { path: spec.caFile, type: 'File' } }] : []),
      ],
    },
  };
  return { secret, pod };
}
