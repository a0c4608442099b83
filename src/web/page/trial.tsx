// A configuration trial (docs/safe-change.md), kept outside any view: the banner with
// its countdown, Confirm and Roll back shows on every view, so that leaving the
// configuration view never hides the only way to keep a change before its deadline.

import { useEffect, useState } from 'preact/hooks';
import { request } from './api.ts';
import { ErrorLine, errorText, useNow } from './common.tsx';
import {
  asDict,
  asNumber,
  asString,
  bytes,
  fieldsOf,
  printValue,
  show,
  stringKeyedDict,
  type Json,
} from './values.ts';

export interface Trial {
  readonly generation: number | undefined;
  readonly token: string | undefined;
  /** When the trial rolls back unless confirmed, ms since the epoch. */
  readonly deadline: number | undefined;
  readonly progress: readonly string[];
  readonly outcome: Json | undefined;
  readonly error: unknown;
  readonly running: boolean;
  /** Started elsewhere, or before this page loaded: no token here, so no Confirm. */
  readonly adopted?: boolean;
}

let current: Trial | undefined;
const listeners = new Set<() => void>();

function update(change: (t: Trial) => Trial): void {
  if (current === undefined) return;
  current = change(current);
  for (const l of [...listeners]) l();
}

export function useTrial(): Trial | undefined {
  const [trial, setTrial] = useState(current);
  useEffect(() => {
    const l = () => setTrial(current);
    listeners.add(l);
    l();
    return () => void listeners.delete(l);
  }, []);
  return trial;
}

/**
 * Tries `files` (path → base64 content): the first event names the trial, then
 * `<progress "…">` lines, then the outcome. `onFinished` runs once it has ended.
 */
export function startTrial(
  files: ReadonlyMap<string, string>,
  seconds: number,
  onFinished: () => void,
): void {
  current = {
    generation: undefined,
    token: undefined,
    deadline: undefined,
    progress: [],
    outcome: undefined,
    error: undefined,
    running: true,
  };
  for (const l of [...listeners]) l();
  const candidate = stringKeyedDict([...files].map(([p, c]) => [p, bytes(c)]));
  request(
    'try',
    { files: candidate, timeout: seconds * 1000, message: 'from the web page' },
    (event) => {
      const progress = fieldsOf(event, 'progress');
      if (progress !== undefined) {
        update((t) => ({ ...t, progress: [...t.progress, show(progress[0])] }));
        return;
      }
      const d = asDict(event);
      if (d?.token !== undefined) {
        update((t) => ({
          ...t,
          generation: asNumber(d.generation),
          token: asString(d.token),
          deadline: asNumber(d.deadline),
        }));
      }
    },
  ).then(
    (outcome) => {
      update((t) => ({ ...t, outcome, running: false }));
      onFinished();
    },
    (error: unknown) => {
      update((t) => ({ ...t, error, running: false }));
      onFinished();
    },
  );
}

/**
 * A trial the daemon's status says runs (`{generation previous deadline}`), which this
 * page did not start: shown with its countdown and Roll back (confirming needs the
 * token, which only its starter has).
 */
export function adoptTrial(status: Json | undefined): void {
  const t = asDict(status);
  if (t === undefined || current !== undefined) return;
  const deadline = Date.parse(asString(t.deadline) ?? '');
  if (Number.isNaN(deadline)) return;
  current = {
    generation: asNumber(t.generation),
    token: undefined,
    deadline,
    progress: [],
    outcome: undefined,
    error: undefined,
    running: true,
    adopted: true,
  };
  for (const l of [...listeners]) l();
}

function dismiss(): void {
  current = undefined;
  for (const l of [...listeners]) l();
}

export function TrialPanel(props: { onDone: () => void }) {
  const trial = useTrial();
  const now = useNow(250);
  const [actionError, setActionError] = useState<unknown>(undefined);
  const [actionResult, setActionResult] = useState<string | undefined>(undefined);
  if (trial === undefined) return null;
  const act = (command: 'confirm' | 'rollback', args: Record<string, Json>) => {
    setActionError(undefined);
    request(command, args).then((v) => {
      setActionResult(`${command}: ${printValue(v)}`);
      if (command === 'rollback') {
        // An adopted trial has no answer stream to end it: the rollback does.
        if (trial.adopted === true) update((t) => ({ ...t, running: false }));
        props.onDone();
      }
    }, setActionError);
  };
  const rollbackButton = (
    <button type="button" class="danger" data-testid="rollback" onClick={() => act('rollback', {})}>
      Roll back
    </button>
  );
  const left =
    trial.deadline === undefined ? undefined : Math.max(0, (trial.deadline - now) / 1000);
  const outcome = asDict(trial.outcome);
  return (
    <section class="card trial" data-testid="trial">
      {trial.running && trial.token !== undefined && (
        <div class="trial-live">
          <span>
            Trial of generation {trial.generation}: rolls back in{' '}
            <strong data-testid="trial-countdown">
              {left === undefined ? '?' : Math.ceil(left)} s
            </strong>{' '}
            unless confirmed
          </span>
          <button
            type="button"
            class="primary"
            data-testid="confirm"
            onClick={() => act('confirm', { token: trial.token ?? '' })}
          >
            Confirm
          </button>
          {rollbackButton}
        </div>
      )}
      {trial.running && trial.adopted === true && (
        <div class="trial-live">
          <span>
            Generation {trial.generation} is on trial{' '}
            {left !== undefined && left > 0 ? (
              <>
                and rolls back in <strong data-testid="trial-countdown">{Math.ceil(left)} s</strong>{' '}
                unless confirmed where it was started (<code>limen confirm TOKEN</code>)
              </>
            ) : (
              <>until its deadline, which has passed: see the generations</>
            )}
          </span>
          {rollbackButton}
        </div>
      )}
      {trial.running && trial.token === undefined && trial.adopted !== true && (
        <p class="muted">Checking the candidate…</p>
      )}
      <div class="progress">
        {trial.progress.map((p, i) => (
          <div key={i} class="progress-line" data-testid="trial-progress">
            {p}
          </div>
        ))}
      </div>
      {outcome !== undefined && (
        <p data-testid="trial-outcome" class={outcome.confirmed === true ? 'ok' : 'error'}>
          Generation {show(outcome.generation)}: {show(outcome.outcome)}
        </p>
      )}
      {trial.error !== undefined && (
        <pre class="error" data-testid="trial-error">
          {trial.error instanceof Error ? trial.error.message : errorText(trial.error)}
        </pre>
      )}
      {actionResult !== undefined && <p class="muted">{actionResult}</p>}
      <ErrorLine error={actionError} testid="trial-action-error" />
      {!trial.running && (
        <button type="button" data-testid="trial-dismiss" onClick={dismiss}>
          Dismiss
        </button>
      )}
    </section>
  );
}
