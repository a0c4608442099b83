// The configuration generations (CommandOptions.generations, docs/safe-change.md):
// `generations` lists them, `rollback` goes back to one, `try` applies a candidate as
// a trial that `confirm` keeps, and `diff` says what a change would do without
// applying it. A user's mistake the provider reports (UserError) answers `failed`.
//
// A new command goes in a file of its own beside this one, with its line in index.ts
// (handler.ts says what else it needs).

import { UserError } from '../../base/errors.ts';
import { Bytes, Dict, peel, type Value } from '../../preserves/index.ts';
import { ControlRequestError } from '../errors.ts';
import { ErrorReason, dictOf, encodeGeneration, encodePlan, encodeProgress } from '../protocol.ts';
import type { ConfigurationChoice, GenerationsProvider } from '../providers.ts';
import { raceAbort } from '../signals.ts';
import { command, formatSeconds, label, type CommandDeps, type RequestContext } from './handler.ts';

/** Files one candidate may have. */
const MAX_TRIAL_FILES = 10_000;
const DEFAULT_TRIAL_TIMEOUT_MS = 120_000;
const MAX_TRIAL_TIMEOUT_MS = 24 * 3600_000;

function provider(deps: CommandDeps, command: string): GenerationsProvider {
  const g = deps.options.generations;
  if (g === undefined) {
    throw new ControlRequestError(
      ErrorReason.Unsupported,
      `${command} is not available: this daemon keeps no configuration generations`,
    );
  }
  return g;
}

/**
 * `work`'s result; a UserError it throws becomes a `failed` answer with its message. A
 * ControlRequestError (a daemon without generations: `unsupported`) stays as it is.
 */
async function failedOnUserError<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    if (e instanceof UserError && !(e instanceof ControlRequestError))
      throw new ControlRequestError(ErrorReason.Failed, e.message);
    throw e;
  }
}

/** The optional argument `generation`: a generation number (a problem otherwise). */
function generationArg(ctx: RequestContext): number | undefined {
  const n = ctx.args.value('generation');
  if (n === undefined) return undefined;
  if (typeof n === 'number' && Number.isSafeInteger(n) && n > 0) return n;
  ctx.args.problem(`argument generation must be a generation number, got ${label(n)}`);
  return undefined;
}

export const generations = command({
  name: 'generations',
  async handle(ctx, deps) {
    ctx.args.done();
    return (await provider(deps, 'generations').list()).map(encodeGeneration);
  },
});

export const rollback = command({
  name: 'rollback',
  async handle(ctx, deps): Promise<Value> {
    const to = generationArg(ctx);
    ctx.args.done();
    const r = await failedOnUserError(() => provider(deps, 'rollback').rollback(to));
    return dictOf({
      ...(r.from === undefined ? {} : { from: r.from }),
      to: r.to,
      written: r.written,
      removed: r.removed,
    });
  },
});

/**
 * `try {files: {PATH: #[CONTENT]} source timeout message auto-confirm}`: streams the
 * trial's progress (the first event holds its token), and answers once it is confirmed
 * or rolled back. A client that goes away leaves the trial running: it is confirmed
 * with the token from anywhere, or rolled back at its deadline.
 */
export const tryCandidate = command({
  name: 'try',
  async handle(ctx, deps): Promise<Value> {
    const files = candidateFiles(ctx, 'files', ctx.args.value('files', true));
    const source = ctx.args.string('source') ?? 'candidate';
    const timeoutMs = ctx.args.count('timeout', DEFAULT_TRIAL_TIMEOUT_MS);
    if (timeoutMs < 1000 || timeoutMs > MAX_TRIAL_TIMEOUT_MS)
      ctx.args.problem(
        `argument timeout must be from 1 s to ${formatSeconds(MAX_TRIAL_TIMEOUT_MS)}`,
      );
    const message = ctx.args.string('message') ?? 'limen try';
    const autoConfirm = ctx.args.boolean('auto-confirm', false);
    ctx.args.done();
    const trials = provider(deps, 'try');
    const started = await failedOnUserError(() =>
      trials.try({
        files,
        source,
        timeoutMs,
        message,
        who: 'limen try',
        autoConfirm,
        onProgress: (text) => ctx.event(encodeProgress(text)),
        onStarted: (t) =>
          ctx.event(dictOf({ generation: t.generation, token: t.token, deadline: t.deadline })),
      }),
    );
    const result = await raceAbort(started.done, ctx.signal);
    return dictOf({
      generation: result.generation,
      confirmed: result.confirmed,
      outcome: result.confirmed ? 'confirmed' : `rolled back: ${result.reason ?? ''}`,
    });
  },
});

