// `limen services` (a table of every service the daemon runs) and `limen service S`
// (one service in detail: its processes and outputs).

import { decodeServiceDetail, decodeServiceInfo, type ServiceInfo } from '../../control/client.ts';
import type { Value } from '../../preserves/index.ts';
import { controlCommand } from '../control-command.ts';
import { jsonLine, parseServiceArg, show, showTime } from '../format.ts';
import { ExitCode } from '../io.ts';
import { renderFields, renderTable, stateTint } from '../table.ts';

function pids(p: readonly number[]): string {
  return p.length === 0 ? '-' : p.join(',');
}

export const servicesCommand = controlCommand({
  path: ['services'],
  summary: 'list the services and their states',
  usage: 'limen services [--json] [--socket PATH]',
  help: `Lists every service the daemon knows: its state, processes, restarts, the time
of its last state change and how its last process exited; below the table, why
each failed service failed, when the supervisor knows (a crash loop's give-up).

Examples:
  limen services
  limen services --json | jq -r '.[] | select(.state == "failed") | .service'`,
  positionals: [0, 0],
  async run(ctx) {
    const client = await ctx.client();
    const answer = await client.services();
    if (ctx.json) {
      ctx.io.out(jsonLine(answer));
      return ExitCode.Ok;
    }
    const list: ServiceInfo[] = Array.isArray(answer)
      ? (answer as readonly Value[]).map(decodeServiceInfo)
      : [];
    if (list.length === 0) {
      ctx.io.out('no services\n');
      return ExitCode.Ok;
    }
    const rows = list.map((s) => [
      show(s.service),
      s.state,
      pids(s.pids),
      String(s.restarts),
      showTime(s.since),
      s.lastExit ?? '-',
    ]);
    let out = renderTable(['SERVICE', 'STATE', 'PIDS', 'RESTARTS', 'SINCE', 'LAST EXIT'], rows, {
      color: ctx.color,
      tint: (col, text) => (col === 1 ? stateTint(text) : undefined),
    });
    // Reasons are long: below the table, not in a column that would stretch every row.
    for (const s of list) {
      if (s.failure !== undefined) out += `${show(s.service)}: ${s.failure}\n`;
    }
    ctx.io.out(out);
    return ExitCode.Ok;
  },
});

export const serviceCommand = controlCommand({
  path: ['service'],
  summary: 'one service in detail: processes, outputs',
  usage: 'limen service SERVICE [--json] [--socket PATH]',
  help: `Shows one service: its state, its processes (one per spec value) and the
outputs it published. SERVICE is Preserves text; a bare word means <daemon WORD>.

Examples:
  limen service sshd                        # <daemon sshd>
  limen service '<daemon <udhcpc "wan0">>'`,
  positionals: [1, 1],
  async run(ctx) {
    const service = parseServiceArg(ctx.args.positionals[0]!);
    const client = await ctx.client();
    const answer = await client.service(service);
    if (ctx.json) {
      ctx.io.out(jsonLine(answer));
      return ExitCode.Ok;
    }
    const d = decodeServiceDetail(answer);
    const fields: [string, string][] = [
      ['service', show(d.service)],
      ['state', d.state],
      ['pids', pids(d.pids)],
      ['restarts', String(d.restarts)],
      ['since', showTime(d.since)],
      ['last exit', d.lastExit ?? '-'],
    ];
    if (d.failure !== undefined) fields.push(['failure', d.failure]);
    if (d.outputsDir !== undefined) fields.push(['outputs dir', d.outputsDir]);
    let out = renderFields(fields, {
      color: ctx.color,
      tint: (i, text) => (i === 1 ? stateTint(text) : undefined),
    });
    if (d.processes.length > 0) {
      const rows = d.processes.map((p) => [
        show(p.spec),
        p.state,
        p.pid === undefined ? '-' : String(p.pid),
        String(p.restarts),
        p.lastExit ?? '-',
      ]);
      out +=
        '\n' +
        renderTable(['PROCESS', 'STATE', 'PID', 'RESTARTS', 'LAST EXIT'], rows, {
          color: ctx.color,
          tint: (col, text) => (col === 1 ? stateTint(text) : undefined),
        });
      for (const p of d.processes) {
        for (const problem of p.problems) out += `  problem: ${problem}\n`;
        if (p.failure !== undefined) out += `  gave up: ${p.failure}\n`;
        if (p.where !== undefined) out += `  runs in: ${p.where}\n`;
      }
    }
    if (d.outputs !== undefined && d.outputs.length > 0) {
      out +=
        '\n' +
        renderTable(
          ['OUTPUT', 'VALUE'],
          d.outputs.map(([k, v]) => [show(k), show(v)]),
          { color: ctx.color },
        );
    }
    ctx.io.out(out);
    return ExitCode.Ok;
  },
});
