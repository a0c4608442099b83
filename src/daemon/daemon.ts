// The composition root: creates the engine and the standard dataspaces
// ($config, $machine, $log), starts the drivers (supervisor, service manager,
// config watchers), loads the shipped boot layer, and handles signals. The
// drivers never import each other; they meet only in the dataspaces wired here.
//
// Shutdown: services stop in reverse dependency order (the service manager
// decides the waves, the supervisor stops processes with their stop timeouts),
// then every facet stops and the process table is clean before we return.

import { realpath } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  Dict,
  Sym,
  ValueMap,
  peel,
  record,
  stringify,
  sym,
  type Value,
} from '../preserves/index.ts';
import { Dataspace, Engine, P, type Facet, type Handle } from '../dataspace/index.ts';
import {
  ConfigWatcher,
  bindingsOf,
  presentable,
  startConfigWatcherService,
} from '../script/index.ts';
import { startSupervisor, type Supervisor } from '../supervisor/supervisor.ts';
import { openProcessTracking } from '../supervisor/process-tracking.ts';
import {
  isLoader,
  startServiceManager,
  type ServiceManager,
} from '../supervisor/service-manager.ts';
import {
  SettingsDirectory,
  WEB_POLICY,
  WebPasswords,
  checkSocketPath,
  prepareGroupDirectory,
  startControlServer,
  type ControlServer,
  type ControlServerOptions,
} from '../control/index.ts';
import { resolveWebGroup } from './web-group.ts';
import { startWebDashboardSupport } from './web-dashboard.ts';
import { VERSION } from '../base/version.ts';
import { daemonStatus, serviceView } from './control.ts';
import {
  netlinkHelpersExited,
  startAddressRouteReconciler,
  startInterfaceMonitor,
  startSysctl,
  type AddressRouteReconciler,
  type InterfaceMonitor,
  type SysctlDriver,
} from '../net/index.ts';
import { startFirewall, type Firewall } from '../net/firewall.ts';
import { startLanClients } from '../net/lan-clients.ts';
import { startLanDhcp } from '../net/lan-dhcp.ts';
import { startLanIpv6 } from '../net/lan-ipv6.ts';
import { startKernelFeatures } from '../net/kernel-features.ts';
import { startLinkAdmin } from '../net/link-admin.ts';
import { startVirtualLinks, type VirtualLinks } from '../net/virtual-links.ts';
import { startResolver } from '../net/resolver.ts';
import { startInterfaceControl } from '../net/interface-control.ts';
import { startInterfaceProtocols } from '../net/protocols.ts';
import { startProbes } from '../net/probes.ts';
import {
  generationRootsOf,
  limenPathsRecord,
  resolvePaths,
  type DaemonPaths,
  type PathOptions,
} from './paths.ts';
import { createDaemonLog, type DaemonLog, type LogFormat } from './log.ts';
import { startSiteRootCheck, type SiteRootCheck } from './site-roots.ts';
import { prepareStart } from './startup.ts';
import { startFailureCollector, type FailureCollector } from './failures.ts';
import { startSystemdNotify } from './sd-notify.ts';
import { startWatchdog } from './watchdog.ts';
import { Planner } from './plan.ts';
import {
  GenerationStore,
  TrialManager,
  describeOutcome,
  countStart,
  readMaintenance,
  recoverInterruptedTrial,
  requiredServices,
  writeMaintenance,
  writeStartAttempts,
  startGenerationRecorder,
  type GenerationRecorder,
  type Outcome,
  GenerationError,
} from '../safety/index.ts';
import type { GenerationsProvider } from '../control/index.ts';

export interface DaemonOptions extends PathOptions {
  readonly logFormat?: LogFormat;
  readonly logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** False: start no network driver (a service manager only; tests that must not touch the host). */
  readonly network?: boolean;
  /** Where log lines go (default: stderr). */
  readonly write?: (line: string) => void;
  /** `off`: track services by recorded process groups, not cgroups (docs/running.md). */
  readonly cgroup?: 'auto' | 'off';
  /**
   * The group (a name or a gid) whose members may use the web endpoint, RUN/web/control.sock
   * (docs/control-protocol.md); absent: there is none.
   */
  readonly webGroup?: string | undefined;
}

