// The login form: the server's message (wrong password, too many failures) shown as is.

import { useState } from 'preact/hooks';
import { login } from './api.ts';
import { errorText } from './common.tsx';

export function LoginForm(props: { onLogin: () => void }) {
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const submit = (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    login(password).then(
      () => props.onLogin(),
      (err: unknown) => {
        setBusy(false);
        // The server's own words: "wrong password", or how long to wait.
        setError(err instanceof Error ? err.message : errorText(err));
      },
    );
  };
  return (
    <form class="login card" onSubmit={submit}>
      <h1>{location.hostname}</h1>
      <p class="muted">limen router dashboard</p>
      <label>
        Password
        <input
          type="password"
          data-testid="password"
          autocomplete="current-password"
          autofocus
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
        />
      </label>
      <button type="submit" class="primary" data-testid="login" disabled={busy}>
        Log in
      </button>
      {error !== undefined && (
        <p class="error" data-testid="login-error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}
