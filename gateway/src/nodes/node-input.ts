import { createPrivateKey, X509Certificate } from 'node:crypto';
import { t } from 'elysia';
import { utils as sshUtils } from 'ssh2';
import type { SecretBox } from '../lib/secret-box';
import { ENGINES, NODE_STATUSES, type Engine, type Node } from '../db/schema';
import { formatCpu, formatMemory, MEMORY_PATTERN, parseCpu, parseMemory } from '../lib/resources';
import { ApiError } from '../http/errors';

const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$';
const LABEL_KEY_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$';
const LABEL_KEY_RE = new RegExp(LABEL_KEY_PATTERN);
const HOST_PATTERN = '^[A-Za-z0-9.:\\[\\]-]{1,253}$';

/** Docker Engine endpoints a node may name; `process` nodes run on the gateway itself. */
const DOCKER_SCHEMES = new Set(['unix:', 'tcp:', 'ssh:', 'http:', 'https:']);

const Capacity = t.Object(
  {
    cpu: t.Optional(t.Number({ exclusiveMinimum: 0, maximum: 4096, description: 'cores, e.g. 4 or 0.5' })),
    memory: t.Optional(t.String({ pattern: MEMORY_PATTERN, description: 'size string, e.g. "512m", "4g"' })),
  },
  // At least one: `{}` would configure nothing and read as a cleared capacity (null says that).
  { additionalProperties: false, minProperties: 1 },
);

const Labels = t.Record(t.String(), t.String({ maxLength: 253 }), {
  maxProperties: 64,
  description: `key/value labels used by placement; keys match ${LABEL_KEY_PATTERN}`,
  error: 'must be an object of up to 64 labels, each a string value',
});

const Tls = t.Object(
  {
    ca: t.String({ minLength: 1, maxLength: 65536, description: "PEM: the CA that signed the daemon's certificate" }),
    cert: t.String({ minLength: 1, maxLength: 65536, description: 'PEM: the client certificate' }),
    key: t.String({ minLength: 1, maxLength: 65536, description: 'PEM: the client private key (stored encrypted, never returned)' }),
  },
  { additionalProperties: false, description: 'TLS client certificate for a tcp:// or https:// Docker endpoint (dockerd --tlsverify)' },
);

/** OpenSSH's host key fingerprint format (`ssh-keygen -lf key.pub`). */
export const SSH_FINGERPRINT_PATTERN = '^SHA256:[A-Za-z0-9+/]{43}$';

const Ssh = t.Object(
  {
    privateKey: t.String({ minLength: 1, maxLength: 65536, description: 'the private key (OpenSSH or PEM) the gateway logs in with; stored encrypted, never returned' }),
    passphrase: t.Optional(t.String({ maxLength: 1024, description: "the key's passphrase, if it has one" })),
    hostKey: t.Optional(
      t.String({ pattern: SSH_FINGERPRINT_PATTERN, description: "the host key's fingerprint, `SHA256:…` as `ssh-keygen -lf` prints it; when set, any other host key is refused" }),
    ),
  },
  { additionalProperties: false, description: 'SSH login for an ssh:// Docker endpoint (the gateway runs `docker system dial-stdio` there)' },
);

