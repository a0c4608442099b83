// The page's shell: the login gate, the header (router, version, live indicator,
// logout, password change) and the top navigation between views (the URL's hash).

import { useCallback, useEffect, useState } from 'preact/hooks';
import * as api from './api.ts';
import { ErrorLine } from './common.tsx';
import { ClientsView } from './clients.tsx';
import { ConfigurationView } from './configuration.tsx';
import { GraphView } from './graph.tsx';
import { InterfacesView } from './interfaces.tsx';
import { closeAllWatches, useWatchError } from './live.ts';
import { LoginForm } from './login.tsx';
import { OverviewView } from './overview.tsx';
import { PasswordForm } from './password.tsx';
import { ServicesView } from './services.tsx';
import { useDaemon } from './daemon.ts';
import { TrialPanel } from './trial.tsx';

const views = {
  overview: { title: 'Overview', component: OverviewView },
  clients: { title: 'LAN clients', component: ClientsView },
  services: { title: 'Services', component: ServicesView },
  graph: { title: 'Graph', component: GraphView },
  configuration: { title: 'Configuration', component: ConfigurationView },
  interfaces: { title: 'Interfaces', component: InterfacesView },
} as const;
type ViewName = keyof typeof views;

function viewFromHash(): ViewName {
  const name = location.hash.replace(/^#\/?/, '');
  return name in views ? (name as ViewName) : 'overview';
}

export function App() {
  const [signedIn, setSignedIn] = useState<boolean | undefined>(undefined);
  const [startError, setStartError] = useState<unknown>(undefined);

  useEffect(() => {
    document.title = `${location.hostname} · limen`;
    api.session().then(
      (s) => setSignedIn(s !== undefined),
      (error: unknown) => {
        setStartError(error);
        setSignedIn(false);
      },
    );
    return api.onSessionEnded(() => {
      closeAllWatches();
      setSignedIn(false);
    });
  }, []);

  if (signedIn === undefined) return <p class="loading">Loading…</p>;
  if (!signedIn) {
    return (
      <>
        <LoginForm onLogin={() => setSignedIn(true)} />
        <ErrorLine error={startError} />
      </>
    );
  }
  return <Dashboard />;
}

function Dashboard() {
  const [view, setView] = useState<ViewName>(viewFromHash);
  const daemon = useDaemon();
  const configError = useWatchError('config');
  const machineError = useWatchError('machine');
  useEffect(() => {
    const onHash = () => setView(viewFromHash());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  const View = views[view].component;
  return (
    <>
      <Header version={daemon.version} />
      <nav class="tabs">
        {Object.entries(views).map(([name, v]) => (
          <a
            key={name}
            href={`#${name}`}
            class={name === view ? 'active' : ''}
            data-testid={`nav-${name}`}
          >
            {v.title}
          </a>
        ))}
      </nav>
      <main>
        <ErrorLine error={daemon.error} testid="daemon-error" />
        <ErrorLine error={configError} testid="watch-error" />
        <ErrorLine error={machineError} testid="watch-error" />
        <TrialPanel onDone={daemon.refreshGenerations} />
        <View daemon={daemon} />
      </main>
    </>
  );
}

function Header(props: { version: string | undefined }) {
  const [live, setLive] = useState(false);
  const [changing, setChanging] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  useEffect(() => api.onLiveChange(setLive), []);
  const logout = useCallback(() => {
    api.logout().catch(setError);
  }, []);
  return (
    <header class="top">
      <div class="brand">
        <strong>{location.hostname}</strong>
        <span class="muted"> limen {props.version ?? ''}</span>
      </div>
      <span class={`live ${live ? 'on' : 'off'}`} data-testid="live" data-live={String(live)}>
        {live ? 'live' : 'offline'}
      </span>
      <div class="actions">
        <button type="button" data-testid="change-password" onClick={() => setChanging(!changing)}>
          Change password
        </button>
        <button type="button" data-testid="logout" onClick={logout}>
          Log out
        </button>
      </div>
      {changing && <PasswordForm onDone={() => setChanging(false)} />}
      <ErrorLine error={error} />
    </header>
  );
}
