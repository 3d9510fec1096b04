/**
 * The app shell: sign-in (API key, optional admin secret), the nav, and the
 * screen for the current hash route. Any error a screen throws while
 * rendering is shown, never a blank page.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useErrorBoundary, useState } from 'preact/hooks';
import { api, ApiError, session } from './api';
import { describeError, ErrorBox } from './components';
import { useRoute, type Route } from './router';
import { InstancesScreen } from './screens/instances';
import { InstanceScreen } from './screens/instance';
import { WebhooksScreen } from './screens/webhooks';
import { AdminNodesScreen, AdminUsersScreen } from './screens/admin';

interface Me {
  id: number;
  email: string;
}

type Auth = { phase: 'checking' } | { phase: 'signed-out'; error?: unknown } | { phase: 'signed-in'; me: Me };

export function App() {
  const [auth, setAuth] = useState<Auth>(() => (session.apiKey ? { phase: 'checking' } : { phase: 'signed-out' }));

  // A key kept from earlier in this tab is checked again before it is trusted.
  useEffect(() => {
    if (auth.phase !== 'checking') return;
    api<Me>('GET', '/api/me').then(
      (me) => setAuth({ phase: 'signed-in', me }),
      (error) => {
        if (error instanceof ApiError && error.status === 401) session.clear();
        setAuth({ phase: 'signed-out', error });
      },
    );
  }, [auth.phase]);

  const signOut = () => {
    session.clear();
    setAuth({ phase: 'signed-out' });
  };

  if (auth.phase === 'checking') return <p class="loading" role="status">Checking your API key…</p>;
  if (auth.phase === 'signed-out') return <SignIn initialError={auth.error} onSignedIn={(me) => setAuth({ phase: 'signed-in', me })} />;
  return (
    <Shell me={auth.me} onSignOut={signOut}>
      <Guarded>
        <Screen route={useRoute()} />
      </Guarded>
    </Shell>
  );
}

function SignIn({ initialError, onSignedIn }: { initialError?: unknown; onSignedIn: (me: Me) => void }) {
  const [apiKey, setApiKey] = useState('');
  const [adminSecret, setAdminSecret] = useState('');
  const [error, setError] = useState<unknown>(initialError);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    session.apiKey = apiKey.trim();
    session.adminSecret = adminSecret.trim() || null;
    const refused = (err: unknown, what: string) =>
      err instanceof ApiError && (err.status === 401 || err.status === 403) ? new Error(`Sign-in failed: the gateway refused this ${what} (${describeError(err)})`) : err;
    try {
      const me = await api<Me>('GET', '/api/me').catch((err) => Promise.reject(refused(err, 'API key')));
      // The admin secret is checked too: a wrong one is told now, not on the first admin screen.
      if (session.adminSecret) await api('GET', '/admin/nodes', undefined, { admin: true }).catch((err) => Promise.reject(refused(err, 'admin secret')));
      session.save();
      onSignedIn(me);
    } catch (err) {
      session.clear();
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="signin">
      <form class="card" onSubmit={submit} aria-labelledby="signin-title" data-testid="signin-form">
        <h1 id="signin-title">wgs dashboard</h1>
        <p class="muted">Sign in with an API key. It stays in this tab's session storage only.</p>
        <label for="api-key">API key</label>
        <input
          id="api-key"
          name="apiKey"
          type="password"
          autocomplete="off"
          required
          placeholder="wgs_…"
          value={apiKey}
          onInput={(e) => setApiKey(e.currentTarget.value)}
          data-testid="api-key"
        />
        <label for="admin-secret">
          Admin secret <span class="muted">(optional, for operators)</span>
        </label>
        <input
          id="admin-secret"
          name="adminSecret"
          type="password"
          autocomplete="off"
          value={adminSecret}
          onInput={(e) => setAdminSecret(e.currentTarget.value)}
          data-testid="admin-secret"
        />
        <ErrorBox error={error} testid="signin-error" />
        <button type="submit" class="primary" disabled={busy} data-testid="signin-submit">
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

function Shell({ me, onSignOut, children }: { me: Me; onSignOut: () => void; children: ComponentChildren }) {
  const route = useRoute();
  const current = (names: Route['name'][]) => (names.includes(route.name) ? 'page' : undefined);
  return (
    <div class="shell">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href="#/instances">
          wgs
        </a>
        <nav aria-label="Main">
          <a href="#/instances" aria-current={current(['instances', 'instance', 'webhooks'])} data-testid="nav-instances">
            Instances
          </a>
          {session.adminSecret && (
            <>
              <a href="#/admin/nodes" aria-current={current(['admin-nodes'])} data-testid="nav-admin-nodes">
                Nodes
              </a>
              <a href="#/admin/users" aria-current={current(['admin-users'])} data-testid="nav-admin-users">
                Users
              </a>
            </>
          )}
        </nav>
        <span class="who" data-testid="signed-in-as">
          {me.email}
        </span>
        <button type="button" onClick={onSignOut} data-testid="sign-out">
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </div>
  );
}

/** A screen that throws while rendering shows the error and a way back, not a blank page. */
function Guarded({ children }: { children: ComponentChildren }) {
  const [error, reset] = useErrorBoundary();
  if (error) {
    return (
      <section>
        <ErrorBox error={error} testid="screen-error" />
        <button type="button" onClick={reset}>
          Try again
        </button>
      </section>
    );
  }
  return <>{children}</>;
}

function Screen({ route }: { route: Route }) {
  switch (route.name) {
    case 'instances':
      return <InstancesScreen />;
    case 'instance':
      return <InstanceScreen key={route.id} id={route.id} />;
    case 'webhooks':
      return <WebhooksScreen key={route.id} instanceId={route.id} />;
    case 'admin-nodes':
      return session.adminSecret ? <AdminNodesScreen /> : <AdminOnly />;
    case 'admin-users':
      return session.adminSecret ? <AdminUsersScreen /> : <AdminOnly />;
    default:
      return (
        <section>
          <h1>Not found</h1>
          <p>
            No screen at <code>{route.path}</code>. <a href="#/instances">Back to the instances</a>.
          </p>
        </section>
      );
  }
}

function AdminOnly() {
  return (
    <section>
      <h1>Operators only</h1>
      <p>Sign out and sign in again with the admin secret to see this screen.</p>
    </section>
  );
}