const fields = {
  name: t.String({ pattern: NAME_PATTERN, description: 'unique; letters, digits, `_.-`, up to 63 characters' }),
  // Literals, not t.UnionEnum: Elysia gives a UnionEnum a default (its first
  // value), which a partial update would then write over the stored engine.
  engine: t.Union([t.Literal(ENGINES[0]), t.Literal(ENGINES[1]), t.Literal(ENGINES[2])], {
    description: 'where workers run on this node',
    error: `must be one of ${ENGINES.join(', ')}`,
  }),
  endpoint: t.String({
    minLength: 1,
    maxLength: 2048,
    description: '`local` for process; `unix:///var/run/docker.sock`, `tcp://host:2376` or `ssh://user@host` for docker and swarm',
  }),
  publicHost: t.Nullable(t.String({ pattern: HOST_PATTERN, description: 'host name or address clients reach this node at' })),
  labels: Labels,
  capacity: t.Nullable(Capacity, { error: 'must be an object {cpu?, memory?} with at least one of them, or null (no configured capacity)' }),
  network: t.Nullable(t.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$', description: 'Docker network for worker containers; null/absent = host networking' })),
  tls: t.Nullable(Tls),
  ssh: t.Nullable(Ssh),
};

export const CreateNodeBody = t.Object(
  {
    name: fields.name,
    engine: fields.engine,
    endpoint: t.Optional(fields.endpoint),
    publicHost: t.Optional(fields.publicHost),
    labels: t.Optional(fields.labels),
    capacity: t.Optional(fields.capacity),
    network: t.Optional(fields.network),
    tls: t.Optional(fields.tls),
    ssh: t.Optional(fields.ssh),
  },
  { additionalProperties: false },
);

export const UpdateNodeBody = t.Partial(t.Object(fields), { additionalProperties: false, minProperties: 1 });

export const NodeView = t.Object({
  id: t.Integer(),
  name: t.String(),
  engine: fields.engine,
  endpoint: t.String(),
  publicHost: t.Nullable(t.String()),
  network: t.Nullable(t.String()),
  labels: t.Record(t.String(), t.String()),
  capacity: t.Nullable(t.Object({ cpu: t.Nullable(t.Number()), memory: t.Nullable(t.String()) })),
  status: t.Union([t.Literal(NODE_STATUSES[0]), t.Literal(NODE_STATUSES[1]), t.Literal(NODE_STATUSES[2])]),
  statusReason: t.Nullable(t.String()),
  tls: t.Boolean({ description: 'true when a TLS client certificate is configured (it is never returned)' }),
  ssh: t.Nullable(
    t.Object({ hostKey: t.Nullable(t.String()) }, { description: 'set when an SSH key is configured (the key is never returned); hostKey: the pinned fingerprint' }),
  ),
  draining: t.Boolean({ description: 'true while drained: nothing new is placed here and instances move off' }),
  drain: t.Nullable(
    t.Object(
      {
        startedAt: t.Date(),
        total: t.Integer({ description: 'instances on the node when the drain began' }),
        moved: t.Integer(),
        remaining: t.Integer({ description: 'instances still on the node' }),
        failed: t.Array(t.Object({ instanceId: t.Integer(), reason: t.String() }), { description: 'moves that failed; retried every 10 s while drained' }),
        finishedAt: t.Nullable(t.Date()),
      },
      { description: "progress of this gateway's latest drain of the node" },
    ),
  ),
  reported: t.Nullable(
    t.Object(
      { cpu: t.Number(), memory: t.String(), engineVersion: t.Nullable(t.String()), workers: t.Nullable(t.Integer()) },
      { description: 'read off the node by the last health check: totals, Docker Engine version, running wgs worker containers' },
    ),
  ),
  lastSeenAt: t.Nullable(t.Date()),
  createdAt: t.Date(),
  updatedAt: t.Date(),
});

const invalid = (field: string, message: string) => new ApiError(422, 'invalid_field', `invalid field '${field}': ${message}`);

/** Checks an endpoint against its engine; returns the endpoint to store. */
export function checkEndpoint(engine: Engine, endpoint: string | undefined): string {
  if (engine === 'process') {
    if (endpoint !== undefined && endpoint !== 'local') {
      throw invalid('endpoint', `a process node runs workers on the gateway's own machine; endpoint must be "local"`);
    }
    return 'local';
  }
  if (endpoint === undefined) throw invalid('endpoint', `required for engine "${engine}"`);
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw invalid('endpoint', `"${endpoint}" is not a URL; use unix:///var/run/docker.sock, tcp://host:2376 or ssh://user@host`);
  }
  if (!DOCKER_SCHEMES.has(url.protocol)) {
    throw invalid('endpoint', `scheme "${url.protocol}" is not a Docker endpoint; use unix://, tcp://, ssh://, http:// or https://`);
  }
  if (url.protocol === 'unix:' ? !url.pathname || url.pathname === '/' : !url.hostname) {
    throw invalid('endpoint', `"${endpoint}" names no ${url.protocol === 'unix:' ? 'socket path' : 'host'}`);
  }
  return endpoint;
}

/** Label keys are checked here: a schema key pattern would silently drop bad keys. */
export function checkLabels(labels: Record<string, string>): Record<string, string> {
  for (const key of Object.keys(labels)) {
    if (!LABEL_KEY_RE.test(key)) throw invalid(`labels.${key}`, `label keys must match ${LABEL_KEY_PATTERN}`);
  }
  return labels;
}

/** Capacity columns for a capacity object; null clears both. */
export function capacityColumns(capacity: { cpu?: number; memory?: string } | null) {
  if (capacity === null) return { capacityMillicpu: null, capacityMemoryBytes: null };
  let capacityMillicpu: number | null = null;
  let capacityMemoryBytes: number | null = null;
  if (capacity.cpu !== undefined) {
    capacityMillicpu = parseCpu(capacity.cpu);
    if (capacityMillicpu === null) throw invalid('capacity.cpu', 'must be a positive number of cores in steps of 0.001');
  }
  if (capacity.memory !== undefined) {
    capacityMemoryBytes = parseMemory(capacity.memory);
    if (capacityMemoryBytes === null) throw invalid('capacity.memory', `"${capacity.memory}" is not a size like "512m" or "4g"`);
  }
  return { capacityMillicpu, capacityMemoryBytes };
}