/** A running daemon: what the CLI's `limen daemon` and the tests hold on to. */
export interface Daemon {
  readonly paths: DaemonPaths;
  readonly engine: Engine;
  readonly config: Dataspace;
  readonly machine: Dataspace;
  readonly log: Dataspace;
  readonly supervisor: Supervisor;
  readonly services: ServiceManager;
  readonly logger: DaemonLog;
  readonly control: ControlServer;
  /** The web endpoint, when --web-group was given. */
  readonly webControl: ControlServer | undefined;
  /** The configuration generations (docs/safe-change.md). */
  readonly generations: GenerationRecorder;
  /** Rescans every configuration directory (SIGHUP). */
  rescan(): Promise<void>;
  /** Stops every service in reverse dependency order, then everything else. Idempotent. */
  shutdown(reason: string): Promise<void>;
  /** Resolves once shutdown has finished. */
  readonly stopped: Promise<void>;
}

/** Text for logs: embedded refs shown as `#:<dataspace config>`, not by identity. */
function show(v: Value): string {
  return stringify(presentable(v));
}

function logFieldsOf(v: Value): { [k: string]: string } {
  const d = peel(v);
  const out: { [k: string]: string } = {};
  if (!(d instanceof Dict)) return { detail: show(v) };
  for (const [k, x] of d) {
    const key = peel(k);
    const val = peel(x);
    out[key instanceof Sym ? key.name : stringify(key)] =
      typeof val === 'string' ? val : stringify(val);
  }
  return out;
}

/** Routes `$log` messages and service states to the daemon's own log (failures: failures.ts). */
function mirrorToLog(
  root: Facet,
  d: { config: Dataspace; log: Dataspace },
  logger: DaemonLog,
): void {
  // Every $log message, once: service output as 'output', anything else (the
  // supervisor's events, which it reports only there, and scripts' own messages) at
  // its level.
  root.observe(d.log.ref, P.rec('log', P._, P.bind('fields')), {
    onMessage: (_v, c) => {
      const fields = logFieldsOf(c.get('fields')!);
      if ('line' in fields) {
        logger.info('output', fields);
        return;
      }
      const level = fields['level'];
      const message = fields['message'] ?? '';
      delete fields['level'];
      delete fields['message'];
      logger.log(
        level === 'error' || level === 'warn' || level === 'debug' ? level : 'info',
        message,
        fields,
      );
    },
  });
  root.observe(d.config.ref, P.rec('service-state', P.bind('service'), P.bind('state')), {
    onAdd: (_v, c) =>
      logger.info('service state', {
        service: show(c.get('service')!),
        state: show(c.get('state')!),
      }),
  });
}

/**
 * Resolves once the configuration is loaded: the core milestone is up and every
 * configuration loader required by then (the services layer's, the site's) has read
 * its files. While one has not, it waits.
 */
function configurationLoaded(
  root: Facet,
  config: Dataspace,
  services: ServiceManager,
  coreUp: Promise<void>,
): Promise<void> {
  const loading = () => services.required().some((s) => isLoader(s) && !services.hasState(s));
  return new Promise((resolve) => {
    let check = (): void => {};
    // A loader's first state means it has read its files: look again then.
    const watch = root.spawn((f) => {
      f.observe(config.ref, P.rec('service-state', P.rec('config-watcher'), P._), {
        onAdd: () => check(),
      });
    }, 'daemon: configuration loaded');
    void coreUp.then(() => {
      check = () =>
        void services.settled().then(() => {
          if (!watch.isAlive || loading()) return;
          watch.turn(() => watch.stop());
          resolve();
        });
      check();
    });
  });
}

/** What a start finds on disk, with the state directory locked. */
interface OpenedState {
  readonly started: Awaited<ReturnType<typeof prepareStart>>;
  readonly tracking: Awaited<ReturnType<typeof openProcessTracking>>;
  readonly generationStore: GenerationStore;
  /** Why maintenance mode is on, if it is (as left, or entered now). */
  readonly maintenanceReason: string | undefined;
}

/**
 * Locks the state, stops what a predecessor left running, rolls an interrupted trial
 * back and reads maintenance mode: everything before the configuration loads.
 */
