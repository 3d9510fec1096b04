/**
 * Operator screens (every call with the admin secret):
 * - nodes (gateway/src/routes/admin/nodes.ts): health, reserved CPU/memory
 *   against capacity as meters, the instances on each node, drain/undrain
 *   with progress, polled every second while a drain runs;
 * - users (gateway/src/routes/admin/users.ts): create, plan, delete, and
 *   their API keys (issue, shown once; revoke).
 */
import { useState } from 'preact/hooks';
import { api } from '../api';
import { ErrorBox } from '../components';
import { actThenReload, ConfirmButton, ShownOnce, usePoll } from './shown-once';
import './admin.css';

const admin = { admin: true } as const;

interface DrainView {
  startedAt: string;
  total: number;
  moved: number;
  remaining: number;
  failed: { instanceId: number; reason: string }[];
  finishedAt: string | null;
}

interface NodeView {
  id: number;
  name: string;
  engine: string;
  endpoint: string;
  publicHost: string | null;
  capacity: { cpu: number | null; memory: string | null } | null;
  status: 'unknown' | 'ready' | 'unreachable';
  statusReason: string | null;
  draining: boolean;
  drain: DrainView | null;
  reported: { cpu: number; memory: string; engineVersion: string | null; workers: number | null } | null;
  lastSeenAt: string | null;
}

interface NodeLoad {
  id: number;
  name: string;
  instances: number;
  reserved: { cpu: number; memoryBytes: number };
  capacity: { cpu: number | null; memoryBytes: number | null };
}

interface NodeInstance {
  id: number;
  userId: number;
  name: string | null;
  phone: string;
  provider: string;
  status: string;
  state: string;
  nodeId: number | null;
  targetNodeId: number | null;
}

