// `limen lab`: the network-namespace lab (DESIGN.md section 9). Not built yet:
// it says so plainly and fails, rather than pretend.

import type { Command } from '../command.ts';
import { ExitCode, type Io } from '../io.ts';

export const labCommand: Command = {
  path: ['lab'],
  summary: 'the network-namespace lab and the demo (not built yet)',
  usage: 'limen lab demo',
  help: 'The lab builds network namespaces with real peers (world, isp, rtr, lan) and runs\nthe demo in them. It is not built yet (issue 7).',
  run(_argv: readonly string[], io: Io): Promise<number> {
    io.err(
      'limen lab: the lab demo is not built yet (it arrives with issue 7: the lab, the demo,\n' +
        'end-to-end tests). Nothing was run. See README.md for what works today.\n',
    );
    return Promise.resolve(ExitCode.Failed);
  },
};