async function openState(
  paths: DaemonPaths,
  opts: DaemonOptions,
  logger: DaemonLog,
): Promise<OpenedState> {
  // The state lock, every directory, stale temporaries, the control socket: before
  // anything starts, so that a refused start (another daemon) starts nothing.
  const started = await prepareStart(paths, {
    explicitSiteRoots: opts.configDirs ?? [],
    network: opts.network !== false,
  });
  for (const path of started.removed) logger.info('removed a stale temporary', { path });
  // What a predecessor killed by SIGKILL left running is stopped before anything
  // starts (a service holding a port would fail to start again). This must come
  // after the state directory is locked: it stops whatever runs for this root.
  const tracking = await openProcessTracking({
    stateDir: await realpath(paths.stateDir),
    runDir: paths.runDir,
    mode: opts.cgroup ?? 'auto',
  });
  const reclaimed = await tracking.reclaim();
  if (reclaimed.processes > 0 || reclaimed.problems.length > 0) {
    logger.warn('stopped processes a previous daemon left', {
      processes: reclaimed.processes,
      killed: reclaimed.killed,
      where: tracking.location,
      ...(reclaimed.problems.length > 0 ? { problems: reclaimed.problems.join('; ') } : {}),
    });
  }
  // A trial the previous daemon left unconfirmed is rolled back before anything
  // loads the site configuration (docs/safe-change.md).
  const generationStore = await GenerationStore.open(paths.generationsDir);
  await recoverInterruptedTrial(generationStore, logger);
  // Maintenance mode, as left, or entered now after three starts that failed.
  let maintenanceReason = await readMaintenance(paths.stateDir);
  const bootLoop = await countStart(paths.stateDir);
  if (maintenanceReason === undefined && bootLoop !== undefined) {
    maintenanceReason = bootLoop;
    await writeMaintenance(paths.stateDir, bootLoop);
    logger.error('entering maintenance mode: only the recovery bundle runs', { reason: bootLoop });
  }
  return { started, tracking, generationStore, maintenanceReason };
}

/** The network drivers that shutdown stops first (their kernel state stays). */
interface NetworkDrivers {
  readonly monitor: InterfaceMonitor;
  readonly reconciler: AddressRouteReconciler;
  readonly sysctl: SysctlDriver;
  readonly firewall: Firewall;
  readonly links: VirtualLinks;
}

/** The network drivers: each reads and writes assertions, none imports another. */
function startNetwork(
  root: Facet,
  d: { config: Dataspace; machine: Dataspace; log: Dataspace },
  o: { paths: DaemonPaths; services: ServiceManager; resolvConf: string },
): NetworkDrivers {
  const config = d.config.ref;
  const machine = d.machine.ref;
  const monitor = startInterfaceMonitor(root, { machine });
  let markBootLoaded!: () => void;
  const bootLoaded = new Promise<void>((r) => (markBootLoaded = r));
  root.observe(
    config,
    P.rec('service-state', P.rec('milestone', P.lit(sym('core'))), P.lit(sym('up'))),
    { onAdd: () => markBootLoaded() },
  );
  // Leftovers of a previous run (addresses, routes, the firewall table) are cleaned
  // up only once the whole configuration has loaded (core milestone up, every
  // layer's files read), so nothing still wanted is deleted and re-added.
  const loaded = configurationLoaded(root, d.config, o.services, bootLoaded);
  const reconciler = startAddressRouteReconciler(root, { config, settled: loaded });
  const sysctl = startSysctl(root, { config, machine });
  startLinkAdmin(root, { config, machine });
  startKernelFeatures(root, { config, machine });
  // VLAN and WireGuard links; the ones an earlier run left and no file asks for any
  // more are deleted once the configuration has loaded.
  const links = startVirtualLinks(root, { config, machine, settled: loaded });
  startInterfaceProtocols(root, { config, machine, log: d.log.ref });
  startResolver(root, { config, path: o.resolvConf });
  startLanDhcp(root, { config, machine, runDir: o.paths.runDir });
  startLanClients(root, { config, machine });
  startLanIpv6(root, { config, stateDir: o.paths.stateDir });
  // A table left by an earlier run is kept until the whole configuration (services
  // layer included) has loaded without a zone, so a restart never opens the router.
  const firewall = startFirewall(root, {
    config,
    rulesetFile: join(o.paths.runDir, 'firewall.nft'),
    settled: loaded,
  });
  return { monitor, reconciler, sysctl, firewall, links };
}

/** Every driver the daemon starts in its first turn. */
interface Drivers {
  readonly failures: FailureCollector;
  readonly supervisor: Supervisor;
  readonly services: ServiceManager;
  readonly nested: ReturnType<typeof startConfigWatcherService>;
  readonly boot: ConfigWatcher;
  readonly siteRoots: SiteRootCheck;
  readonly network: NetworkDrivers | undefined;
}