/** While a drain runs, the nodes screen polls this often; otherwise every IDLE_POLL_MS. */
const DRAIN_POLL_MS = 1000;
const IDLE_POLL_MS = 5000;

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${Number.isInteger(n) ? n : n.toFixed(1)} ${units[i]}`;
}
const cores = (n: number) => `${Number(n.toFixed(3))} ${n === 1 ? 'core' : 'cores'}`;
const when = (iso: string | null) => (iso ? new Date(iso).toLocaleString() : 'never');

/** A labelled meter with its numbers in text as well; no capacity: the reservation alone, said in words. */
function Bar(props: { id: string; label: string; value: number; max: number | null; format: (n: number) => string }) {
  const { id, label, value, max, format } = props;
  if (max === null || max <= 0) {
    return (
      <div class="bar">
        <span class="bar-label" id={`${id}-label`}>
          {label}
        </span>
        <span class="bar-text">{format(value)} reserved · no capacity set or reported (unlimited)</span>
      </div>
    );
  }
  const pct = Math.round((value / max) * 100);
  const level = pct >= 90 ? 'high' : pct >= 70 ? 'mid' : 'low';
  return (
    <div class="bar">
      <label class="bar-label" for={id}>
        {label}
      </label>
      <meter id={id} class={`bar-meter ${level}`} min={0} max={max} value={Math.min(value, max)} low={max * 0.7} high={max * 0.9} optimum={0} aria-valuetext={`${format(value)} of ${format(max)} (${pct}%)`}>
        {pct}%
      </meter>
      <span class="bar-text">
        {format(value)} of {format(max)} ({pct}%)
      </span>
    </div>
  );
}

export function AdminNodesScreen() {
  const [nodes, setNodes] = useState<NodeView[] | null>(null);
  const [loads, setLoads] = useState<Map<number, NodeLoad>>(new Map());
  const [placed, setPlaced] = useState<Map<number, NodeInstance[]>>(new Map());
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<number | null>(null);

  async function load() {
    try {
      const [ns, ls] = await Promise.all([api<NodeView[]>('GET', '/admin/nodes', undefined, admin), api<NodeLoad[]>('GET', '/admin/nodes/loads', undefined, admin)]);
      const lists = await Promise.all(ns.map((n) => api<NodeInstance[]>('GET', `/admin/nodes/${n.id}/instances`, undefined, admin)));
      setNodes(ns);
      setLoads(new Map(ls.map((l) => [l.id, l])));
      setPlaced(new Map(ns.map((n, i) => [n.id, lists[i]!])));
      setError(null);
    } catch (err) {
      setError(err);
    }
  }

  const draining = (nodes ?? []).some((n) => n.draining && (n.drain === null || n.drain.finishedAt === null || n.drain.remaining > 0));
  usePoll(load, draining ? DRAIN_POLL_MS : IDLE_POLL_MS, []);

  async function toggleDrain(n: NodeView) {
    setBusy(n.id);
    try {
      await api('POST', `/admin/nodes/${n.id}/${n.draining ? 'undrain' : 'drain'}`, undefined, admin);
      setError(null);
    } catch (err) {
      setError(err);
    }
    await load();
    setBusy(null);
  }

  const nameOf = (id: number | null) => (id === null ? 'none' : (nodes?.find((n) => n.id === id)?.name ?? `node ${id}`));

  return (
    <section class="admin" aria-labelledby="admin-nodes-title">
      <h2 id="admin-nodes-title">Nodes</h2>
      <ErrorBox error={error} />
      {nodes === null ? (
        <p>Loading…</p>
      ) : (
        <ul class="node-list">
          {nodes.map((n) => {
            const load = loads.get(n.id);
            const here = placed.get(n.id) ?? [];
            const titleId = `node-${n.id}-title`;
            return (
              <li key={n.id}>
                <article class="node" aria-labelledby={titleId} data-node={n.name}>
                  <header class="node-head">
                    <h3 id={titleId}>{n.name}</h3>
                    <span class={`adm-badge adm-health-${n.status}`} title={n.statusReason ?? undefined}>
                      {n.status}
                    </span>
                    {n.draining && <span class="adm-badge draining">draining</span>}
                  </header>
                  <p class="node-meta">
                    {n.engine} · {n.endpoint}
                    {n.publicHost && <> · {n.publicHost}</>} · last seen {when(n.lastSeenAt)}
                    {n.statusReason && <> · {n.statusReason}</>}
                    {n.reported?.engineVersion && <> · Docker {n.reported.engineVersion}</>}
                  </p>
                  {load && (
                    <div class="bars">
                      <Bar id={`node-${n.id}-cpu`} label="CPU reserved" value={load.reserved.cpu} max={load.capacity.cpu} format={cores} />
                      <Bar id={`node-${n.id}-memory`} label="Memory reserved" value={load.reserved.memoryBytes} max={load.capacity.memoryBytes} format={bytes} />
                    </div>
                  )}
                  <p class="node-count" data-testid="node-instance-count">
                    {load?.instances ?? here.length} {(load?.instances ?? here.length) === 1 ? 'instance' : 'instances'}
                  </p>
                  <div class="node-actions">
                    <button type="button" disabled={busy === n.id} onClick={() => toggleDrain(n)} aria-label={`${n.draining ? 'Undrain' : 'Drain'} node ${n.name}`}>
                      {n.draining ? 'Undrain' : 'Drain'}
                    </button>
                  </div>
                  {n.drain && <DrainProgress node={n} drain={n.drain} />}
                  <details class="node-instances" open={here.length > 0 && here.length <= 20}>
                    <summary>Instances on {n.name} ({here.length})</summary>
                    {here.length === 0 ? (
                      <p>None.</p>
                    ) : (
                      <ul aria-label={`Instances on node ${n.name}`}>
                        {here.map((i) => (
                          <li key={i.id} data-instance-id={i.id}>
                            #{i.id} {i.name ?? i.phone} <small>({i.provider}, tenant {i.userId})</small> · {i.status}/{i.state}
                            {i.nodeId === n.id && i.targetNodeId !== null && <strong> → moving to {nameOf(i.targetNodeId)}</strong>}
                            {i.nodeId !== n.id && <strong> ← arriving from {nameOf(i.nodeId)}</strong>}
                          </li>
                        ))}
                      </ul>
                    )}
                  </details>
                </article>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}

function DrainProgress(props: { node: NodeView; drain: DrainView }) {
  const { node, drain } = props;
  const done = drain.finishedAt !== null && drain.remaining === 0;
  const id = `node-${node.id}-drain`;
  return (
    <div class="drain" data-testid="drain-progress">
      <label for={id}>Drain of {node.name}</label>{' '}
      <progress id={id} max={Math.max(drain.total, 1)} value={drain.total === 0 ? 1 : drain.moved} />
      <p role="status">
        {done
          ? `Done: ${drain.moved} of ${drain.total} moved, the node is empty.`
          : `Moved ${drain.moved} of ${drain.total}; ${drain.remaining} left on the node.`}
        {drain.failed.length > 0 && ` ${drain.failed.length} failed (retried every 10 s): ${drain.failed.map((f) => `#${f.instanceId} ${f.reason}`).join('; ')}`}
        {!node.draining && ' Undrained: the node takes instances again.'}
      </p>
    </div>
  );
}

interface KeyInfo {
  id: number;
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
}
interface UserView {
  id: number;
  email: string;
  createdAt: string;
  keys: KeyInfo[];
}
interface PlanInfo {
  id: number;
  name: string;
  default: boolean;
}

export function AdminUsersScreen() {
  const [users, setUsers] = useState<UserView[] | null>(null);
  const [plans, setPlans] = useState<PlanInfo[]>([]);
  const [planOf, setPlanOf] = useState<Map<number, number | null>>(new Map());
  const [error, setError] = useState<unknown>(null);
  const [secret, setSecret] = useState<{ title: string; value: string } | null>(null);
  const [email, setEmail] = useState('');

  async function load() {
    try {
      const [us, ps] = await Promise.all([api<UserView[]>('GET', '/admin/users', undefined, admin), api<PlanInfo[]>('GET', '/admin/plans', undefined, admin).catch(() => [])]);
      // The list has no plans: each user's own view does (few users on an operator's screen).
      const details = await Promise.all(us.map((u) => api<{ planId: number | null }>('GET', `/admin/users/${u.id}`, undefined, admin).catch(() => null)));
      setUsers(us);
      setPlans(ps);
      setPlanOf(new Map(us.map((u, i) => [u.id, details[i]?.planId ?? null])));
      setError(null);
    } catch (err) {
      setError(err);
    }
  }
  usePoll(load, 30_000, []);

  const act = actThenReload(load, setError);

  async function create(e: Event) {
    e.preventDefault();
    await act(async () => {
      const u = await api<{ id: number; email: string; apiKey: string }>('POST', '/admin/users', { email: email.trim() }, admin);
      setSecret({ title: `API key of ${u.email}`, value: u.apiKey });
      setEmail('');
    });
  }

  return (
    <section class="admin" aria-labelledby="admin-users-title">
      <h2 id="admin-users-title">Users</h2>
      <ErrorBox error={error} />
      {secret && <ShownOnce title={secret.title} value={secret.value} onDone={() => setSecret(null)} />}
      <form class="admin-create" onSubmit={create}>
        <label for="new-user-email">Email of the new user</label>
        <div class="admin-create-row">
          <input id="new-user-email" type="email" required value={email} onInput={(e) => setEmail((e.target as HTMLInputElement).value)} autoComplete="off" />
          <button type="submit" class="primary">
            Create user
          </button>
        </div>
        <p class="hint">The user's first API key is shown once, right after.</p>
      </form>
      {users === null ? (
        <p>Loading…</p>
      ) : users.length === 0 ? (
        <p>No users yet.</p>
      ) : (
        <ul class="user-list">
          {users.map((u) => {
            const titleId = `user-${u.id}-title`;
            const current = planOf.get(u.id) ?? null;
            return (
              <li key={u.id}>
                <article class="user" aria-labelledby={titleId} data-user={u.email}>
                  <header class="node-head">
                    <h3 id={titleId}>{u.email}</h3>
                    <small>user {u.id} · since {when(u.createdAt)}</small>
                  </header>
                  {plans.length > 0 && (
                    <div class="user-plan">
                      <label for={`user-${u.id}-plan`}>Plan</label>{' '}
                      <select
                        id={`user-${u.id}-plan`}
                        value={current === null ? '' : String(current)}
                        onChange={(e) => {
                          const v = (e.target as HTMLSelectElement).value;
                          void act(() => api('PATCH', `/admin/users/${u.id}`, { planId: v === '' ? null : Number(v) }, admin));
                        }}
                      >
                        <option value="">the default plan ({plans.find((p) => p.default)?.name ?? 'default'})</option>
                        {plans.map((p) => (
                          <option key={p.id} value={String(p.id)}>
                            {p.name}
                          </option>
                        ))}
                      </select>
                    </div>
                  )}
                  <h4>API keys</h4>
                  {u.keys.length === 0 ? (
                    <p>No keys: this user cannot call the API.</p>
                  ) : (
                    <div class="adm-scroll" role="region" tabIndex={0} aria-label={`API keys of ${u.email}`}>
                      <table class="keys">
                        <thead>
                          <tr>
                            <th scope="col">Key</th>
                            <th scope="col">Created</th>
                            <th scope="col">Last used</th>
                            <th scope="col">
                              <span class="visually-hidden">Actions</span>
                            </th>
                          </tr>
                        </thead>
                        <tbody>
                          {u.keys.map((k) => (
                            <tr key={k.id} data-key-id={k.id}>
                              <td data-label="Key">
                                <code>{k.prefix}…</code>
                              </td>
                              <td data-label="Created">{when(k.createdAt)}</td>
                              <td data-label="Last used">{when(k.lastUsedAt)}</td>
                              <td data-label="Actions">
                                <ConfirmButton
                                  label="Revoke"
                                  ariaLabel={`Revoke key ${k.prefix} of ${u.email}`}
                                  confirmLabel="Really revoke?"
                                  onConfirm={() => act(() => api('DELETE', `/admin/users/${u.id}/keys/${k.id}`, undefined, admin))}
                                />
                              </td>
                            </tr>
                          ))}
                        </tbody>
                      </table>
                    </div>
                  )}
                  <div class="node-actions">
                    <button
                      type="button"
                      aria-label={`New API key for ${u.email}`}
                      onClick={() =>
                        act(async () => {
                          const k = await api<{ apiKey: string }>('POST', `/admin/users/${u.id}/keys`, undefined, admin);
                          setSecret({ title: `New API key of ${u.email}`, value: k.apiKey });
                        })
                      }
                    >
                      New API key
                    </button>
                    <ConfirmButton label="Delete user" ariaLabel={`Delete user ${u.email}`} confirmLabel="Really delete?" onConfirm={() => act(() => api('DELETE', `/admin/users/${u.id}`, undefined, admin))} />
                  </div>
                </article>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
