/**
 * Instances: the tenant's numbers with provider, node, status and state,
 * kept live by the all-instances event stream; create, restart, log out,
 * migrate and delete.
 */
import { useEffect, useState } from 'preact/hooks';
import { api, openStream, session, type StreamEvent } from '../api';
import { Badge, ErrorBox, Notice } from '../components';
import { navigate } from '../router';

export interface Instance {
  id: number;
  name: string | null;
  phone: string;
  provider: string;
  status: string;
  statusReason: string | null;
  state: string;
  stateReason: string | null;
  node: string | null;
  nodeId: number | null;
  webhook: string | null;
  resources: { cpu: string | null; memory: string | null };
  pausedUntil: string | null;
  pausedReason: string | null;
}

/** Providers a create form offers (waba needs Cloud API credentials: create those with the API). */
const PROVIDERS = ['sandbox', 'whatsmeow', 'baileys'];

/** An instance event applied to the instance it is about. */
export function applyEvent(i: Instance, ev: StreamEvent): Instance {
  if (ev.type === 'instance.status') {
    const { status, statusReason, state, stateReason } = ev.data ?? {};
    return { ...i, status: status ?? i.status, statusReason: statusReason ?? null, state: state ?? i.state, stateReason: stateReason ?? null };
  }
  if (ev.type === 'instance.migrated' && ev.data?.to) return { ...i, node: ev.data.to };
  if (ev.type === 'instance.paused') return { ...i, pausedUntil: ev.data?.until ?? null, pausedReason: ev.data?.reason ?? null };
  if (ev.type === 'instance.resumed') return { ...i, pausedUntil: null, pausedReason: null };
  return i;
}

/**
 * What a person should know when an instance cannot work, or null: a failed
 * worker, a failed or logged-out session, an unreachable node, no room on
 * any node.
 */
export function problemOf(i: Instance): { title: string; detail: string; code: string } | null {
  const reason = `${i.statusReason ?? ''} ${i.stateReason ?? ''}`;
  if (/no (other )?node can take|no_capacity/i.test(reason)) {
    return { code: 'no_capacity', title: 'No node has room for this number', detail: `${i.statusReason ?? i.stateReason}. Free capacity (or ask the operator for a node), then restart it.` };
  }
  if (/unreachable/i.test(reason)) {
    return { code: 'node_unreachable', title: `Node ${i.node ?? ''} is unreachable`, detail: `${i.statusReason ?? i.stateReason}. The number comes back when the node answers again or moves to another node.` };
  }
  if (i.status === 'error' || i.status === 'failed') {
    return { code: 'worker_failed', title: 'The worker is not running', detail: `${i.statusReason ?? 'no reason given'}. Fix the cause, then restart the instance.` };
  }
  if (i.state === 'failed' && i.provider === 'waba') {
    return {
      code: 'session_failed',
      title: 'The Cloud API refuses this number',
      detail: `${i.stateReason ?? 'no reason given'}. It does not come back by waiting: fix the cause (an expired or revoked access token: give the instance a new one with PATCH /api/instances/${i.id}), then restart it.`,
    };
  }
  if (i.state === 'failed') {
    return { code: 'session_failed', title: 'The WhatsApp session failed', detail: `${i.stateReason ?? 'no reason given'}. It does not come back by waiting: fix the cause (a ban, another device took over), then restart or log out and link again.` };
  }
  if (i.state === 'logged_out') {
    return { code: 'logged_out', title: 'This number was logged out', detail: `${i.stateReason ?? 'logged out'}. Link it again with the new QR code or a pairing code.` };
  }
  if (i.status === 'stopped') return { code: 'stopped', title: 'The worker is stopped', detail: `${i.statusReason ?? ''} Restart it to use the number.` };
  return null;
}

/**
 * Node names a tenant can pick: operators (with the admin secret) get the
 * list (undefined while it loads); everyone else, or when it cannot be read,
 * types a name (null).
 */
