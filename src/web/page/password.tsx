// Changing the dashboard's password: the old one, then the new one.

import { useState } from 'preact/hooks';
import { changePassword } from './api.ts';
import { ErrorLine } from './common.tsx';

export function PasswordForm(props: { onDone: () => void }) {
  const [oldPassword, setOld] = useState('');
  const [newPassword, setNew] = useState('');
  const [error, setError] = useState<unknown>(undefined);
  const [done, setDone] = useState(false);
  const submit = (e: Event) => {
    e.preventDefault();
    setError(undefined);
    changePassword(oldPassword, newPassword).then(() => {
      setDone(true);
      setOld('');
      setNew('');
    }, setError);
  };
  return (
    <form class="password-form" onSubmit={submit} data-testid="password-form">
      <input
        type="password"
        placeholder="old password"
        autocomplete="current-password"
        data-testid="old-password"
        value={oldPassword}
        onInput={(e) => setOld(e.currentTarget.value)}
      />
      <input
        type="password"
        placeholder="new password"
        autocomplete="new-password"
        data-testid="new-password"
        value={newPassword}
        onInput={(e) => setNew(e.currentTarget.value)}
      />
      <button type="submit" data-testid="save-password">
        Change
      </button>
      <button type="button" onClick={props.onDone}>
        Close
      </button>
      {done && <span data-testid="password-changed">Password changed.</span>}
      <ErrorLine error={error} testid="password-error" />
    </form>
  );
}
