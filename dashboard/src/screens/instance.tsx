/**
 * One instance: its state, linking (the live QR with a countdown, a pairing
 * code, the sandbox's scan), what is wrong when it cannot work, and
 * messages: send a text or a file, the recent ones with their status
 * advancing live, and the recently received ones (the event log's, then live).
 */
import QRCode from 'qrcode';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, openStream, type EventPage, type StreamEvent } from '../api';
import { Badge, describeError, ErrorBox, fmtTime, Notice } from '../components';
import { navigate } from '../router';
import { applyEvent, InstanceActions, problemOf, type Instance } from './instances';

interface Qr {
  qr: string;
  expiresAt: string;
}

interface Message {
  id: string;
  to: string;
  type: string;
  status: string;
  error?: string;
  timestamps: { createdAt: string; sentAt: string | null; deliveredAt: string | null; readAt: string | null; failedAt: string | null };
}

interface Received {
  eventId: number;
  from: string;
  type: string;
  text: string;
  at: string;
}

/** How many received messages the screen keeps. */
const RECEIVED_KEPT = 20;

const toReceived = (ev: StreamEvent): Received => ({
  eventId: ev.id,
  from: String(ev.data?.from ?? ''),
  type: String(ev.data?.type ?? 'text'),
  text: String(ev.data?.text ?? ev.data?.caption ?? ''),
  at: ev.createdAt,
});

/** The log's page and the live events together: each event once, newest first. */
function mergeReceived(cur: Received[], more: Received[]): Received[] {
  const byId = new Map(cur.map((r) => [r.eventId, r]));
  for (const r of more) byId.set(r.eventId, r);
  return [...byId.values()].sort((x, y) => y.eventId - x.eventId).slice(0, RECEIVED_KEPT);
}

/** Receipts only move a message forward. */
const ORDER = ['queued', 'scheduled', 'sent', 'delivered', 'read'];
const later = (now: string, next: string) => next === 'failed' || ORDER.indexOf(next) > ORDER.indexOf(now);

/** States in which the number is not linked and a QR or code links it. */
const LINKING = new Set(['starting', 'qr', 'pairing', 'logged_out']);

