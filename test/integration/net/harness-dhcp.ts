// A small limen for dhcp.test.ts, run inside a network namespace (`ip netns
// exec NS node --import tsx harness-dhcp.ts JSON`): the real supervisor and
// service manager, the shipped config/core/network-dhcp.pr, the DHCP driver and
// the resolver. It prints every assertion of $config and $machine as JSON lines
// on stdout ({"op":"+"|"-","ds":"config"|"machine","v":TEXT}) and takes
// commands as JSON lines on stdin ({"op":"assert"|"retract","ds":…,"v":TEXT},
// {"op":"stop"}). The settings: {"runDir":DIR,"resolvConf":PATH}.

import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { dict, parse, record, stringify, type Value } from '../../../src/preserves/index.ts';
import { Dataspace, Engine, P, type Handle } from '../../../src/dataspace/index.ts';
import { ConfigWatcher, bindingsOf, presentable } from '../../../src/script/index.ts';
import { startSupervisor } from '../../../src/supervisor/supervisor.ts';
import { startServiceManager } from '../../../src/supervisor/service-manager.ts';
import { startDhcpLeases } from '../../../src/net/dhcp-lease.ts';
import { startResolver } from '../../../src/net/resolver.ts';

const repo = resolve(import.meta.dirname, '../../..');
const settings = JSON.parse(process.argv[2] ?? '{}') as { runDir: string; resolvConf: string };

const out = (o: object) => void process.stdout.write(`${JSON.stringify(o)}\n`);
const logger = {
  error: (m: string, f?: object) => void process.stderr.write(`error: ${m} ${JSON.stringify(f)}\n`),
  warn: (m: string, f?: object) => void process.stderr.write(`warn: ${m} ${JSON.stringify(f)}\n`),
  info: (m: string, f?: object) => void process.stderr.write(`info: ${m} ${JSON.stringify(f)}\n`),
};

const engine = new Engine({ logger });
const config = new Dataspace(engine, 'config');
const machine = new Dataspace(engine, 'machine');
const log = new Dataspace(engine, 'log');
const root = engine.root;
const spaces = { config, machine } as const;

let supervisor!: ReturnType<typeof startSupervisor>;
let services!: ReturnType<typeof startServiceManager>;
engine.turn(() => {
  for (const [name, ds] of Object.entries(spaces)) {
    root.observe(ds.ref, P._, {
      onAdd: (v) => out({ op: '+', ds: name, v: stringify(presentable(v)) }),
      onRemove: (v) => out({ op: '-', ds: name, v: stringify(presentable(v)) }),
    });
  }
  root.observe(log.ref, P._, {
    onMessage: (v) => void process.stderr.write(`log: ${stringify(presentable(v))}\n`),
  });
  supervisor = startSupervisor(root, { config: config.ref, log: log.ref, runDir: settings.runDir });
  services = startServiceManager(root, { config: config.ref, shutdownStepTimeoutMs: 5000 });
  root.assert(
    config.ref,
    record(
      'limen-paths',
      dict({
        shipped: join(repo, 'config'),
        libexec: join(repo, 'libexec'),
        state: settings.runDir,
        run: settings.runDir,
      }),
    ),
  );
  startDhcpLeases(root, { config: config.ref });
  startResolver(root, { config: config.ref, path: settings.resolvConf, debounceMs: 20 });
  new ConfigWatcher(root, {
    path: join(repo, 'config/core/network-dhcp.pr'),
    env: bindingsOf({ config: config.ref, machine: machine.ref, log: log.ref }),
  });
});

const handles = new Map<string, Handle[]>();
let stopping: Promise<void> | undefined;
function stop(): Promise<void> {
  stopping ??= (async () => {
    await services.shutdown();
    await supervisor.whenIdle();
    engine.turn(() => root.stop());
    await supervisor.closed;
    await engine.sync();
    out({ op: 'stopped' });
    process.exit(0);
  })();
  return stopping;
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = JSON.parse(line) as { op: string; ds?: 'config' | 'machine'; v?: string };
  if (cmd.op === 'stop') return void stop();
  const ds = spaces[cmd.ds ?? 'config'];
  const key = `${cmd.ds ?? 'config'} ${cmd.v}`;
  const value: Value = parse(cmd.v ?? '');
  engine.turn(() => {
    if (cmd.op === 'assert') {
      const list = handles.get(key) ?? [];
      list.push(root.assert(ds.ref, value));
      handles.set(key, list);
    } else if (cmd.op === 'retract') {
      const h = handles.get(key)?.pop();
      if (h !== undefined) root.retract(h);
    }
  });
});
process.on('SIGTERM', () => void stop());
out({ op: 'started', pid: process.pid });
