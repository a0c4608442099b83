// `limen lab up|down|status|exec|demo`: the network-namespace lab (DESIGN.md
// section 9, src/lab/). Every subcommand needs root except status and --help.

import { parseArgs, UsageError } from '../args.ts';
import type { Command } from '../command.ts';
import { ExitCode, type Io } from '../io.ts';
import {
  NODES,
  isLabNode,
  labDown,
  labDownAll,
  labExecInteractive,
  labNames,
  labStatus,
  labUp,
  limenInvocation,
  openLab,
} from '../../lab/lab.ts';
import { runDemo } from '../../lab/demo.ts';
import { LAB_WANS, type LabWan } from '../../lab/lab.ts';
import { pppoeLabProblem } from '../../lab/pppoe-isp.ts';
import { inVm, runDemoInVm } from '../../lab/vm-lab.ts';

function parseWan(v: string | boolean | undefined, fallback: LabWan): LabWan {
  if (v === undefined) return fallback;
  if (typeof v === 'string' && (LAB_WANS as readonly string[]).includes(v)) return v as LabWan;
  throw new UsageError(`--wan: one of ${LAB_WANS.join(', ')}`);
}

/** Runs `body` with an AbortSignal that Ctrl-C, SIGTERM and the caller's signal abort. */
async function interruptible(io: Io, body: (signal: AbortSignal) => Promise<number>) {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  const external = io.signal;
  external?.addEventListener('abort', onSignal, { once: true });
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await body(stop.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    external?.removeEventListener('abort', onSignal);
  }
}

/** The demo in the VM, with the lab's output streamed to io. */
function demoInVm(io: Io, wan: LabWan, once: boolean, name: string | undefined) {
  if (inVm()) throw new UsageError("--vm: this is already limen's VM");
  return interruptible(io, (signal) =>
    runDemoInVm({ wan, once, name, out: (t) => io.out(t), err: (t) => io.err(t), signal }),
  );
}

const nodesText = NODES.join(', ');

/** --name, else the only lab that is up, else `fallback`. */
function pickName(given: string | boolean | undefined, fallback?: string): string {
  if (typeof given === 'string') return given;
  const names = labNames();
  if (names.length === 1) return names[0]!;
  if (fallback !== undefined) return fallback;
  throw new UsageError(
    names.length === 0
      ? 'no lab is up (limen lab up)'
      : `several labs are up (${names.join(', ')}): say which with --name`,
  );
}