/** Whether the endpoint is one a TLS client certificate applies to. */
export function takesTls(engine: Engine, endpoint: string): boolean {
  return engine !== 'process' && (endpoint.startsWith('tcp://') || endpoint.startsWith('https://'));
}

/** Whether the endpoint is one an SSH login applies to. */
export function takesSsh(engine: Engine, endpoint: string): boolean {
  return engine !== 'process' && endpoint.startsWith('ssh://');
}

/**
 * Columns for a node's SSH login: the key must parse (with its passphrase),
 * and is sealed with the passphrase as JSON. Only for ssh:// endpoints.
 */
export function sshColumns(engine: Engine, endpoint: string, ssh: { privateKey: string; passphrase?: string; hostKey?: string } | null, box: SecretBox) {
  if (ssh === null) return { sshKeyEncrypted: null, sshHostKey: null };
  if (!takesSsh(engine, endpoint)) {
    throw invalid('ssh', `an SSH login applies to ssh:// Docker endpoints, not ${engine === 'process' ? 'process nodes' : endpoint}`);
  }
  const parsed = sshUtils.parseKey(ssh.privateKey, ssh.passphrase);
  if (parsed instanceof Error || Array.isArray(parsed) || !parsed.isPrivateKey()) {
    const why = parsed instanceof Error ? parsed.message : 'not a private key';
    throw invalid('ssh.privateKey', `cannot use it${ssh.passphrase === undefined ? '' : ' with that passphrase'}: ${why}`);
  }
  return {
    sshKeyEncrypted: box.seal(JSON.stringify({ privateKey: ssh.privateKey, ...(ssh.passphrase !== undefined && { passphrase: ssh.passphrase }) })),
    sshHostKey: ssh.hostKey ?? null,
  };
}

/**
 * Columns for a node's TLS client certificate: each part is parsed here, so
 * a pasted-wrong PEM is a 422 now rather than an unreachable node later. The
 * key is sealed; null clears all three.
 */
export function tlsColumns(engine: Engine, endpoint: string, tls: { ca: string; cert: string; key: string } | null, box: SecretBox) {
  if (tls === null) return { tlsCa: null, tlsCert: null, tlsKeyEncrypted: null };
  if (!takesTls(engine, endpoint)) {
    throw invalid('tls', `client certificates apply to tcp:// and https:// Docker endpoints, not ${engine === 'process' ? 'process nodes' : endpoint}`);
  }
  for (const part of ['ca', 'cert'] as const) {
    try {
      new X509Certificate(tls[part]);
    } catch {
      throw invalid(`tls.${part}`, 'not a PEM certificate (-----BEGIN CERTIFICATE-----)');
    }
  }
  try {
    createPrivateKey(tls.key);
  } catch {
    throw invalid('tls.key', 'not a PEM private key (-----BEGIN PRIVATE KEY-----)');
  }
  return { tlsCa: tls.ca, tlsCert: tls.cert, tlsKeyEncrypted: box.seal(tls.key) };
}

export interface DrainView {
  startedAt: Date;
  total: number;
  moved: number;
  remaining: number;
  failed: { instanceId: number; reason: string }[];
  finishedAt: Date | null;
}

export function toNodeView(node: Node, drain: DrainView | null = null) {
  const {
    capacityMillicpu,
    capacityMemoryBytes,
    reportedMillicpu,
    reportedMemoryBytes,
    reportedVersion,
    reportedWorkers,
    tlsCa,
    tlsCert,
    tlsKeyEncrypted,
    drainingSince,
    sshKeyEncrypted,
    sshHostKey,
    ...rest
  } = node;
  const reported =
    reportedMillicpu === null || reportedMemoryBytes === null
      ? null
      : { cpu: formatCpu(reportedMillicpu), memory: formatMemory(reportedMemoryBytes), engineVersion: reportedVersion, workers: reportedWorkers };
  const capacity =
    capacityMillicpu === null && capacityMemoryBytes === null
      ? null
      : {
          cpu: capacityMillicpu === null ? null : formatCpu(capacityMillicpu),
          memory: capacityMemoryBytes === null ? null : formatMemory(capacityMemoryBytes),
        };
  const ssh = sshKeyEncrypted === null ? null : { hostKey: sshHostKey };
  return { ...rest, capacity, reported, tls: tlsKeyEncrypted !== null, ssh, draining: drainingSince !== null, drain };
}