export function InstanceScreen({ id }: { id: number }) {
  const [instance, setInstance] = useState<Instance | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [qr, setQr] = useState<Qr | null>(null);
  const [messages, setMessages] = useState<Message[]>([]);
  const [received, setReceived] = useState<Received[]>([]);
  const [live, setLive] = useState(false);
  /** Deleted elsewhere (another tab, the API): the screen says so and stops listening. */
  const [deleted, setDeleted] = useState(false);
  /**
   * Why the number was last logged out, kept until it is linked again: a
   * logout is followed at once by a new QR (state `qr`), which would
   * otherwise hide that the session is gone and why.
   */
  const [loggedOut, setLoggedOut] = useState<string | null>(null);
  const noteState = (state: unknown, reason: unknown) => {
    if (state === 'logged_out') setLoggedOut(typeof reason === 'string' && reason ? reason : 'logged out');
    else if (state === 'connected') setLoggedOut(null);
  };

  /** A QR replaces the one shown only if it is newer: a slow REST answer never brings an old one back. */
  const showQr = (next: Qr | null) => setQr((cur) => (next && cur && Date.parse(next.expiresAt) < Date.parse(cur.expiresAt) ? cur : next));

  const loadQr = () =>
    api<Qr>('GET', `/api/instances/${id}/qr?format=json`).then(showQr, (err) => {
      // 503 qr_not_ready: the next instance.qr event brings it; 409: already linked.
      if (!(err instanceof ApiError && (err.status === 503 || err.status === 409))) setError(err);
    });

  const loadMessages = () =>
    api<{ messages: Message[] }>('GET', `/api/instances/${id}/messages?limit=50`).then(
      (r) =>
        setMessages((cur) => {
          // Keep what the stream already advanced further than the answer knew.
          const known = new Map(cur.map((m) => [m.id, m]));
          const merged = r.messages.map((m) => {
            const k = known.get(m.id);
            return k && later(m.status, k.status) ? { ...m, status: k.status } : m;
          });
          const extra = cur.filter((m) => !merged.some((x) => x.id === m.id));
          return [...extra, ...merged].slice(0, 50);
        }),
      () => {}, // the list is an extra: sends made here still show
    );

  /** Received messages from the log: what came before the page opened (or while its stream was away). */
  const loadReceived = () =>
    api<EventPage>('GET', `/api/instances/${id}/events?types=message.received&limit=${RECEIVED_KEPT}`).then(
      (r) => setReceived((cur) => mergeReceived(cur, r.events.map(toReceived))),
      () => {}, // the list is an extra: live ones still show
    );

  const load = () =>
    api<Instance>('GET', `/api/instances/${id}`).then(
      (i) => {
        setInstance(i);
        setError(null);
        noteState(i.state, i.stateReason);
        if (i.state === 'qr') void loadQr();
        else if (!LINKING.has(i.state)) setQr(null);
      },
      (err) => setError(err),
    );

  useEffect(() => {
    void load();
    void loadMessages();
    void loadReceived();
    const close = openStream(
      `/api/instances/${id}/events/stream`,
      (ev: StreamEvent) => {
        switch (ev.type) {
          case 'instance.deleted':
            setDeleted(true);
            setLive(false);
            close();
            break;
          case 'instance.qr':
            showQr({ qr: String(ev.data.qr), expiresAt: String(ev.data.expiresAt) });
            setInstance((i) => (i ? { ...i, state: 'qr' } : i));
            break;
          case 'instance.status':
            setInstance((i) => (i ? applyEvent(i, ev) : i));
            noteState(ev.data?.state, ev.data?.stateReason);
            if (ev.data?.state && ev.data.state !== 'qr') setQr(null);
            break;
          case 'message.status': {
            const { messageId, status } = ev.data ?? {};
            setMessages((cur) => {
              if (!cur.some((m) => m.id === messageId)) {
                void loadMessages();
                return cur;
              }
              return cur.map((m) => (m.id === messageId && later(m.status, status) ? { ...m, status, ...(ev.data.error && { error: ev.data.error }) } : m));
            });
            break;
          }
          case 'message.received':
            setReceived((cur) => mergeReceived(cur, [toReceived(ev)]));
            break;
          default:
            setInstance((i) => (i ? applyEvent(i, ev) : i));
        }
      },
      {
        onOpen: () => {
          setLive(true);
          void load();
          void loadMessages();
          void loadReceived();
        },
        onError: () => setLive(false),
      },
    );
    return close;
  }, [id]);

  if (deleted) {
    return (
      <section>
        <p>
          <a href="#/instances">← Instances</a>
        </p>
        <Notice kind="warn" testid="instance-deleted">
          <strong>Instance {id} was deleted</strong> (from another page or through the API): its worker and WhatsApp session are gone.
        </Notice>
      </section>
    );
  }

  if (!instance) {
    return (
      <section>
        <p>
          <a href="#/instances">← Instances</a>
        </p>
        {error ? <ErrorBox error={error} testid="instance-error" /> : <p role="status">Loading instance {id}…</p>}
      </section>
    );
  }

  // A logout stays said while the new QR is up (until linked again).
  const problem =
    problemOf(instance) ??
    (loggedOut !== null && instance.state !== 'connected'
      ? { code: 'logged_out', title: 'This number was logged out', detail: `${loggedOut}. Its WhatsApp session is gone: link it again with the new QR code or a pairing code.` }
      : null);
  const linking = instance.provider !== 'waba' && instance.status === 'running' && LINKING.has(instance.state);

  return (
    <section aria-labelledby="instance-title" data-testid="instance-screen">
      <p>
        <a href="#/instances">← Instances</a>
      </p>
      <div class="title-row">
        <h1 id="instance-title">
          {instance.name ? `${instance.name} ` : ''}+{instance.phone}
        </h1>
        <span class={`live ${live ? 'on' : ''}`} data-testid="live-indicator">
          {live ? 'live' : 'connecting…'}
        </span>
      </div>
      <dl class="facts">
        <div>
          <dt>Provider</dt>
          <dd data-testid="instance-provider">{instance.provider}</dd>
        </div>
        <div>
          <dt>Node</dt>
          <dd data-testid="instance-node">{instance.node ?? '—'}</dd>
        </div>
        <div>
          <dt>Status</dt>
          <dd>
            <Badge value={instance.status} testid="instance-status" /> <span class="muted small">{instance.statusReason}</span>
          </dd>
        </div>
        <div>
          <dt>State</dt>
          <dd>
            <Badge value={instance.state} testid="instance-state" /> <span class="muted small">{instance.stateReason}</span>
          </dd>
        </div>
      </dl>
      <p>
        <a href={`#/instances/${id}/webhooks`} data-testid="webhooks-link">
          Webhooks of this instance →
        </a>
      </p>
      <InstanceActions instance={instance} onChanged={(i) => (i ? setInstance(i) : void load())} onDeleted={() => navigate('#/instances')} />
      <ErrorBox error={error} testid="instance-error" />
      {problem && (
        <Notice kind={problem.code === 'stopped' ? 'warn' : 'error'} testid="instance-problem">
          <strong data-testid={`problem-${problem.code}`}>{problem.title}.</strong> {problem.detail}
        </Notice>
      )}
      {instance.pausedUntil && (
        <Notice kind="warn" testid="instance-paused">
          Sending is paused until {new Date(instance.pausedUntil).toLocaleString()}: {instance.pausedReason}
        </Notice>
      )}
      {instance.state === 'connected' && (
        <Notice kind="ok" testid="connected-notice">
          Linked: this number is connected to WhatsApp.
        </Notice>
      )}
      {linking && <Linking instance={instance} qr={qr} onLinked={() => void load()} />}
      <Messages instance={instance} messages={messages} received={received} onSent={(m) => setMessages((cur) => [m, ...cur.filter((x) => x.id !== m.id)])} />
    </section>
  );
}

