/**
 * An instance's webhook subscriptions (gateway/src/routes/api/webhooks.ts):
 * create one with an event filter, enable/disable, delete, rotate its signing
 * secret (shown once), and its deliveries with status, attempts, last status
 * code and response excerpt, each with Replay. Deliveries are polled: they
 * are not events of the stream.
 */
import { useState } from 'preact/hooks';
import { api, EVENT_TYPES } from '../api';
import { ErrorBox } from '../components';
import { actThenReload, ConfirmButton, ShownOnce, usePoll } from './shown-once';
import './webhooks.css';

/** The event types a subscription may filter on (the e2e test checks they match the gateway's). */
export { EVENT_TYPES };

interface Webhook {
  id: number;
  url: string;
  events: string[] | null;
  enabled: boolean;
  disabledReason: string | null;
  createdAt: string;
  updatedAt: string;
}

interface Delivery {
  id: number;
  eventId: number;
  eventType: string;
  status: 'pending' | 'succeeded' | 'failed' | string;
  attempts: number;
  nextAttemptAt: string | null;
  lastStatusCode: number | null;
  lastLatencyMs: number | null;
  lastError: string | null;
  responseExcerpt: string | null;
  createdAt: string;
  completedAt: string | null;
}

const POLL_MS = 2000;
const time = (iso: string | null) => (iso ? new Date(iso).toLocaleTimeString() : '—');

