// Evaluating a configuration without running it (`limen diff`, `limen try --dry-run`;
// docs/safe-change.md, "A plan before applying"). A sandbox of its own (engine,
// $config, $machine, $log) loads the shipped layers and the given site files the way
// the daemon does, against a copy of the machine's current state, with the drivers
// that only turn assertions into assertions: the service manager, the DHCP lease
// interpreter, static addressing, the LAN driver (dry: no file written) and the
// kernel-feature check. In place of the supervisor, every daemon that would run is
// taken to be ready at once, with the outputs (a DHCP lease) that the running daemon
// of that name has now; in place of the address reconciler, every address asked for
// is installed. Nothing touches the kernel, the files or any process.

import { join } from 'node:path';
import { record, sym, ValueMap, type Value } from '../preserves/index.ts';
import { Dataspace, Engine, P, during, type Logger } from '../dataspace/index.ts';
import {
  ConfigWatcher,
  SnapshotSource,
  bindingsOf,
  startConfigWatcherService,
} from '../script/index.ts';
import { startServiceManager } from '../supervisor/service-manager.ts';
import { startInterfaceProtocols } from '../net/protocols.ts';
import { startLanDhcp } from '../net/lan-dhcp.ts';
import { startLanIpv6 } from '../net/lan-ipv6.ts';
import { startKernelFeatures } from '../net/kernel-features.ts';
import {
  CandidateError,
  GenerationError,
  checkCandidate,
  comparePlans,
  evaluationOf,
  type Evaluation,
  type GenerationStore,
} from '../safety/index.ts';
import type { ConfigurationChoice, PlanAnswer, PlanRequest } from '../control/index.ts';
import { limenPathsRecord, type DaemonPaths } from './paths.ts';

/** Site root → path relative to it → content: a generation's or a candidate's files. */
export type SiteFiles = ReadonlyMap<string, ReadonlyMap<string, Uint8Array>>;

/** How long an evaluation may take to settle before it is reported unsettled. */
export const PLAN_SETTLE_TIMEOUT_MS = 10_000;

export interface PlanContext {
  readonly paths: DaemonPaths;
  /** The running daemon's dataspaces: the machine's state and the services' outputs. */
  readonly config: Dataspace;
  readonly machine: Dataspace;
  /** Where the sandbox's own errors go. */
  readonly logger: Logger;
  readonly network: boolean;
}

export interface EvaluationResult {
  readonly evaluation: Evaluation;
  /** False when it was still changing at the time limit (a script that never settles). */
  readonly settled: boolean;
}

/** The services' outputs now (`<output SERVICE KEY VALUE>`), by service. */
function outputsOf(config: Dataspace): ValueMap<Value[]> {
  const out = new ValueMap<Value[]>();
  for (const r of config.query(P.rec('output', P.bind('s'), P._, P._))) {
    const s = r.captures.get('s')!;
    const list = out.get(s) ?? [];
    list.push(r.value);
    out.set(s, list);
  }
  return out;
}