/**
 * `diff {from? to? source?}`: FROM and TO are each a generation number or a candidate's
 * files `{PATH: #[CONTENT]}` (named SOURCE); answers what going from one to the other
 * would do (PlanRequest has the defaults). Nothing is applied.
 */
export const diff = command({
  name: 'diff',
  async handle(ctx, deps): Promise<Value> {
    const source = ctx.args.string('source') ?? 'candidate';
    const choice = (key: 'from' | 'to'): ConfigurationChoice | undefined => {
      const v = ctx.args.value(key);
      if (v === undefined) return undefined;
      if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) return { generation: v };
      if (v instanceof Dict) return { files: candidateFiles(ctx, key, v), source };
      ctx.args.problem(
        `argument ${key} must be a generation number or a dictionary of files, got ${label(v)}`,
      );
      return undefined;
    };
    const from = choice('from');
    const to = choice('to');
    ctx.args.done();
    return encodePlan(await failedOnUserError(() => provider(deps, 'diff').plan({ from, to })));
  },
});

export const confirm = command({
  name: 'confirm',
  async handle(ctx, deps): Promise<Value> {
    const token = ctx.args.string('token', true);
    ctx.args.done();
    const generation = await failedOnUserError(() => provider(deps, 'confirm').confirm(token));
    return dictOf({ generation, confirmed: true });
  },
});

/**
 * A candidate's files from argument `key` (`{PATH: #[CONTENT]}`), each path checked;
 * every problem is reported on the request's arguments.
 */
function candidateFiles(ctx: RequestContext, key: string, given: Value): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  if (!(given instanceof Dict)) {
    ctx.args.problem(`argument ${key} must be a dictionary {PATH: #[CONTENT]}`);
    return files;
  }
  if (given.size > MAX_TRIAL_FILES)
    ctx.args.problem(`a candidate has at most ${MAX_TRIAL_FILES} files, this one ${given.size}`);
  for (const [k, v] of given) {
    const path = peel(k);
    const content = peel(v);
    if (typeof path !== 'string' || !isCandidatePath(path))
      ctx.args.problem(
        `${label(k)} is not a relative path of the site configuration (no '..', no dot-files, no absolute paths)`,
      );
    else if (!(content instanceof Bytes))
      ctx.args.problem(`the content of ${path} must be a byte string`);
    else files.set(path, content.bytes);
  }
  return files;
}

/** A path inside the site configuration: relative, no '..' or '.', no dot-files. */
function isCandidatePath(path: string): boolean {
  if (path === '' || path.length > 4096 || path.includes('\0') || path.startsWith('/'))
    return false;
  return path.split('/').every((seg) => seg !== '' && !seg.startsWith('.'));
}

/**
 * `config-files {generation: N}`: generation N's (default: the current one's) files of
 * the first site root, `{generation: N files: {"PATH": #[CONTENT] ...}}`: what a trial
 * starts from (the web page edits them). At most what `try` takes, so an answer fits.
 */
export const configFiles = command({
  name: 'config-files',
  async handle(ctx, deps): Promise<Value> {
    const n = generationArg(ctx);
    ctx.args.done();
    const g = await failedOnUserError(() => provider(deps, 'config-files').files(n));
    const files = new Dict(
      [...g.files]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([path, content]) => [path, new Bytes(content)] as const),
    );
    return dictOf({ generation: g.generation, files });
  },
});
