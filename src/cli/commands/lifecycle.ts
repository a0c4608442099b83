// `limen start|stop|restart SERVICE`. start asserts <require-service S> from the
// control server (for as long as the daemon runs); stop withdraws that (and fails
// if the configuration still requires S); restart sends <restart-service S>.

import { answerField } from '../../control/client.ts';
import type { Value } from '../../preserves/index.ts';
import { controlCommand, type ControlContext } from '../control-command.ts';
import { jsonLine, parseServiceArg, show } from '../format.ts';
import { ExitCode } from '../io.ts';

const serviceHelp = 'SERVICE is Preserves text; a bare word means <daemon WORD>.';

async function run(
  ctx: ControlContext,
  verb: 'start' | 'stop' | 'restart',
  describe: (service: Value, answer: Value) => string,
): Promise<number> {
  const service = parseServiceArg(ctx.args.positionals[0]!);
  const client = await ctx.client();
  const answer =
    verb === 'start'
      ? await client.start(service)
      : verb === 'stop'
        ? await client.stop(service)
        : await client.restart(service);
  ctx.io.out(ctx.json ? jsonLine(answer) : describe(service, answer) + '\n');
  return ExitCode.Ok;
}

export const startCommand = controlCommand({
  path: ['start'],
  summary: 'require a service (until stop, or the daemon exits)',
  usage: 'limen start SERVICE [--json] [--socket PATH]',
  help: `Asserts <require-service SERVICE> in $config for as long as the daemon runs
(until 'limen stop'); the service starts once its dependencies are up. It answers
at once: follow the service with 'limen watch '<service-state SERVICE ?state>''.
To require a service across restarts, use 'limen settings set' or the configuration.
${serviceHelp}

Examples:
  limen start sshd
  limen start '<daemon <udhcpc "wan0">>'`,
  positionals: [1, 1],
  run: (ctx) =>
    run(ctx, 'start', (s, a) =>
      answerField(a, 'already') === true
        ? `${show(s)} was already required`
        : `${show(s)} is required`,
    ),
});

export const stopCommand = controlCommand({
  path: ['stop'],
  summary: 'withdraw the requirement that start made',
  usage: 'limen stop SERVICE [--json] [--socket PATH]',
  help: `Retracts the <require-service SERVICE> that 'limen start' asserted; the service
stops unless something else requires it. If the configuration still requires it,
this fails (exit 1) and says so: change the configuration to stop it.
${serviceHelp}

Examples:
  limen stop sshd`,
  positionals: [1, 1],
  run: (ctx) =>
    run(ctx, 'stop', (s, a) =>
      answerField(a, 'wasRequired') === true
        ? `${show(s)} is no longer required`
        : `${show(s)} was not started with limen start, and nothing else requires it`,
    ),
});

export const restartCommand = controlCommand({
  path: ['restart'],
  summary: 'restart a service',
  usage: 'limen restart SERVICE [--json] [--socket PATH]',
  help: `Sends <restart-service SERVICE>: the supervisor stops the service's processes
and starts them again.
${serviceHelp}

Examples:
  limen restart dnsmasq`,
  positionals: [1, 1],
  run: (ctx) => run(ctx, 'restart', (s) => `${show(s)}: restart requested`),
});