/** Runs the configuration made of `files` (the shipped layers besides) in a sandbox. */
export async function evaluateConfiguration(
  files: SiteFiles,
  ctx: PlanContext,
  timeoutMs = PLAN_SETTLE_TIMEOUT_MS,
): Promise<EvaluationResult> {
  const { paths } = ctx;
  const logger: Logger = {
    error: (m, f) => ctx.logger.error(`plan evaluation: ${m}`, f),
    warn: (m, f) => ctx.logger.warn(`plan evaluation: ${m}`, f),
  };
  const engine = new Engine({ logger });
  const config = new Dataspace(engine, 'config');
  const machine = new Dataspace(engine, 'machine');
  const log = new Dataspace(engine, 'log');
  const root = engine.root;
  const source = new SnapshotSource(files);
  const outputs = outputsOf(ctx.config);
  const machineNow = [...ctx.machine.values()];
  let changes = 0;
  let boot!: ConfigWatcher;
  let watchers!: ReturnType<typeof startConfigWatcherService>;
  let services!: ReturnType<typeof startServiceManager>;
  engine.turn(() => {
    for (const v of machineNow) root.assert(machine.ref, v);
    root.observe(config.ref, P._, { onAdd: () => changes++, onRemove: () => changes++ });
    services = startServiceManager(root, { config: config.ref });
    watchers = startConfigWatcherService(root, config.ref, undefined, { source });
    // The supervisor's stand-in: every daemon that would run is ready, with today's outputs.
    during(root, config.ref, P.rec('run-service', P.bind('s', P.rec('daemon', P._))), (f, c) => {
      const s = c.get('s')!;
      f.assert(config.ref, record('service-state', s, sym('ready')));
      for (const o of outputs.get(s) ?? []) f.assert(config.ref, o);
    });
    if (ctx.network) {
      // The address reconciler's stand-in: every address asked for is installed.
      during(
        root,
        config.ref,
        P.rec('ip-address', P.bind('if'), P.bind('addr'), P._),
        (f, c) =>
          void f.assert(
            config.ref,
            record('ip-address-state', c.get('if')!, c.get('addr')!, sym('installed'), ''),
          ),
      );
      startInterfaceProtocols(root, { config: config.ref, machine: machine.ref });
      startLanDhcp(root, {
        config: config.ref,
        machine: machine.ref,
        runDir: paths.runDir,
        dryRun: true,
      });
      // Reads the ULA prefix if the router has one; never makes it.
      startLanIpv6(root, { config: config.ref, stateDir: paths.stateDir, dryRun: true });
      startKernelFeatures(root, { config: config.ref, machine: machine.ref });
    }
    root.assert(config.ref, limenPathsRecord(paths));
    for (const dir of paths.siteConfigDirs) root.assert(config.ref, record('site-config-dir', dir));
    boot = new ConfigWatcher(root, {
      path: join(paths.shippedConfigDir, 'boot'),
      env: bindingsOf({ config: config.ref, machine: machine.ref, log: log.ref }),
      serviceName: record('boot-layer', paths.shippedConfigDir),
      source,
    });
  });
  const deadline = Date.now() + timeoutMs;
  let settled = false;
  try {
    let seen = -1;
    while (Date.now() < deadline) {
      await services.settled();
      await new Promise((r) => setImmediate(r));
      const loading = !boot.isReady || watchers.watchers().some((w) => !w.isReady);
      if (!loading && engine.isQuiescent && changes === seen) {
        settled = true;
        break;
      }
      seen = changes;
    }
    return { evaluation: evaluationOf(config.values()), settled };
  } finally {
    engine.turn(() => root.stop());
    await engine.sync();
  }
}

export interface PlannerOptions extends PlanContext {
  readonly store: GenerationStore;
  /** The site roots that generations hold; a candidate replaces the first one's files. */
  readonly roots: readonly string[];
  /** Why maintenance mode is on, if it is. */
  readonly maintenance: () => string | undefined;
}

/** The configurations that plans compare, one evaluation at a time. */
export class Planner {
  readonly #o: PlannerOptions;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(o: PlannerOptions) {
    this.#o = o;
  }

  /** What going from one configuration to another does (PlanRequest says which). */
  plan(request: PlanRequest): Promise<PlanAnswer> {
    const run = this.#chain.then(() => this.#plan(request));
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async #plan(request: PlanRequest): Promise<PlanAnswer> {
    const { store, roots } = this.#o;
    const current = store.current;
    if (current === undefined) throw new GenerationError('no generation is recorded yet');
    let from: ConfigurationChoice | 'empty' | undefined = request.from;
    let to = request.to;
    if (from === undefined && to === undefined) {
      const parent = (await store.meta(current)).parent;
      to = { generation: current };
      from = parent === undefined ? 'empty' : { generation: parent };
    }
    from ??= { generation: current };
    to ??= { generation: current };
    const before =
      from === 'empty'
        ? {
            files: new Map(roots.map((r) => [r, new Map()] as const)),
            name: 'no site configuration',
          }
        : await this.#resolve(from, current);
    const after = await this.#resolve(to, current);
    const a = await evaluateConfiguration(before.files, this.#o);
    const b = await evaluateConfiguration(after.files, this.#o);
    const notes: string[] = [];
    for (const [side, r] of [
      [before.name, a],
      [after.name, b],
    ] as const)
      if (!r.settled)
        notes.push(
          `${side} was still changing after ${PLAN_SETTLE_TIMEOUT_MS / 1000} s (a script that never settles?): this plan may be incomplete`,
        );
    const reason = this.#o.maintenance();
    if (reason !== undefined)
      notes.push(
        `maintenance mode is on (${reason}): the plan shows what runs outside it; only the recovery bundle runs now`,
      );
    return {
      from: before.name,
      to: after.name,
      ...comparePlans(a.evaluation, b.evaluation),
      notes,
    };
  }

  /** A choice's files and name; a candidate is checked first, as `limen try` checks it. */
  async #resolve(
    choice: ConfigurationChoice,
    current: number,
  ): Promise<{ files: SiteFiles; name: string }> {
    const { store, roots } = this.#o;
    if ('generation' in choice) {
      const g = await store.read(choice.generation);
      const tag = choice.generation === current ? ' (current)' : '';
      return { files: g.files, name: `generation ${choice.generation}${tag}` };
    }
    const problems = checkCandidate(choice.files, choice.source);
    if (problems.length > 0) throw new CandidateError(problems);
    const files = new Map((await store.read(current)).files);
    files.set(roots[0]!, choice.files);
    return { files, name: choice.source };
  }
}