/** Starts every driver and loads the boot layer (in a turn of the engine). */
function startDrivers(
  root: Facet,
  d: { config: Dataspace; machine: Dataspace; log: Dataspace },
  o: { paths: DaemonPaths; opts: DaemonOptions; state: OpenedState; logger: DaemonLog },
): Drivers {
  const { paths } = o;
  const config = d.config.ref;
  mirrorToLog(root, d, o.logger);
  const failures = startFailureCollector(root, { config, logger: o.logger });
  const supervisor = startSupervisor(root, {
    config,
    log: d.log.ref,
    runDir: paths.runDir,
    tracking: o.state.tracking,
  });
  const services = startServiceManager(root, { config });
  startProbes(root, { config });
  // Opens nothing unless a site asserts <watchdog …> (docs/running.md).
  startWatchdog(root, { config });
  const nested = startConfigWatcherService(root, config);
  const network =
    o.opts.network === false
      ? undefined
      : startNetwork(root, d, { paths, services, resolvConf: o.state.started.resolvConf });
  root.assert(config, limenPathsRecord(paths));
  startWebDashboardSupport(
    root,
    config,
    o.opts.webGroup === undefined ? undefined : { socket: paths.webSocket, group: o.opts.webGroup },
  );
  for (const dir of paths.siteConfigDirs) root.assert(config, record('site-config-dir', dir));
  const siteRoots = startSiteRootCheck(root, { config, roots: paths.siteConfigDirs });
  const boot = new ConfigWatcher(root, {
    path: join(paths.shippedConfigDir, 'boot'),
    env: bindingsOf({ config, machine: d.machine.ref, log: d.log.ref }),
    serviceName: record('boot-layer', paths.shippedConfigDir),
  });
  return { failures, supervisor, services, nested, boot, siteRoots, network };
}

/**
 * Maintenance mode as the control server turns it on and off: durable in the state
 * directory, `<maintenance REASON>` in $config while on.
 */
class Maintenance {
  reason: string | undefined;
  #handle: Handle | undefined;
  readonly #o: { stateDir: string; root: Facet; config: Dataspace; logger: DaemonLog };