function Linking({ instance, qr, onLinked }: { instance: Instance; qr: Qr | null; onLinked: () => void }) {
  const [pairPhone, setPairPhone] = useState(`+${instance.phone}`);
  const [code, setCode] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<string | null>(null);

  const run = async (what: string, call: () => Promise<void>) => {
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
  const pair = (e: Event) => {
    e.preventDefault();
    void run('pair', async () => setCode((await api<{ code: string }>('POST', `/api/instances/${instance.id}/pair-code`, { phone: pairPhone.trim() })).code));
  };
  const scan = () =>
    run('scan', async () => {
      await api('POST', `/api/instances/${instance.id}/sandbox/scan`);
      onLinked();
    });

  return (
    <div class="card linking" aria-labelledby="linking-title" role="region">
      <h2 id="linking-title">Link this number</h2>
      <div class="linking-grid">
        <div>
          {instance.state === 'pairing' && !qr ? (
            <div class="qr-placeholder" role="status" data-testid="qr-paused">
              No QR code while linking by code: {instance.stateReason ?? 'pairing'}.
            </div>
          ) : (
            <QrImage qr={qr} />
          )}
          <p class="muted small">WhatsApp on the phone → Linked devices → Link a device, then point the camera at the code.</p>
          {instance.provider === 'sandbox' && (
            <button type="button" class="primary" onClick={scan} disabled={busy !== null} data-testid="sandbox-scan">
              {busy === 'scan' ? 'Scanning…' : instance.state === 'pairing' ? 'Enter the code (sandbox phone)' : 'Scan (sandbox phone)'}
            </button>
          )}
        </div>
        <form onSubmit={pair} class="pair" data-testid="pair-form">
          <h3>Or link with a code</h3>
          <label for="pair-phone">Phone number to link</label>
          <input id="pair-phone" type="tel" value={pairPhone} onInput={(e) => setPairPhone(e.currentTarget.value)} data-testid="pair-phone" />
          <button type="submit" disabled={busy !== null} data-testid="pair-submit">
            {busy === 'pair' ? 'Asking…' : 'Get pairing code'}
          </button>
          {code && (
            <p class="pair-code" data-testid="pair-code" aria-live="polite">
              <span class="muted small">Type this in WhatsApp → Linked devices → Link with phone number:</span>
              <strong>{code}</strong>
            </p>
          )}
        </form>
      </div>
      <ErrorBox error={error} testid="linking-error" />
    </div>
  );
}

/** The QR drawn in the browser from its text; a new one replaces it at once; a countdown to its expiry. */
function QrImage({ qr }: { qr: Qr | null }) {
  const [src, setSrc] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let current = true;
    if (!qr) {
      setSrc(null);
      return;
    }
    QRCode.toDataURL(qr.qr, { margin: 2, width: 264, errorCorrectionLevel: 'L' }).then(
      (url) => current && (setSrc(url), setError(null)),
      (err) => current && setError(err),
    );
    return () => {
      current = false;
    };
  }, [qr?.qr]);

  if (error) return <ErrorBox error={new Error(`cannot draw the QR code: ${describeError(error)}`)} testid="qr-error" />;
  if (!qr || !src) {
    return (
      <div class="qr-placeholder" role="status" data-testid="qr-waiting">
        Waiting for a QR code…
      </div>
    );
  }
  return (
    <figure class="qr">
      <img src={src} width={264} height={264} alt="QR code to link this number with WhatsApp" data-testid="qr-image" data-expires-at={qr.expiresAt} />
      <figcaption>
        <Countdown until={qr.expiresAt} />
      </figcaption>
    </figure>
  );
}

function Countdown({ until }: { until: string }) {
  const left = () => Math.max(0, Math.ceil((Date.parse(until) - Date.now()) / 1000));
  const [seconds, setSeconds] = useState(left);
  useEffect(() => {
    setSeconds(left());
    const timer = setInterval(() => setSeconds(left()), 250);
    return () => clearInterval(timer);
  }, [until]);
  return (
    <span data-testid="qr-countdown" aria-live="off">
      {seconds > 0 ? `expires in ${seconds} s; a new one follows by itself` : 'expired: the next one is on its way'}
    </span>
  );
}