export const labUpCommand: Command = {
  path: ['lab', 'up'],
  summary: 'build the lab: world, isp, rtr (limen), lan1, lan2 in namespaces',
  usage:
    'limen lab up [--name NAME] [--config DIR | --no-router] [--no-clients] [--wan dhcp|pppoe] [--vm]',
  help: `Builds a small internet in network namespaces named limen-NAME-NODE, with real
programs only: world (busybox httpd for http://world.test/ and dnsmasq serving the
world.test zone, 198.51.100.10), isp (dnsmasq: DHCP for the router's WAN in
100.64.0.0/24 and DNS forwarding; it routes to world), rtr (limen with --root in
the lab's directory and a copy of the site configuration), sw (the LAN switch)
and lan1, lan2 (busybox udhcpc clients). The lab stays up until 'limen lab down'.

Options:
  --name NAME     the lab's name (default: lab); two labs can run side by side
  --config DIR    the router's site configuration (default: examples/home-router)
  --no-router     do not start limen in rtr
  --no-clients    do not start the LAN clients
  --wan dhcp|pppoe  how the ISP serves the WAN (default dhcp): pppoe runs Debian's
                  pppoe-server with CHAP, and limen dials it (needs a kernel with PPPoE)
  --vm            the whole lab in limen's VM (a Debian kernel under qemu, for what this
                  kernel lacks), WAN over PPPoE unless --wan says otherwise: it prints the
                  demo's timeline and a live view, and lives until Ctrl-C (lab exec cannot
                  reach into it)

Examples:
  sudo limen lab up
  sudo limen lab exec rtr -- limen status
  sudo limen lab down
  sudo limen lab up --vm`,
  async run(argv: readonly string[], io: Io): Promise<number> {
    const a = parseArgs(argv, {
      name: { type: 'string' },
      config: { type: 'string' },
      'no-router': { type: 'boolean' },
      'no-clients': { type: 'boolean' },
      wan: { type: 'string' },
      vm: { type: 'boolean' },
    });
    if (a.positionals.length > 0) throw new UsageError(`unexpected '${a.positionals[0]!}'`);
    if (a.options.has('config') && a.options.has('no-router')) {
      throw new UsageError('--config and --no-router do not go together');
    }
    const name = (a.options.get('name') as string | undefined) ?? 'lab';
    if (a.options.has('vm')) {
      const other = ['config', 'no-router', 'no-clients'].find((k) => a.options.has(k));
      if (other !== undefined) throw new UsageError(`--${other} does not go with --vm`);
      return demoInVm(io, parseWan(a.options.get('wan'), 'pppoe'), false, name);
    }
    const config = a.options.get('config');
    const clients = !a.options.has('no-clients');
    const lab = await labUp({
      name,
      config: a.options.has('no-router') ? false : typeof config === 'string' ? config : undefined,
      clients,
      wan: parseWan(a.options.get('wan'), 'dhcp'),
      onStep: (s) => io.out(`  ${s}\n`),
    });
    // With the router and clients of the default site, "up" means working: lan1
    // fetches the world's page through limen (DNS, NAT), so what we print next works.
    const waited = lab.router !== undefined && clients && typeof config !== 'string';
    let ready = true;
    if (waited) {
      io.out('  lan1: waiting to reach http://world.test/ through limen\n');
      ready = await lab.waitLanReachesWorld('lan1', 60_000);
    }
    // Only commands that work now: each runs as printed (test/lab/07-first-contact.test.ts).
    const exec = `${limenInvocation()} lab exec --name ${name}`;
    const next = [
      ...(lab.router !== undefined ? [`${exec} rtr -- limen status`] : []),
      ...(waited && ready ? [`${exec} lan1 -- busybox wget -qO- http://world.test/`] : []),
      `${limenInvocation()} lab down ${name}`,
    ];
    io.out(`lab ${name} is up (${lab.dir}).\n${next.map((c) => `  ${c}\n`).join('')}`);
    if (!ready) {
      io.err(
        `limen lab up: lan1 did not reach http://world.test/ within 60 s; the lab stays up ` +
          `for a look (router log: ${lab.routerLog}, lan1: ${lab.dir}/lan1/udhcpc.log)\n`,
      );
      return ExitCode.Failed;
    }
    return ExitCode.Ok;
  },
};

export const labDownCommand: Command = {
  path: ['lab', 'down'],
  summary: 'remove a lab: processes, namespaces, files (--all: every lab)',
  usage: 'limen lab down [NAME | --all]',
  help: `Stops limen in rtr (an orderly shutdown) and every other process of the lab,
then removes its namespaces and files. It works on a half-built or crashed lab
too; --all also finds leftovers by their namespace names (limen-NAME-NODE).

Examples:
  sudo limen lab down
  sudo limen lab down demo
  sudo limen lab down --all`,
  async run(argv: readonly string[], io: Io): Promise<number> {
    const a = parseArgs(argv, { all: { type: 'boolean' } });
    if (a.positionals.length > 1) throw new UsageError(`unexpected '${a.positionals[1]!}'`);
    if (a.options.has('all') && a.positionals.length > 0) {
      throw new UsageError('give a NAME or --all, not both');
    }
    const reports = a.options.has('all')
      ? await labDownAll()
      : [await labDown(pickName(a.positionals[0] ?? undefined))];
    for (const r of reports) {
      io.out(
        `lab ${r.name}: removed (${r.namespaces.length} namespaces, ${r.processes} processes stopped)\n`,
      );
    }
    if (reports.length === 0) io.out('no lab was up\n');
    return ExitCode.Ok;
  },
};

export const labStatusCommand: Command = {
  path: ['lab', 'status'],
  summary: 'list the labs on this machine and what runs in them',
  usage: 'limen lab status [--json]',
  help: `Shows every lab: its namespaces, its processes (alive or not) and the router's
control socket. A lab without its state file is a leftover: 'limen lab down --all'.`,
  run(argv: readonly string[], io: Io): Promise<number> {
    const a = parseArgs(argv, { json: { type: 'boolean' } });
    const labs = labStatus();
    if (a.options.has('json')) {
      io.out(JSON.stringify(labs) + '\n');
      return Promise.resolve(ExitCode.Ok);
    }
    if (labs.length === 0) io.out('no lab is up (limen lab up)\n');
    for (const l of labs) {
      io.out(`lab ${l.name}${l.complete ? '' : ' (leftovers: limen lab down --all)'}: ${l.dir}\n`);
      io.out(
        `  namespaces: ${l.namespaces.map((n) => `${n.node}${n.present ? '' : ' (missing)'}`).join(', ')}\n`,
      );
      for (const p of l.processes) {
        io.out(
          `  ${p.role.padEnd(14)} pid ${String(p.pid).padEnd(8)} ${p.alive ? 'running' : 'gone'}\n`,
        );
      }
      io.out(`  control socket: ${l.socket}\n`);
    }
    return Promise.resolve(ExitCode.Ok);
  },
};

