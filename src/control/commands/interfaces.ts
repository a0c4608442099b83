// `ifup` and `ifdown`: an interface configured or taken down by the network layer
// (CommandOptions.interfaces), with its progress as events; the answer comes once it
// is up (or down) or has failed. The work is aborted when the client cancels or goes
// away, and at the time limit (`timeout`, else interfaceTimeoutMs).
//
// A new command goes in a file of its own beside this one, with its line in index.ts
// (handler.ts says what else it needs).

import { interfaceNameProblem } from '../../base/interface-name.ts';
import type { Value } from '../../preserves/index.ts';
import { ControlRequestError } from '../errors.ts';
import { ErrorReason, dictOf, encodeProgress } from '../protocol.ts';
import type { InterfaceResult } from '../providers.ts';
import { raceAbort } from '../signals.ts';
import {
  command,
  formatSeconds,
  type CommandDeps,
  type CommandHandler,
  type RequestContext,
} from './handler.ts';

export const DEFAULT_INTERFACE_TIMEOUT_MS = 60_000;

function interfaceCommand<N extends 'ifup' | 'ifdown'>(
  name: N,
  which: 'up' | 'down',
): CommandHandler<N> {
  return command({ name, handle: (ctx, deps) => iface(ctx, deps, which) });
}

export const ifup = interfaceCommand('ifup', 'up');
export const ifdown = interfaceCommand('ifdown', 'down');

async function iface(ctx: RequestContext, deps: CommandDeps, which: 'up' | 'down'): Promise<Value> {
  const name = ctx.args.string('interface', true);
  const timeoutMs = ctx.args.count(
    'timeout',
    deps.options.interfaceTimeoutMs ?? DEFAULT_INTERFACE_TIMEOUT_MS,
  );
  // '' is also what the reader returns for a missing or non-string argument (a problem
  // already noted).
  const problem = name === '' ? undefined : interfaceNameProblem(name);
  if (problem !== undefined) ctx.args.problem(`'${name}' is not an interface name: it ${problem}`);
  ctx.args.done();
  const controller = deps.options.interfaces;
  if (controller === undefined) {
    throw new ControlRequestError(
      ErrorReason.Unsupported,
      `if${which} is not available: this daemon runs no network layer`,
    );
  }
  const ac = new AbortController();
  const forward = (): void => ac.abort(ctx.signal.reason);
  ctx.signal.addEventListener('abort', forward, { once: true });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ac.abort(new Error('timeout'));
  }, timeoutMs);
  try {
    const work = controller[which](name, {
      signal: ac.signal,
      onProgress: (p) => ctx.event(encodeProgress(p)),
    });
    let result: InterfaceResult;
    try {
      result = await raceAbort(work, ac.signal);
    } catch (e) {
      if (timedOut) {
        throw new ControlRequestError(
          ErrorReason.Timeout,
          `${name} did not come ${which} within ${formatSeconds(timeoutMs)}`,
        );
      }
      throw e;
    }
    if (!result.ok) throw new ControlRequestError(ErrorReason.Failed, `${name}: ${result.reason}`);
    return dictOf({ interface: name, state: which, detail: result.detail });
  } finally {
    clearTimeout(timer);
    ctx.signal.removeEventListener('abort', forward);
  }
}