export function useNodeNames(): { name: string; status: string; draining: boolean }[] | null | undefined {
  const [nodes, setNodes] = useState<{ name: string; status: string; draining: boolean }[] | null | undefined>(session.adminSecret ? undefined : null);
  useEffect(() => {
    if (!session.adminSecret) return;
    api<any[]>('GET', '/admin/nodes', undefined, { admin: true }).then(
      (rows) => setNodes(rows.map((n) => ({ name: String(n.name), status: String(n.status ?? ''), draining: Boolean(n.draining ?? n.drain) }))),
      () => setNodes(null),
    );
  }, []);
  return nodes;
}

/** A node field: a picker of the nodes when they are known, else free text. */
export function NodeField({ id, value, onChange, label, emptyLabel }: { id: string; value: string; onChange: (v: string) => void; label: string; emptyLabel: string }) {
  const nodes = useNodeNames();
  return (
    <>
      <label for={id}>{label}</label>
      {nodes === undefined ? (
        <select id={id} disabled data-testid={id}>
          <option value="">loading nodes…</option>
        </select>
      ) : nodes ? (
        <select id={id} value={value} onChange={(e) => onChange(e.currentTarget.value)} data-testid={id}>
          <option value="">{emptyLabel}</option>
          {nodes.map((n) => (
            <option value={n.name} key={n.name}>
              {n.name}
              {n.status ? ` (${n.status}${n.draining ? ', draining' : ''})` : ''}
            </option>
          ))}
        </select>
      ) : (
        <input id={id} value={value} placeholder={emptyLabel} maxLength={63} onInput={(e) => onChange(e.currentTarget.value)} data-testid={id} />
      )}
    </>
  );
}

/** What a refused create means, by the gateway's error code. */
const CREATE_HINTS: Record<string, string> = {
  no_capacity: 'No node can take this instance, so nothing was created.',
  worker_unavailable: 'That node cannot run this provider, so nothing was created.',
  worker_not_running: 'The instance was created, but its worker did not start.',
  phone_taken: 'You already have this number.',
};

/** What a refused action means, by the gateway's error code. */
const ACTION_HINTS: Record<string, string> = {
  node_not_ready: 'That node cannot take instances now; the instance stays where it is.',
  no_capacity: 'No other node has room for it; the instance stays where it is.',
  migration_failed: 'The move failed; the instance is back on its old node.',
  migration_in_progress: 'A move is under way; try again when it is done.',
};

/** Restart, log out, migrate (to a node picked or the scheduler's choice) and delete, with their errors. */
export function InstanceActions({ instance, onChanged, onDeleted, compact }: { instance: Instance; onChanged: (i?: Instance) => void; onDeleted: () => void; compact?: boolean }) {
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [migrating, setMigrating] = useState(false);
  const [target, setTarget] = useState('');
  const [confirmDelete, setConfirmDelete] = useState(false);
  const label = instance.name ?? `+${instance.phone}`;

  const run = async (what: string, call: () => Promise<unknown>) => {
    setBusy(what);
    setError(null);
    try {
      await call();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(null);
    }
  };
  const restart = () => run('restart', async () => onChanged(await api<Instance>('POST', `/api/instances/${instance.id}/restart`)));
  const logout = () => run('logout', async () => (await api('POST', `/api/instances/${instance.id}/logout`), onChanged()));
  const migrate = (e: Event) => {
    e.preventDefault();
    void run('migrate', async () => {
      const moved = await api<{ instance: Instance }>('POST', `/api/instances/${instance.id}/migrate`, target ? { target_node: target } : {});
      setMigrating(false);
      onChanged(moved.instance);
    });
  };
  const remove = () =>
    run('delete', async () => {
      await api('DELETE', `/api/instances/${instance.id}`);
      onDeleted();
    });

  return (
    <div class={compact ? 'actions compact' : 'actions'}>
      <button type="button" onClick={restart} disabled={busy !== null} aria-label={`Restart ${label}`} data-testid="restart">
        {busy === 'restart' ? 'Restarting…' : 'Restart'}
      </button>
      <button type="button" onClick={logout} disabled={busy !== null || instance.provider === 'waba'} aria-label={`Log out ${label}`} data-testid="logout">
        {busy === 'logout' ? 'Logging out…' : 'Log out'}
      </button>
      <button type="button" onClick={() => setMigrating(!migrating)} disabled={busy !== null} aria-expanded={migrating} aria-label={`Migrate ${label} to another node`} data-testid="migrate">
        Migrate…
      </button>
      {confirmDelete ? (
        <>
          <button type="button" class="danger" onClick={remove} disabled={busy !== null} aria-label={`Confirm: delete ${label} and its session`} data-testid="delete-confirm">
            {busy === 'delete' ? 'Deleting…' : 'Really delete'}
          </button>
          <button type="button" onClick={() => setConfirmDelete(false)} aria-label="Keep it" data-testid="delete-cancel">
            Keep
          </button>
        </>
      ) : (
        <button type="button" class="danger" onClick={() => setConfirmDelete(true)} disabled={busy !== null} aria-label={`Delete ${label}`} data-testid="delete">
          Delete
        </button>
      )}
      {migrating && (
        <form class="inline-form" onSubmit={migrate} data-testid="migrate-form">
          <NodeField id={`migrate-node-${instance.id}`} value={target} onChange={setTarget} label="Target node" emptyLabel="best other node (scheduler)" />
          <button type="submit" class="primary" disabled={busy !== null} data-testid="migrate-submit">
            {busy === 'migrate' ? 'Moving…' : 'Move'}
          </button>
        </form>
      )}
      <ErrorBox error={error} testid="action-error" hints={ACTION_HINTS} />
    </div>
  );
}

