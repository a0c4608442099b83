// Runs limen's kernel drivers inside a network namespace for the tests
// (`ip netns exec NS node --import tsx harness-monitor.ts [options]`): an engine
// with $config and $machine, the interface monitor and/or the address/route
// reconciler and/or the sysctl driver. Prints every assertion change as a JSON
// line {ev: "+"|"-", ds, v} (v in Preserves text) and reads commands, one JSON
// object a line, on stdin: {cmd: "assert", id, ds, v}, {cmd: "retract", id},
// {cmd: "resync"}, {cmd: "stats"}, {cmd: "exit"};
// each may carry `req`, echoed in {ev: "done", req} or {ev: "reply", req, …}.
// Prints {ev: "ready"} once the drivers have their first dump.
// Options: --monitor, --reconciler, --sysctl ROOT, --rcvbuf BYTES, --grace MS,
// --in-process (the monitor's socket in this process, not in the helper).

import { createInterface } from 'node:readline';
import { Dataspace, Engine, P, type Handle } from '../../../src/dataspace/index.ts';
import { parse, stringify } from '../../../src/preserves/index.ts';
import {
  startInterfaceMonitor,
  type InterfaceMonitor,
} from '../../../src/net/interface-monitor.ts';
import {
  startAddressRouteReconciler,
  type AddressRouteReconciler,
} from '../../../src/net/address-route.ts';
import { startSysctl } from '../../../src/net/sysctl.ts';
import { netlinkHelpersExited } from '../../../src/net/netlink-proxy.ts';

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const option = (name: string) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args[i + 1];
};

const out = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');

const engine = new Engine({
  logger: {
    error: (message, fields) => out({ ev: 'log', level: 'error', message, fields }),
    warn: (message, fields) => out({ ev: 'log', level: 'warn', message, fields }),
    info: (message, fields) => out({ ev: 'log', level: 'info', message, fields }),
  },
});
const config = new Dataspace(engine, 'config');
const machine = new Dataspace(engine, 'machine');
const root = engine.root;
const handles = new Map<number, Handle>();
let monitor: InterfaceMonitor | undefined;
let reconciler: AddressRouteReconciler | undefined;

engine.turn(() => {
  for (const [name, ds] of [
    ['config', config],
    ['machine', machine],
  ] as const) {
    root.observe(ds.ref, P._, {
      onAdd: (v) => out({ ev: '+', ds: name, v: stringify(v) }),
      onRemove: (v) => out({ ev: '-', ds: name, v: stringify(v) }),
    });
  }
  if (flag('--monitor')) {
    const rcvbuf = option('--rcvbuf');
    monitor = startInterfaceMonitor(root, {
      machine: machine.ref,
      ...(rcvbuf !== undefined ? { recvBufferSize: Number(rcvbuf) } : {}),
      ...(flag('--in-process') ? { transport: 'in-process' as const } : {}),
    });
  }
  if (flag('--reconciler')) {
    const grace = option('--grace');
    const rcvbuf = option('--rcvbuf');
    reconciler = startAddressRouteReconciler(root, {
      config: config.ref,
      ...(grace !== undefined ? { leftoverGraceMs: Number(grace) } : {}),
      ...(rcvbuf !== undefined ? { recvBufferSize: Number(rcvbuf) } : {}),
    });
  }
  const sysctlRoot = option('--sysctl');
  if (sysctlRoot !== undefined)
    startSysctl(root, { config: config.ref, machine: machine.ref, root: sysctlRoot });
});

await Promise.all([monitor?.ready, reconciler?.ready]);
await engine.sync();
out({ ev: 'ready' });

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (line.trim() === '') continue;
  const c = JSON.parse(line) as {
    cmd: string;
    id?: number;
    req?: number;
    ds?: string;
    v?: string;
  };
  switch (c.cmd) {
    case 'assert': {
      const ds = c.ds === 'machine' ? machine : config;
      engine.turn(() => handles.set(c.id!, root.assert(ds.ref, parse(c.v!))));
      break;
    }
    case 'retract': {
      const h = handles.get(c.id!);
      handles.delete(c.id!);
      if (h !== undefined) engine.turn(() => root.retract(h));
      break;
    }
    case 'resync':
      monitor?.resync();
      break;
    case 'stats':
      await engine.sync();
      out({ ev: 'reply', req: c.req, resyncs: monitor?.resyncs ?? 0, stats: reconciler?.stats });
      break;
    case 'exit':
      // Stop the drivers the way the daemon does at shutdown: kernel state stays.
      engine.turn(() => root.stop());
      await engine.sync();
      await reconciler?.closed;
      await netlinkHelpersExited();
      out({ ev: 'bye' });
      process.exit(0);
  }
  await engine.sync();
  if (c.cmd === 'assert' || c.cmd === 'retract') out({ ev: 'done', req: c.req });
}