export const labExecCommand: Command = {
  path: ['lab', 'exec'],
  summary: 'run a command in a lab node (limen on PATH, talking to the lab router)',
  usage: 'limen lab exec [--name NAME] NODE -- COMMAND [ARG...]',
  help: `Runs COMMAND in NODE's namespace (${nodesText}) with the terminal attached and
exits with its status. PATH starts with limen's bin/ and LIMEN_SOCKET points at
the lab router's control socket, so 'limen ...' talks to the lab's limen.

Examples:
  sudo limen lab exec rtr -- limen status
  sudo limen lab exec rtr -- ip -br addr
  sudo limen lab exec lan1 -- busybox wget -qO- http://world.test/`,
  async run(argv: readonly string[], _io: Io): Promise<number> {
    const dash = argv.indexOf('--');
    const before = dash < 0 ? argv : argv.slice(0, dash);
    const command = dash < 0 ? [] : argv.slice(dash + 1);
    const a = parseArgs(before, { name: { type: 'string' } });
    const node = a.positionals[0];
    if (node === undefined) throw new UsageError(`which node? one of ${nodesText}`);
    if (!isLabNode(node)) throw new UsageError(`no node '${node}': one of ${nodesText}`);
    if (a.positionals.length > 1 || command.length === 0) {
      throw new UsageError("put the command after '--': limen lab exec rtr -- limen status");
    }
    const lab = openLab(pickName(a.options.get('name')));
    return labExecInteractive(lab, node, command);
  },
};

export const labDemoCommand: Command = {
  path: ['lab', 'demo'],
  summary: 'the demo: the lab with limen as a home router, and a timeline',
  usage: 'limen lab demo [--once] [--name NAME] [--wan dhcp|pppoe] [--vm]',
  help: `Builds the lab, starts limen in rtr with examples/home-router (WAN by DHCP, LAN
192.168.8.1/24 with a DHCP server, NAT, firewall) and prints a timeline in
milliseconds since limen started, up to a LAN client fetching http://world.test/
by name through the router. Then a live view of what changes, until Ctrl-C,
which removes the lab. Needs root.

Options:
  --once          check every step, tear down, exit 0 only if the page was fetched
  --name NAME     the lab's name (default: demo)
  --wan dhcp|pppoe  the WAN by DHCP (default) or over PPPoE (CHAP, pppd under limen);
                  PPPoE runs in limen's VM when this kernel has no PPPoE
  --vm            run the whole demo in limen's VM (a Debian kernel under qemu)

Examples:
  npm run demo
  npm run demo -- --once
  npm run demo -- --wan pppoe`,
  async run(argv: readonly string[], io: Io): Promise<number> {
    const a = parseArgs(argv, {
      once: { type: 'boolean' },
      name: { type: 'string' },
      wan: { type: 'string' },
      vm: { type: 'boolean' },
    });
    if (a.positionals.length > 0) throw new UsageError(`unexpected '${a.positionals[0]!}'`);
    const wan = parseWan(a.options.get('wan'), 'dhcp');
    const once = a.options.has('once');
    const given = a.options.get('name');
    const name = typeof given === 'string' ? given : undefined;
    const noPppoe = wan === 'pppoe' && !inVm() ? pppoeLabProblem() : undefined;
    if (a.options.has('vm') || noPppoe !== undefined) {
      if (noPppoe !== undefined && !a.options.has('vm'))
        io.out(
          `limen demo: ${noPppoe.replace(/: run the lab in the VM.*$/, '')}: running it in the VM\n`,
        );
      return demoInVm(io, wan, once, name);
    }
    return interruptible(io, (signal) =>
      runDemo({
        once,
        wan,
        ...(name !== undefined ? { name } : {}),
        out: (t) => io.out(t),
        err: (t) => io.err(t),
        signal,
      }),
    );
  },
};

export const labCommands: readonly Command[] = [
  labUpCommand,
  labDownCommand,
  labStatusCommand,
  labExecCommand,
  labDemoCommand,
];