export function WebhooksScreen(props: { instanceId: number }) {
  const base = `/api/instances/${props.instanceId}/webhooks`;
  const [hooks, setHooks] = useState<Webhook[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [secret, setSecret] = useState<{ webhookId: number; value: string; why: string } | null>(null);

  async function load() {
    try {
      setHooks(await api<Webhook[]>('GET', base));
      setError(null);
    } catch (err) {
      setError(err);
    }
  }
  usePoll(load, 10_000, [props.instanceId]);

  const act = actThenReload(load, setError);

  return (
    <section class="webhooks" aria-labelledby="webhooks-title">
      <p class="wh-back">
        <a href={`#/instances/${props.instanceId}`}>← Instance {props.instanceId}</a>
      </p>
      <h2 id="webhooks-title">Webhooks of instance {props.instanceId}</h2>
      <ErrorBox error={error} />
      {secret && (
        <ShownOnce
          title={`Signing secret of subscription ${secret.webhookId} (${secret.why})`}
          value={secret.value}
          onDone={() => setSecret(null)}
        />
      )}
      <CreateForm
        onCreate={async (url, events) => {
          try {
            const created = await api<Webhook & { secret: string }>('POST', base, { url, events });
            setSecret({ webhookId: created.id, value: created.secret, why: 'new' });
            setError(null);
            await load();
            return true;
          } catch (err) {
            setError(err);
            return false;
          }
        }}
      />
      <h3>Subscriptions</h3>
      {hooks === null ? (
        <p>Loading…</p>
      ) : hooks.length === 0 ? (
        <p>No subscriptions yet: add a URL above to receive this instance's events.</p>
      ) : (
        <ul class="webhooks-list">
          {hooks.map((w) => (
            <li key={w.id}>
              <Subscription
                base={base}
                hook={w}
                onToggle={() => act(() => api('PATCH', `${base}/${w.id}`, { enabled: !w.enabled }))}
                onDelete={() =>
                  act(async () => {
                    await api('DELETE', `${base}/${w.id}`);
                    if (secret?.webhookId === w.id) setSecret(null);
                  })
                }
                onRotate={() =>
                  act(async () => {
                    const r = await api<{ secret: string }>('POST', `${base}/${w.id}/rotate-secret`);
                    setSecret({ webhookId: w.id, value: r.secret, why: 'rotated: deliveries from now on are signed with it' });
                  })
                }
              />
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function CreateForm(props: { onCreate: (url: string, events: string[] | null) => Promise<boolean> }) {
  const [url, setUrl] = useState('');
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    // Nothing ticked: every type (the API's null).
    const ok = await props.onCreate(url.trim(), picked.size === 0 ? null : EVENT_TYPES.filter((t) => picked.has(t)));
    setBusy(false);
    if (ok) {
      setUrl('');
      setPicked(new Set());
    }
  }

  return (
    <form class="webhooks-create" onSubmit={submit} aria-labelledby="webhooks-create-title">
      <h3 id="webhooks-create-title">Add a subscription</h3>
      <label for="webhook-url">Receiver URL</label>
      <input
        id="webhook-url"
        name="url"
        type="url"
        required
        placeholder="https://example.com/wgs-hook"
        value={url}
        onInput={(e) => setUrl((e.target as HTMLInputElement).value)}
      />
      <fieldset>
        <legend>Events (none ticked: all of them)</legend>
        <div class="webhooks-events">
          {EVENT_TYPES.map((t) => (
            <label key={t} class="webhooks-event">
              <input
                type="checkbox"
                name="events"
                value={t}
                checked={picked.has(t)}
                onChange={(e) => {
                  const next = new Set(picked);
                  if ((e.target as HTMLInputElement).checked) next.add(t);
                  else next.delete(t);
                  setPicked(next);
                }}
              />{' '}
              {t}
            </label>
          ))}
        </div>
      </fieldset>
      <button type="submit" class="primary" disabled={busy}>
        {busy ? 'Adding…' : 'Add subscription'}
      </button>
    </form>
  );
}

function Subscription(props: { base: string; hook: Webhook; onToggle: () => void; onDelete: () => void; onRotate: () => void }) {
  const w = props.hook;
  const path = `${props.base}/${w.id}/deliveries`;
  const [deliveries, setDeliveries] = useState<Delivery[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [replayed, setReplayed] = useState<Map<number, number>>(new Map());

  async function load() {
    try {
      setDeliveries(await api<Delivery[]>('GET', `${path}?limit=50`));
      setError(null);
    } catch (err) {
      setError(err);
    }
  }
  usePoll(load, POLL_MS, [path]);

  async function replay(d: Delivery) {
    try {
      await api('POST', `${path}/${d.id}/replay`);
      setReplayed(new Map(replayed).set(d.id, (replayed.get(d.id) ?? 0) + 1));
      setError(null);
    } catch (err) {
      setError(err);
    }
    await load();
  }

  const titleId = `webhook-${w.id}-title`;
  return (
    <article class="webhook" aria-labelledby={titleId} data-webhook-id={w.id}>
      <header class="webhook-head">
        <h4 id={titleId}>
          <span class="webhook-url">{w.url}</span>
        </h4>
        <span class={`wh-badge ${w.enabled ? 'wh-on' : 'wh-off'}`}>{w.enabled ? 'enabled' : 'disabled'}</span>
      </header>
      <p class="webhook-meta">
        Subscription {w.id} · events: {w.events === null ? 'all' : w.events.join(', ')}
        {w.disabledReason && <> · disabled because: {w.disabledReason}</>}
      </p>
      <div class="webhook-actions">
        <button type="button" onClick={props.onToggle} aria-label={`${w.enabled ? 'Disable' : 'Enable'} subscription ${w.id}`}>
          {w.enabled ? 'Disable' : 'Enable'}
        </button>
        <button type="button" onClick={props.onRotate} aria-label={`Rotate the signing secret of subscription ${w.id}`}>
          Rotate secret
        </button>
        <ConfirmButton label="Delete" confirmLabel="Really delete?" ariaLabel={`Delete subscription ${w.id}`} onConfirm={props.onDelete} />
      </div>
      <ErrorBox error={error} />
      <h5>Deliveries</h5>
      {deliveries === null ? (
        <p>Loading…</p>
      ) : deliveries.length === 0 ? (
        <p>No deliveries yet: they appear here as events happen.</p>
      ) : (
        <div class="wh-scroll" tabIndex={0} role="region" aria-label={`Deliveries of subscription ${w.id}`}>
          <table class="deliveries">
            <thead>
              <tr>
                <th scope="col">Delivery</th>
                <th scope="col">Event</th>
                <th scope="col">Status</th>
                <th scope="col">Attempts</th>
                <th scope="col">Last code</th>
                <th scope="col">Response</th>
                <th scope="col">Last attempt</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {deliveries.map((d) => (
                <tr key={d.id} data-delivery-id={d.id} data-status={d.status}>
                  <td data-label="Delivery">{d.id}</td>
                  <td data-label="Event" data-col="event">
                    {d.eventType} <small class="muted">#{d.eventId}</small>
                  </td>
                  <td data-label="Status">
                    <span class={`wh-badge wh-status-${d.status}`}>{d.status}</span>
                    {d.status === 'pending' && d.nextAttemptAt && <small> next {time(d.nextAttemptAt)}</small>}
                  </td>
                  <td data-label="Attempts" class="num" data-col="attempts">
                    {d.attempts}
                  </td>
                  <td data-label="Last code" class="num" data-col="code">
                    {d.lastStatusCode ?? '—'}
                  </td>
                  <td data-label="Response" class="excerpt" data-col="response">
                    {d.responseExcerpt ? <code>{d.responseExcerpt}</code> : d.lastError ? <em>{d.lastError}</em> : '—'}
                  </td>
                  <td data-label="Last attempt" data-col="completed">
                    {time(d.completedAt)}
                    {d.lastLatencyMs !== null && <small> ({d.lastLatencyMs} ms)</small>}
                    {replayed.has(d.id) && <small class="replayed"> · replayed ×{replayed.get(d.id)}</small>}
                  </td>
                  <td data-label="Actions">
                    <button type="button" onClick={() => replay(d)} aria-label={`Replay delivery ${d.id}`} disabled={d.status === 'pending'}>
                      Replay
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </article>
  );
}