  constructor(
    reason: string | undefined,
    o: { stateDir: string; root: Facet; config: Dataspace; logger: DaemonLog },
  ) {
    this.#o = o;
    this.reason = reason;
    o.root.engine.turn(() => this.#assert());
  }

  #assert(): void {
    const { root, config } = this.#o;
    if (this.#handle !== undefined) root.retract(this.#handle);
    this.#handle =
      this.reason === undefined
        ? undefined
        : root.assert(config.ref, record('maintenance', this.reason));
  }

  async set(on: boolean): Promise<string | undefined> {
    const { stateDir, root, logger } = this.#o;
    const reason = on ? (this.reason ?? 'limen maintenance on') : undefined;
    await writeMaintenance(stateDir, reason);
    if (!on) await writeStartAttempts(stateDir, 0);
    this.reason = reason;
    root.engine.turn(() => this.#assert());
    logger.warn(
      on ? 'maintenance mode on: only the recovery bundle runs' : 'maintenance mode off',
      reason === undefined ? {} : { reason },
    );
    return reason;
  }
}

/** A start counts as good once every required service is up (outside maintenance). */
function countGoodStart(
  config: Dataspace,
  stateDir: string,
  maintenance: Maintenance,
  logger: DaemonLog,
): NodeJS.Timeout {
  const timer = setInterval(() => {
    if (maintenance.reason !== undefined) return;
    const r = requiredServices(config);
    if (r.failed !== undefined || r.waiting.length > 0) return;
    clearInterval(timer);
    void writeStartAttempts(stateDir, 0).catch((e: Error) =>
      logger.warn('cannot reset the start counter', { error: e.message }),
    );
  }, 1000);
  timer.unref();
  return timer;
}

export async function startDaemon(opts: DaemonOptions = {}): Promise<Daemon> {
  const paths = resolvePaths(opts);
  const logger = createDaemonLog(
    opts.logFormat ?? 'text',
    opts.write ?? ((line) => void process.stderr.write(line)),
    () => new Date(),
    opts.logLevel ?? 'info',
  );
  // A group that does not exist is refused before anything starts.
  const webGid = opts.webGroup === undefined ? undefined : await resolveWebGroup(opts.webGroup);
  if (webGid !== undefined) checkSocketPath(paths.webSocket);
  const state = await openState(paths, opts, logger);
  const engine = new Engine({ logger });
  const config = new Dataspace(engine, 'config');
  const machine = new Dataspace(engine, 'machine');
  const log = new Dataspace(engine, 'log');
  const root = engine.root;
  const maintenance = new Maintenance(state.maintenanceReason, {
    stateDir: paths.stateDir,
    root,
    config,
    logger,
  });
  let drivers!: Drivers;
  engine.turn(() => {
    drivers = startDrivers(root, { config, machine, log }, { paths, opts, state, logger });
  });
  await engine.sync();
  // The site configuration: /etc/limen or the --config roots, not /run/limen/etc
  // (written at run time, not by the operator).
  const generationRoots = generationRootsOf(paths);
  // Every configuration that runs is a generation (docs/safe-change.md).
  const generations = await startGenerationRecorder({
    store: state.generationStore,
    roots: generationRoots,
    logger,
  });
  const trials = new TrialManager({
    store: state.generationStore,
    recorder: generations,
    roots: generationRoots,
    config,
    failures: () => drivers.failures.current().map((f) => f.text),
    rerunProbes: () => engine.turn(() => root.send(config.ref, record('probes-rerun'))),
    logger,
  });
  const goodStart = countGoodStart(config, paths.stateDir, maintenance, logger);
  const planner = new Planner({
    paths,
    config,
    machine,
    logger,
    network: opts.network !== false,
    store: state.generationStore,
    roots: generationRoots,
    maintenance: () => maintenance.reason,
  });
  const startedAt = Date.now();
  const controlOptions: ControlServerOptions = {
    socketPath: paths.socket,
    listening: state.started.listening,
    facet: root,
    dataspaces: { config: config.ref, machine: machine.ref, log: log.ref },
    services: serviceView(drivers.supervisor),
    ...(drivers.network === undefined
      ? {}
      : {
          interfaces: startInterfaceControl({
            facet: root,
            config: config.ref,
            machine: machine.ref,
            linksKnown: drivers.network.monitor.ready,
          }),
        }),
    settings: new SettingsDirectory(paths.userSettingsDir),
    generations: generationsProvider(
      generations,
      trials,
      planner,
      state.generationStore,
      generationRoots,
    ),
    maintenance: {
      reason: () => maintenance.reason,
      set: (on) => maintenance.set(on),
    },
    status: async () =>
      daemonStatus({
        version: VERSION,
        startedAt,
        config,
        supervisor: drivers.supervisor,
        socket: paths.socket,
        processTracking: state.tracking.describe(),
        failures: () => drivers.failures.current(),
        configuration: describeConfiguration(await generations.list(), trials),
        maintenance: maintenance.reason,
        trial: trials.running,
      }),
    webPasswords: new WebPasswords({ file: paths.webPasswordFile, logger }),
    // Shared with the web endpoint: its `stop` undoes a `start` made with the CLI.
    required: new ValueMap<Handle>(),
    logger,
  };
  const control = await startControlServer(controlOptions);
  let webControl: ControlServer | undefined;
  if (webGid !== undefined) {
    webControl = await (async () => {
      // Its own directory, root:GROUP 0750, so that only the group reaches the socket.
      await prepareGroupDirectory(dirname(paths.webSocket), webGid);
      return startControlServer({
        ...controlOptions,
        socketPath: paths.webSocket,
        listening: undefined,
        socketAccess: { gid: webGid },
        endpoint: WEB_POLICY,
      });
    })().catch((e: unknown) => {
      // A failure stops only its owner: the router runs on without its web endpoint.
      logger.error(`the web endpoint could not start: ${(e as Error).message}`, {
        socket: paths.webSocket,
      });
      return undefined;
    });
  }
  // Under systemd (Type=notify): READY=1 now, WATCHDOG=1 from the event loop.
  const systemd = startSystemdNotify(process.env, logger);
  systemd.ready();
  logger.info('limen daemon started', {
    pid: process.pid,
    run: paths.runDir,
    state: paths.stateDir,
    sites: paths.siteConfigDirs.join(','),
    socket: paths.socket,
    processes: state.tracking.describe(),
  });
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  const shutdown = shutdownSequence({
    engine,
    drivers,
    control,
    webControl,
    trials,
    generations,
    state,
    systemd,
    logger,
    network: opts.network !== false,
    goodStart,
    done: resolveStopped,
  });
  return {
    paths,
    engine,
    config,
    machine,
    log,
    supervisor: drivers.supervisor,
    services: drivers.services,
    logger,
    control,
    webControl,
    stopped,
    generations,
    async rescan() {
      logger.info('rescanning configuration');
      const { boot, nested, siteRoots } = drivers;
      await Promise.all([boot.rescan(), nested.rescan(), siteRoots.rescan()]);
    },
    shutdown,
  };
}

/**
 * The daemon's shutdown, once however often it is asked for: services stop in reverse
 * dependency order, then everything else, and the process table is clean before it
 * resolves.
 */
function shutdownSequence(o: {
  engine: Engine;
  drivers: Drivers;
  control: ControlServer;
  webControl: ControlServer | undefined;
  trials: TrialManager;
  generations: GenerationRecorder;
  state: OpenedState;
  systemd: ReturnType<typeof startSystemdNotify>;
  logger: DaemonLog;
  network: boolean;
  goodStart: NodeJS.Timeout;
  done: () => void;
}): (reason: string) => Promise<void> {
  let stopping: Promise<void> | undefined;
  const { engine, drivers, logger } = o;
  const run = async (reason: string) => {
    logger.info('shutting down', { reason });
    o.systemd.stopping();
    // Drivers and services going away withdraw their failures: that is no fix.
    engine.turn(() => drivers.failures.stop());
    // Kernel state stays as it is across a restart (no traffic dropped): stop the
    // reconciler, sysctl, firewall and link drivers first, before services stop and
    // their outputs (DHCP leases) and configuration are retracted, which would delete
    // addresses, restore sysctls, remove the firewall's table and delete links.
    const net = drivers.network;
    engine.turn(() => {
      net?.links.stop();
      net?.reconciler.stop();
      net?.sysctl.stop();
      net?.firewall.stop();
      net?.monitor.stop();
    });
    await net?.reconciler.closed;
    await net?.firewall.closed;
    await net?.links.closed;
    await drivers.services.shutdown((wave) =>
      logger.info('stopping', { services: wave.map((s) => show(s)).join(' ') }),
    );
    await drivers.supervisor.whenIdle();
    await Promise.all([o.control.close(), o.webControl?.close()]);
    o.trials.close();
    o.generations.close();
    await o.generations.idle();
    engine.turn(() => engine.root.stop());
    await drivers.supervisor.closed;
    await o.state.tracking.close();
    if (o.network) await netlinkHelpersExited();
    await engine.sync();
    o.systemd.close();
    clearInterval(o.goodStart);
    o.state.started.lock.release();
    logger.info('stopped');
    o.done();
  };
  return (reason) => (stopping ??= run(reason));
}

/** `limen status`'s configuration line: the generation running, a trial, the last rollback. */
function describeConfiguration(
  list: readonly { number: number; outcome: Outcome; current: boolean }[],
  trials: TrialManager,
): string {
  const current = list.find((g) => g.current);
  if (current === undefined) return 'no generation recorded';
  const trial = trials.running;
  let text =
    trial !== undefined && trial.generation === current.number
      ? `generation ${current.number} ON TRIAL until ${new Date(trial.deadline).toISOString()} (rolled back to ${trial.previous} unless confirmed)`
      : `generation ${current.number} (${describeOutcome(current.outcome)})`;
  const newest = list.at(-1);
  if (newest !== undefined && newest.outcome.kind === 'rolled-back')
    text += `; generation ${newest.number} ${describeOutcome(newest.outcome)}`;
  return text;
}

/** The control server's view of the generations (control never imports the safety layer). */
function generationsProvider(
  recorder: GenerationRecorder,
  trials: TrialManager,
  planner: Planner,
  store: GenerationStore,
  roots: readonly string[],
): GenerationsProvider {
  return {
    plan: (request) => planner.plan(request),
    async list() {
      return (await recorder.list()).map((g) => ({
        number: g.number,
        time: g.time,
        message: g.message,
        who: g.who,
        parent: g.parent,
        checksum: g.checksum,
        outcome: describeOutcome(g.outcome),
        current: g.current,
        lastConfirmed: g.lastConfirmed,
      }));
    },
    async rollback(to) {
      const why = to === undefined ? 'limen rollback' : `limen rollback ${to}`;
      // During a trial, a plain rollback ends it; to a given generation, after it.
      const ended = await trials.rollBack(why);
      if (ended !== undefined && to === undefined) {
        return {
          from: ended.generation,
          to: ended.previous,
          written: ended.written,
          removed: ended.removed,
        };
      }
      return recorder.rollback(to, why);
    },
    try: (request) => trials.start(request),
    confirm: (token) => trials.confirm(token),
    files: (n) =>
      recorder.exclusive(async () => {
        const number = n ?? store.current;
        if (number === undefined) throw new GenerationError('no generation is recorded yet');
        const g = await store.read(number);
        return { generation: number, files: g.files.get(roots[0] ?? '') ?? new Map() };
      }),
  };
}
