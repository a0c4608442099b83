// `limen diff [A] [B]`: what going from one configuration to another does, in the
// daemon's own terms, without applying anything (docs/safe-change.md, "A plan before
// applying"). `limen try --dry-run DIR` prints the same plan (generations.ts). Also
// home to reading a candidate directory, which `try` shares.

import { resolve } from 'node:path';
import { MAX_LINE_BYTES, decodePlan, type PlanAnswer } from '../../control/client.ts';
import { readFileTree } from '../../platform/file-tree.ts';
import type { Value } from '../../preserves/index.ts';
import { UsageError } from '../args.ts';
import { controlCommand, type ControlContext } from '../control-command.ts';
import { jsonLine, show } from '../format.ts';
import { ExitCode } from '../io.ts';
import { paint } from '../table.ts';

/**
 * The files of a candidate directory, as `try` sends them; a message on stderr and
 * undefined when it cannot be read, is empty, or is too large for one request.
 */
export async function readCandidate(
  ctx: ControlContext,
  dir: string,
): Promise<Map<string, Uint8Array> | undefined> {
  const files = new Map<string, Uint8Array>();
  try {
    await readFileTree(dir, files, { bytes: 0 });
  } catch (e) {
    ctx.io.err(`${ctx.name}: cannot read ${dir}: ${(e as Error).message}\n`);
    return undefined;
  }
  if (files.size === 0) {
    ctx.io.err(`${ctx.name}: ${dir} holds no files: an empty configuration is refused\n`);
    return undefined;
  }
  // The candidate travels in one request line: its bytes as base64, its paths, a
  // little framing. Said here rather than as the daemon's line-too-long.
  let size = 1024;
  for (const [path, content] of files) size += path.length + 16 + Math.ceil(content.length / 3) * 4;
  if (size > MAX_LINE_BYTES) {
    ctx.io.err(
      `${ctx.name}: the files in ${dir} take about ${size} bytes as a request, over the ` +
        `${MAX_LINE_BYTES}-byte limit of one request (docs/safe-change.md, "Limits"); nothing was sent\n`,
    );
    return undefined;
  }
  return files;
}

/** A plan for people: the assertions, then the services, then the notes. */
export function formatPlan(p: PlanAnswer, color: boolean): string {
  const lines = [`${p.from} -> ${p.to}`];
  const count = p.appear.length + p.disappear.length;
  if (count === 0) lines.push('$config: no assertion appears or disappears');
  else {
    lines.push(`$config: ${p.appear.length} appear, ${p.disappear.length} disappear`);
    for (const v of p.appear) lines.push(paint(`  + ${show(v)}`, 'green', color));
    for (const v of p.disappear) lines.push(paint(`  - ${show(v)}`, 'red', color));
  }
  if (p.start.length + p.stop.length + p.restart.length === 0)
    lines.push('services: none starts, stops or restarts');
  else {
    lines.push('services:');
    for (const s of p.start) lines.push(paint(`  start    ${show(s)}`, 'green', color));
    for (const s of p.stop) lines.push(paint(`  stop     ${show(s)}`, 'red', color));
    for (const r of p.restart) {
      lines.push(paint(`  restart  ${show(r.service)}`, 'yellow', color));
      for (const c of r.changes)
        lines.push(`             ${c.key}: ${side(c.from)} -> ${side(c.to)}`);
    }
  }
  for (const n of p.notes) lines.push(`note: ${n}`);
  return lines.join('\n') + '\n';
}

function side(v: Value | undefined): string {
  return v === undefined ? '(none)' : show(v);
}

/** Prints a `diff` answer, as JSON or for people. */
export function printPlan(ctx: ControlContext, answer: Value): void {
  ctx.io.out(ctx.json ? jsonLine(answer) : formatPlan(decodePlan(answer), ctx.color));
}

/** A generation number, or a directory's files (undefined and a message when unusable). */
async function sideOf(
  ctx: ControlContext,
  arg: string,
): Promise<number | Map<string, Uint8Array> | undefined> {
  if (/^[0-9]+$/.test(arg)) {
    const n = Number(arg);
    if (n < 1 || !Number.isSafeInteger(n))
      throw new UsageError(`'${arg}' is not a generation number (see limen generations)`);
    return n;
  }
  return readCandidate(ctx, resolve(arg));
}

export const diffCommand = controlCommand({
  path: ['diff'],
  summary: 'show what a change of configuration does, without applying it',
  usage: 'limen diff [A] [B] [--json] [--socket PATH]',
  help: `Evaluates two configurations against the machine's current state, as the daemon
would run them (the drivers' assertions included: the DHCP client and dnsmasq
services, for example), and prints what going from A to B does: the assertions
that appear (+) and disappear (-) in $config, and the services that would start,
stop or restart (a daemon whose spec changed restarts, with the fields that
changed). Nothing is started, stopped or written.

A and B are generation numbers (see limen generations) or, one of them, a
directory laid out as /etc/limen (a candidate, as limen try takes). Without B, B
is the current generation; without either, the plan is what the current
generation changed from its parent. A directory alone is the plan of trying it
(from the current generation to it), as limen try --dry-run DIR prints.

Examples:
  limen diff
  limen diff 12
  limen diff 12 14
  limen diff 14 ./candidate --json`,
  positionals: [0, 2],
  async run(ctx) {
    const [a, b] = ctx.args.positionals;
    const dirs = [a, b].filter((x): x is string => x !== undefined && !/^[0-9]+$/.test(x));
    if (dirs.length === 2) throw new UsageError('at most one of A and B may be a directory');
    let from = a === undefined ? undefined : await sideOf(ctx, a);
    let to = b === undefined ? undefined : await sideOf(ctx, b);
    if ((a !== undefined && from === undefined) || (b !== undefined && to === undefined))
      return ExitCode.Failed;
    // A directory alone is the plan of trying it: from the current generation to it.
    if (b === undefined && typeof from === 'object') [from, to] = [undefined, from];
    const client = await ctx.client();
    const answer = await client.diff(
      from,
      to,
      dirs[0] === undefined ? undefined : resolve(dirs[0]),
    );
    printPlan(ctx, answer);
    return ExitCode.Ok;
  },
});
