// The configuration: its generations, the current generation's files, and a change
// made as a trial (docs/safe-change.md): edit or upload a file, Try, then Confirm
// before the deadline or Roll back. Every error is shown as the daemon wrote it.

import { useEffect, useState } from 'preact/hooks';
import { request } from './api.ts';
import { Card, ErrorLine, StateBadge, errorText, useNow } from './common.tsx';
import type { Daemon, Generation } from './daemon.ts';
import {
  asDict,
  asNumber,
  asString,
  base64FromBytes,
  bytes,
  bytesBase64,
  bytesToText,
  dictEntries,
  fieldsOf,
  printValue,
  show,
  stringKeyedDict,
  symName,
  textToBytes,
  type Json,
} from './values.ts';

export function ConfigurationView(props: { daemon: Daemon }) {
  return (
    <div class="configuration">
      <Editor daemon={props.daemon} />
      <Generations generations={props.daemon.generations} />
    </div>
  );
}

function outcomeState(g: Generation): string {
  return g.outcome.startsWith('rolled back') ? 'rolled back' : g.outcome;
}

function Generations(props: { generations: readonly Generation[] | undefined }) {
  const list = [...(props.generations ?? [])].reverse();
  return (
    <Card title="Generations" testid="generations">
      <table>
        <thead>
          <tr>
            <th>#</th>
            <th>Time</th>
            <th>Message</th>
            <th>Who</th>
            <th>Outcome</th>
          </tr>
        </thead>
        <tbody>
          {list.map((g) => (
            <tr key={g.number} data-testid="generation-row" class={g.current ? 'current' : ''}>
              <td>
                {g.number}
                {g.current && <span class="tag">current</span>}
              </td>
              <td>{g.time === undefined ? '' : new Date(g.time).toLocaleString()}</td>
              <td>{g.message}</td>
              <td>{g.who}</td>
              <td>
                <StateBadge state={outcomeState(g)} />{' '}
                {outcomeState(g) === g.outcome ? '' : <span class="muted">{g.outcome}</span>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.length === 0 && <p class="muted">No generations.</p>}
    </Card>
  );
}

/** The candidate: each file's content as base64, as `try` takes it. */
type Files = ReadonlyMap<string, string>;

interface Trial {
  readonly generation: number | undefined;
  readonly token: string | undefined;
  readonly deadline: number | undefined;
  readonly progress: readonly string[];
  readonly outcome: Json | undefined;
  readonly error: unknown;
  readonly running: boolean;
}

function readFiles(answer: Json): { generation: number | undefined; files: Map<string, string> } {
  const d = asDict(answer);
  const files = new Map<string, string>();
  for (const [k, v] of dictEntries(d?.files)) {
    const path = asString(k) ?? symName(k);
    const content = bytesBase64(v);
    if (path !== undefined && content !== undefined) files.set(path, content);
  }
  return { generation: asNumber(d?.generation), files };
}

function Editor(props: { daemon: Daemon }) {
  const [base, setBase] = useState<{ generation: number | undefined; files: Files } | undefined>();
  const [files, setFiles] = useState<Files>(new Map());
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const [loadError, setLoadError] = useState<unknown>(undefined);
  const [seconds, setSeconds] = useState(120);
  const [trial, setTrial] = useState<Trial | undefined>(undefined);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    setLoadError(undefined);
    request('config-files', {}).then((answer) => {
      const read = readFiles(answer);
      setBase(read);
      setFiles(read.files);
      setSelected((s) =>
        s !== undefined && read.files.has(s) ? s : [...read.files.keys()].sort()[0],
      );
    }, setLoadError);
  }, [reload]);

  const changed = [...files].filter(([p, c]) => base?.files.get(p) !== c).map(([p]) => p);
  const text = selected === undefined ? '' : (bytesToText(bytes(files.get(selected) ?? '')) ?? '');

  const edit = (content: string) => {
    if (selected === undefined) return;
    const b = textToBytes(content) as { '@bytes': string };
    setFiles(new Map(files).set(selected, b['@bytes']));
  };

  const upload = (e: Event) => {
    const input = e.currentTarget as HTMLInputElement;
    const file = input.files?.[0];
    if (file === undefined) return;
    const path = selected ?? file.name;
    file.arrayBuffer().then((buffer) => {
      setFiles(new Map(files).set(path, base64FromBytes(new Uint8Array(buffer))));
      setSelected(path);
      input.value = '';
    }, setLoadError);
  };

  const addFile = () => {
    const path = prompt('Path of the new file in the site configuration (e.g. services/web.pr)');
    if (path === null || path.trim() === '') return;
    setFiles(new Map(files).set(path.trim(), files.get(path.trim()) ?? ''));
    setSelected(path.trim());
  };

  const finished = () => {
    props.daemon.refreshGenerations();
    setReload((n) => n + 1);
  };

  const tryIt = () => {
    const start: Trial = {
      generation: undefined,
      token: undefined,
      deadline: undefined,
      progress: [],
      outcome: undefined,
      error: undefined,
      running: true,
    };
    setTrial(start);
    const candidate = stringKeyedDict([...files].map(([p, c]) => [p, bytes(c)]));
    request(
      'try',
      { files: candidate, timeout: seconds * 1000, message: 'from the web page' },
      (event) => {
        const progress = fieldsOf(event, 'progress');
        if (progress !== undefined) {
          setTrial((t) => t && { ...t, progress: [...t.progress, show(progress[0])] });
          return;
        }
        const d = asDict(event);
        if (d !== undefined && d.token !== undefined) {
          setTrial(
            (t) =>
              t && {
                ...t,
                generation: asNumber(d.generation),
                token: asString(d.token),
                deadline: asNumber(d.deadline),
              },
          );
          props.daemon.refreshGenerations();
        }
      },
    ).then(
      (outcome) => {
        setTrial((t) => t && { ...t, outcome, running: false });
        finished();
      },
      (error: unknown) => {
        setTrial((t) => t && { ...t, error, running: false });
        finished();
      },
    );
  };

  return (
    <Card title="Change the configuration" testid="editor">
      <ErrorLine error={loadError} testid="config-error" />
      <p class="muted">
        Generation {base?.generation ?? '…'}: {files.size} files
        {changed.length > 0 && <> — changed: {changed.join(', ')}</>}
      </p>
      <div class="editor">
        <ul class="file-list" data-testid="config-files">
          {[...files.keys()].sort().map((p) => (
            <li key={p}>
              <button
                type="button"
                class={p === selected ? 'active' : ''}
                data-testid="config-file"
                data-path={p}
                onClick={() => setSelected(p)}
              >
                {p}
                {changed.includes(p) ? ' •' : ''}
              </button>
            </li>
          ))}
          <li>
            <button type="button" data-testid="add-file" onClick={addFile}>
              + new file
            </button>
          </li>
        </ul>
        <div class="file-pane">
          <textarea
            data-testid="config-text"
            spellcheck={false}
            value={text}
            disabled={selected === undefined}
            onInput={(e) => edit(e.currentTarget.value)}
          />
          <div class="row">
            <label>
              Replace {selected ?? 'a file'} with an upload{' '}
              <input type="file" data-testid="upload" onChange={upload} />
            </label>
            <button
              type="button"
              disabled={changed.length === 0}
              onClick={() => setFiles(base?.files ?? new Map())}
            >
              Discard changes
            </button>
          </div>
          <div class="row">
            <label>
              Roll back unless confirmed within{' '}
              <input
                type="number"
                min={10}
                class="seconds"
                value={seconds}
                data-testid="trial-seconds"
                onInput={(e) => setSeconds(Number(e.currentTarget.value) || 120)}
              />{' '}
              s
            </label>
            <button
              type="button"
              class="primary"
              data-testid="try"
              disabled={trial?.running === true || files.size === 0}
              onClick={tryIt}
            >
              Try
            </button>
          </div>
        </div>
      </div>
      {trial !== undefined && <TrialPanel trial={trial} onDone={finished} />}
    </Card>
  );
}

function TrialPanel(props: { trial: Trial; onDone: () => void }) {
  const { trial } = props;
  const now = useNow(250);
  const [actionError, setActionError] = useState<unknown>(undefined);
  const [actionResult, setActionResult] = useState<string | undefined>(undefined);
  const act = (command: 'confirm' | 'rollback', args: Record<string, Json>) => {
    setActionError(undefined);
    request(command, args).then((v) => {
      setActionResult(`${command}: ${printValue(v)}`);
      if (command === 'rollback') props.onDone();
    }, setActionError);
  };
  const left =
    trial.deadline === undefined ? undefined : Math.max(0, (trial.deadline - now) / 1000);
  const outcome = asDict(trial.outcome);
  return (
    <div class="trial" data-testid="trial">
      {trial.running && trial.token !== undefined && (
        <div class="trial-live">
          <span>
            Trial of generation {trial.generation}: rolls back in{' '}
            <strong data-testid="trial-countdown">
              {left === undefined ? '?' : Math.ceil(left)} s
            </strong>
          </span>
          <button
            type="button"
            class="primary"
            data-testid="confirm"
            onClick={() => act('confirm', { token: trial.token ?? '' })}
          >
            Confirm
          </button>
          <button
            type="button"
            class="danger"
            data-testid="rollback"
            onClick={() => act('rollback', {})}
          >
            Roll back
          </button>
        </div>
      )}
      {trial.running && trial.token === undefined && <p class="muted">Checking the candidate…</p>}
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
    </div>
  );
}