/** The API's send types for a file, by its MIME type. */
function mediaType(mime: string): string {
  if (mime.startsWith('image/')) return 'image';
  if (mime.startsWith('video/')) return 'video';
  if (mime.startsWith('audio/')) return 'audio';
  return 'document';
}

function base64Of(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ''));
    reader.onerror = () => reject(reader.error ?? new Error('cannot read the file'));
    reader.readAsDataURL(file);
  });
}

function Messages({ instance, messages, received, onSent }: { instance: Instance; messages: Message[]; received: Received[]; onSent: (m: Message) => void }) {
  const [to, setTo] = useState('');
  const [text, setText] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const fileRef = useRef<HTMLInputElement>(null);

  const send = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      const file = fileRef.current?.files?.[0];
      let body: Record<string, unknown>;
      let type = 'text';
      if (file) {
        const mimetype = file.type || 'application/octet-stream';
        type = mediaType(mimetype);
        body = { to: to.trim(), type, media: { data: await base64Of(file), mimetype, filename: file.name }, ...(text.trim() && type !== 'audio' && { caption: text }) };
      } else {
        if (!text.trim()) throw new Error('Write a text or choose a file to send.');
        body = { to: to.trim(), text };
      }
      const r = await api<{ id: string; status: string; scheduledAt?: string }>('POST', `/api/instances/${instance.id}/send`, body);
      if (r.status === 'scheduled' && r.scheduledAt) setNotice(`Paced: it leaves at ${new Date(r.scheduledAt).toLocaleTimeString()}.`);
      const now = new Date().toISOString();
      onSent({ id: r.id, to: to.trim().replace(/^\+/, ''), type, status: r.status, timestamps: { createdAt: now, sentAt: null, deliveredAt: null, readAt: null, failedAt: null } });
      setText('');
      if (fileRef.current) fileRef.current.value = '';
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="card" role="region" aria-labelledby="messages-title">
      <h2 id="messages-title">Messages</h2>
      <form class="send" onSubmit={send} data-testid="send-form">
        <div class="field">
          <label for="send-to">To (phone number)</label>
          <input id="send-to" type="tel" required placeholder="+4915100000002" value={to} onInput={(e) => setTo(e.currentTarget.value)} data-testid="send-to" />
        </div>
        <div class="field wide">
          <label for="send-text">Text (or the file's caption)</label>
          <textarea id="send-text" rows={2} value={text} onInput={(e) => setText(e.currentTarget.value)} data-testid="send-text" />
        </div>
        <div class="field">
          <label for="send-file">File (optional, up to the inline limit)</label>
          <input id="send-file" type="file" ref={fileRef} data-testid="send-file" />
        </div>
        <button type="submit" class="primary" disabled={busy} data-testid="send-submit">
          {busy ? 'Sending…' : 'Send'}
        </button>
      </form>
      {instance.state !== 'connected' && <p class="muted small">Sends need a linked number (state connected); until then the gateway refuses them.</p>}
      <ErrorBox error={error} testid="send-error" />
      {notice && <Notice testid="send-notice">{notice}</Notice>}
      <h3>Recent messages</h3>
      {messages.length === 0 ? (
        <p class="muted" data-testid="messages-empty">
          None yet.
        </p>
      ) : (
        <table class="messages" data-testid="messages-table">
          <caption class="sr-only">Sent messages, their status updated live</caption>
          <thead>
            <tr>
              <th scope="col">Message</th>
              <th scope="col">To</th>
              <th scope="col">Type</th>
              <th scope="col">Status</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {messages.map((m) => (
              <tr key={m.id} data-testid="message-row" data-message-id={m.id}>
                <td data-label="Message">
                  <code class="small">{m.id}</code>
                </td>
                <td data-label="To">+{m.to}</td>
                <td data-label="Type">{m.type}</td>
                <td data-label="Status">
                  <Badge value={m.status} testid="message-status" />
                  {m.error && <div class="small problem">{m.error}</div>}
                </td>
                <td data-label="Created">{fmtTime(m.timestamps?.createdAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {received.length > 0 && (
        <>
          <h3>Recently received</h3>
          <ul class="received" data-testid="received-list">
            {received.map((r) => (
              <li key={r.eventId}>
                <span class="muted small">{fmtTime(r.at)}</span> +{r.from} ({r.type}): {r.text}
              </li>
            ))}
          </ul>
        </>
      )}
    </div>
  );
}
