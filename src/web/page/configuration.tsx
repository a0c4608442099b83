// The configuration: its generations, the current generation's files, and a change
// made as a trial (docs/safe-change.md): edit or upload a file, Try, then Confirm
// before the deadline or Roll back. Every error is shown as the daemon wrote it.

import { useEffect, useState } from 'preact/hooks';
import { request } from './api.ts';
import { Card, ErrorLine, StateBadge } from './common.tsx';
import { startTrial, useTrial } from './trial.tsx';
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
  const trial = useTrial();
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
    startTrial(files, seconds, finished);
    props.daemon.refreshGenerations();
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
    </Card>
  );
}