function CreateForm({ onCreated }: { onCreated: (i: Instance) => void }) {
  const [provider, setProvider] = useState('sandbox');
  const [phone, setPhone] = useState('');
  const [name, setName] = useState('');
  const [node, setNode] = useState('');
  const [cpu, setCpu] = useState('');
  const [memory, setMemory] = useState('');
  const [webhook, setWebhook] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [secret, setSecret] = useState<string | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setSecret(null);
    const resources = { ...(cpu.trim() && { cpu: cpu.trim() }), ...(memory.trim() && { memory: memory.trim() }) };
    const body = {
      provider,
      phone: phone.trim(),
      ...(name.trim() && { name: name.trim() }),
      ...(node.trim() && { node: node.trim() }),
      ...(webhook.trim() && { webhook: webhook.trim() }),
      ...(Object.keys(resources).length > 0 && { resources }),
    };
    try {
      const created = await api<Instance & { webhookSecret?: string }>('POST', '/api/instances', body);
      if (created.webhookSecret) setSecret(created.webhookSecret);
      setPhone('');
      setName('');
      onCreated(created);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="card create" onSubmit={submit} aria-labelledby="create-title" data-testid="create-form">
      <h2 id="create-title">New instance</h2>
      <div class="grid">
        <div class="field">
          <label for="create-provider">Provider</label>
          <select id="create-provider" value={provider} onChange={(e) => setProvider(e.currentTarget.value)} data-testid="create-provider">
            {PROVIDERS.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="create-phone">Phone number</label>
          <input id="create-phone" type="tel" required placeholder="+4915100000001" value={phone} onInput={(e) => setPhone(e.currentTarget.value)} data-testid="create-phone" />
        </div>
        <div class="field">
          <label for="create-name">Name (optional)</label>
          <input id="create-name" maxLength={100} value={name} onInput={(e) => setName(e.currentTarget.value)} data-testid="create-name" />
        </div>
        <div class="field">
          <NodeField id="create-node" value={node} onChange={setNode} label="Node (optional)" emptyLabel="least loaded node" />
        </div>
        <div class="field">
          <label for="create-cpu">CPU limit (cores, optional)</label>
          <input id="create-cpu" inputMode="decimal" placeholder="0.5" value={cpu} onInput={(e) => setCpu(e.currentTarget.value)} data-testid="create-cpu" />
        </div>
        <div class="field">
          <label for="create-memory">Memory limit (optional)</label>
          <input id="create-memory" placeholder="512m" value={memory} onInput={(e) => setMemory(e.currentTarget.value)} data-testid="create-memory" />
        </div>
        <div class="field wide">
          <label for="create-webhook">Webhook URL (optional)</label>
          <input id="create-webhook" type="url" placeholder="https://example.com/hooks/wgs" value={webhook} onInput={(e) => setWebhook(e.currentTarget.value)} data-testid="create-webhook" />
        </div>
      </div>
      <ErrorBox error={error} testid="create-error" hints={CREATE_HINTS} />
      {secret && (
        <Notice kind="warn" testid="create-webhook-secret">
          Webhook signing secret, shown once: <code>{secret}</code>
        </Notice>
      )}
      <button type="submit" class="primary" disabled={busy} data-testid="create-submit">
        {busy ? 'Creating… (starting its worker)' : 'Create instance'}
      </button>
    </form>
  );
}

export function InstancesScreen() {
  const [list, setList] = useState<Instance[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [live, setLive] = useState(false);

  const load = () =>
    api<Instance[]>('GET', '/api/instances').then(
      (rows) => {
        setList(rows);
        setError(null);
      },
      (err) => setError(err),
    );

  useEffect(() => {
    void load();
    return openStream(
      '/api/events/stream',
      (ev) => {
        setList((rows) => {
          if (!rows) return rows;
          if (ev.type === 'instance.deleted') return rows.filter((r) => r.id !== ev.instanceId); // here or elsewhere
          if (!rows.some((r) => r.id === ev.instanceId)) {
            void load(); // an instance made elsewhere
            return rows;
          }
          return rows.map((r) => (r.id === ev.instanceId ? applyEvent(r, ev) : r));
        });
      },
      {
        types: ['instance.status', 'instance.migrated', 'instance.paused', 'instance.resumed', 'instance.deleted'],
        onOpen: () => {
          setLive(true);
          void load();
        },
        onError: () => setLive(false),
      },
    );
  }, []);

  const replace = (i?: Instance) => (i ? setList((rows) => rows?.map((r) => (r.id === i.id ? i : r)) ?? rows) : void load());

  return (
    <section aria-labelledby="instances-title">
      <div class="title-row">
        <h1 id="instances-title">Instances</h1>
        <span class={`live ${live ? 'on' : ''}`} data-testid="live-indicator">
          {live ? 'live' : 'connecting…'}
        </span>
      </div>
      <ErrorBox error={error} testid="instances-error" />
      {list === null && !error && <p role="status">Loading…</p>}
      {list && list.length === 0 && <p data-testid="instances-empty">No instances yet: create one below.</p>}
      {list && list.length > 0 && (
        <table class="instances" data-testid="instances-table">
          <caption class="sr-only">Your instances, updated live</caption>
          <thead>
            <tr>
              <th scope="col">Number</th>
              <th scope="col">Provider</th>
              <th scope="col">Node</th>
              <th scope="col">Status</th>
              <th scope="col">State</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.map((i) => {
              const problem = problemOf(i);
              return (
                <tr key={i.id} data-testid={`instance-row-${i.id}`} data-instance-id={i.id}>
                  <td data-label="Number">
                    <a href={`#/instances/${i.id}`} data-testid="instance-link">
                      {i.name ? `${i.name} ` : ''}+{i.phone}
                    </a>
                    <div class="muted small">#{i.id}</div>
                  </td>
                  <td data-label="Provider">{i.provider}</td>
                  <td data-label="Node" data-testid="instance-node">
                    {i.node ?? '—'}
                  </td>
                  <td data-label="Status">
                    <Badge value={i.status} testid="instance-status" />
                    {i.statusReason && <div class="muted small">{i.statusReason}</div>}
                  </td>
                  <td data-label="State">
                    <Badge value={i.state} testid="instance-state" />
                    {i.stateReason && <div class="muted small">{i.stateReason}</div>}
                    {problem && (
                      <div class="small problem" data-testid="instance-problem">
                        {problem.title}
                      </div>
                    )}
                  </td>
                  <td data-label="Actions">
                    <InstanceActions instance={i} compact onChanged={replace} onDeleted={() => setList((rows) => rows?.filter((r) => r.id !== i.id) ?? rows)} />
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <CreateForm
        onCreated={(created) => {
          setList((rows) => [...(rows ?? []).filter((r) => r.id !== created.id), created]);
          navigate(`#/instances/${created.id}`);
        }}
      />
    </section>
  );
}

