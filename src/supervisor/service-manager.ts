// The service manager: gives meaning to `<require-service S>`, `<depends-on S
// DEP>` and `<milestone M>` in $config. A required service runs (its
// `<run-service S>` is asserted) exactly while every one of its dependencies
// is asserted (a milestone: from when they first all hold, for as long as it is
// required); a dependency `<service-state D _>` also requires D. Stopping is
// ordered: a dependency stays required until its dependents are down, so a
// subtree and the whole daemon stop in reverse dependency order.
//
// Invariant: this module only asserts `run-service`, `require-service` (for
// dependencies) and milestone states; processes are the supervisor's business.

import {
  Record,
  Sym,
  ValueMap,
  is,
  peel,
  record,
  stringify,
  sym,
  type Value,
} from '../preserves/index.ts';
import { P, during, type Facet, type Handle, type Ref } from '../dataspace/index.ts';

export interface ServiceManagerOptions {
  readonly config: Ref;
  /** How long shutdown waits for one service to go down before moving on (ms). */
  readonly shutdownStepTimeoutMs?: number;
}

interface Required {
  readonly service: Value;
  readonly facet: Facet;
  readonly deps: ValueMap<{ satisfied: boolean }>;
  runHandle: Handle | undefined;
  /** Starts or stops it as its dependencies (and maintenance mode) now say. */
  update(): void;
}

const serviceState = 'service-state';
const ready = sym('ready');

function isServiceState(v: Value): v is Record {
  const r = peel(v);
  return (
    r instanceof Record &&
    r.label instanceof Sym &&
    r.label.name === serviceState &&
    r.fields.length >= 1
  );
}

/** True if service is a record `<LABEL …>`. */
function isKind(service: Value, label: string): boolean {
  const r = peel(service);
  return r instanceof Record && r.label instanceof Sym && r.label.name === label;
}

/** A pseudo-service that marks how far the system has come. */
const isMilestone = (service: Value): boolean => isKind(service, 'milestone');

/** A service that loads configuration (its files declare other services). */
export const isLoader = (service: Value): boolean => isKind(service, 'config-watcher');

export class ServiceManager {
  readonly #facet: Facet;
  readonly #config: Ref;
  readonly #stepTimeoutMs: number;
  /** Services currently required, with their dependency bookkeeping. */
  readonly #required = new ValueMap<Required>();
  /** Services with a `<service-state S _>` assertion, counted by state value. */
  readonly #states = new ValueMap<number>();
  readonly #stateWaiters: (() => void)[] = [];
  #shuttingDown = false;
  /** `<maintenance REASON>` is asserted: only the recovery bundle's daemons run. */
  #maintenance = false;
  /** `<recovery-service S>`, counted. */
  readonly #recovery = new ValueMap<number>();
  readonly #pendingStarts = new Set<Required>();
  #settling = false;

  constructor(facet: Facet, opts: ServiceManagerOptions) {
    this.#facet = facet;
    this.#config = opts.config;
    this.#stepTimeoutMs = opts.shutdownStepTimeoutMs ?? 15_000;
    const config = opts.config;

    facet.observe(
      config,
      P.rec(serviceState, P.bind('s'), P._),
      {
        onAdd: (_v, c) => this.#countState(c.get('s')!, +1),
        onRemove: (_v, c) => this.#countState(c.get('s')!, -1),
      },
      'service-manager: states',
    );

    during(
      facet,
      config,
      P.rec('require-service', P.bind('s')),
      (f, c) => this.#require(f, c.get('s')!),
      'service-manager: require-service',
    );

    // Maintenance mode (docs/safe-change.md): every `<daemon …>` service outside the
    // recovery bundle is held down; loaders, milestones and the bundle run as usual.
    facet.observe(
      config,
      P.rec('maintenance', P._),
      {
        onAdd: () => {
          this.#maintenance = true;
          for (const e of this.#required.values()) e.update();
        },
        onRemove: () => {
          this.#maintenance = false;
          for (const e of this.#required.values()) e.update();
        },
      },
      'service-manager: maintenance',
    );
    facet.observe(
      config,
      P.rec('recovery-service', P.bind('s')),
      {
        onAdd: (_v, c) => {
          const s = c.get('s')!;
          this.#recovery.set(s, (this.#recovery.get(s) ?? 0) + 1);
          this.#required.get(s)?.update();
        },
        onRemove: (_v, c) => {
          const s = c.get('s')!;
          const n = (this.#recovery.get(s) ?? 0) - 1;
          if (n <= 0) this.#recovery.delete(s);
          else this.#recovery.set(s, n);
          this.#required.get(s)?.update();
        },
      },
      'service-manager: recovery-service',
    );

    // Milestones are pseudo-services: ready as soon as they run.
    during(
      facet,
      config,
      P.rec('run-service', P.rec('milestone', P.bind('m'))),
      (f, c) => {
        f.assert(config, record(serviceState, record('milestone', c.get('m')!), ready));
      },
      'service-manager: milestones',
    );
  }

  /** The facet that owns the manager's observers and every service's requirement. */
  get facet(): Facet {
    return this.#facet;
  }

  /** Stops the manager: every `<run-service …>` it asserted is withdrawn at once. */
  stop(): void {
    this.#facet.stop();
  }

  /** Resolves once the engine is quiescent and no start is waiting for it. */
  async settled(): Promise<void> {
    const engine = this.#config.dataspace.engine;
    for (;;) {
      await engine.sync();
      if (!this.#settling && this.#pendingStarts.size === 0 && engine.isQuiescent) return;
    }
  }

  /** True while maintenance mode holds the service down (a daemon outside the bundle). */
  #held(service: Value): boolean {
    return this.#maintenance && isKind(service, 'daemon') && !this.#recovery.has(service);
  }

  /** True while `<service-state S _>` is asserted for the service. */
  hasState(service: Value): boolean {
    return (this.#states.get(service) ?? 0) > 0;
  }

  /** Services that are required now. */
  required(): Value[] {
    return [...this.#required.keys()];
  }

  /** The dependencies declared for a required service (the `DEP` of `<depends-on S DEP>`). */
  dependenciesOf(service: Value): Value[] {
    return [...(this.#required.get(service)?.deps.keys() ?? [])];
  }

  /**
   * Starts a service whose dependencies hold, once the engine is quiescent: the
   * reactions of the turn that satisfied it (which may declare further dependencies,
   * as the core layer does while it loads) have all run by then, so a milestone does
   * not go up early and flap. Stopping is never deferred.
   */
  #startWhenSettled(entry: Required): void {
    this.#pendingStarts.add(entry);
    if (this.#settling) return;
    this.#settling = true;
    const engine = this.#config.dataspace.engine;
    void engine.sync().then(() => {
      if (!this.#facet.isAlive) return;
      engine.turn(() => {
        this.#settling = false;
        const starts = [...this.#pendingStarts];
        this.#pendingStarts.clear();
        for (const e of starts) {
          if (this.#shuttingDown || !e.facet.isAlive || e.runHandle !== undefined) continue;
          if (![...e.deps.values()].every((d) => d.satisfied) || this.#held(e.service)) continue;
          e.runHandle = e.facet.assert(this.#config, record('run-service', e.service));
        }
      }, this.#facet);
    });
  }

  #countState(service: Value, delta: number): void {
    const n = (this.#states.get(service) ?? 0) + delta;
    if (n <= 0) this.#states.delete(service);
    else this.#states.set(service, n);
    if (this.#stateWaiters.length > 0) {
      for (const w of this.#stateWaiters.splice(0)) w();
    }
  }

  #require(f: Facet, service: Value): void {
    const config = this.#config;
    const entry: Required = {
      service,
      facet: f,
      deps: new ValueMap(),
      runHandle: undefined,
      update: () => update(),
    };
    this.#required.set(service, entry);
    // A milestone marks how far the system has come: once up it stays up while it is
    // required, whatever its dependencies do later (a WAN that loses carrier takes
    // udhcpc, and so a dependency of <milestone core>, away: the services layer must
    // not be restarted for that). To follow a condition, depend on the condition.
    const milestone = isMilestone(service);

    const update = () => {
      // During shutdown only shutdown() starts or stops anything, so the order holds.
      if (this.#shuttingDown) return;
      const ready = [...entry.deps.values()].every((d) => d.satisfied) && !this.#held(service);
      if (ready && entry.runHandle === undefined) {
        this.#startWhenSettled(entry);
      } else if (!ready && entry.runHandle !== undefined && !milestone) {
        // (A held daemon goes down like one whose dependency went.)
        f.retract(entry.runHandle);
        entry.runHandle = undefined;
      }
    };

    during(
      f,
      config,
      P.rec('depends-on', P.lit(service), P.bind('dep')),
      (df, c) => {
        const dep = c.get('dep')!;
        const d = { satisfied: false };
        entry.deps.set(dep, d);
        // A dependency on a service's state also requires that service. The requirement
        // outlives this facet until the dependent is down (see #linger), so stopping
        // goes dependents first.
        if (isServiceState(dep)) this.#requireDependency(df, service, peel(dep) as Record);
        df.observe(config, P.lit(dep), {
          onAdd: () => {
            d.satisfied = true;
            update();
          },
          onRemove: () => {
            d.satisfied = false;
            update();
          },
        });
        df.onStop(() => {
          entry.deps.delete(dep);
          update();
        });
        update();
      },
      `service-manager: dependencies of ${stringify(service)}`,
    );

    f.onStop(() => {
      if (this.#required.get(service) === entry) this.#required.delete(service);
    });
    // A service with no dependency known yet is not started at once: the start waits
    // for quiescence (#startWhenSettled), by when the depends-on observer has been
    // handed what exists, and the dependencies are checked again.
    update();
  }

  /** Asserts `<require-service D>` for `dependent`'s dependency, kept until the dependent is down. */
  #requireDependency(df: Facet, dependent: Value, dep: Record): void {
    const depService = dep.fields[0]!;
    let handle: Handle | undefined = df.assert(this.#config, record('require-service', depService));
    df.onStop(() => {
      if (handle === undefined) return;
      handle = undefined;
      // Let go now if the dependent is already down, or is a milestone: it has no process
      // that could need the dependency while it stops, and one that stays up would keep
      // the dependency required until the step timeout.
      if (!this.hasState(dependent) || isMilestone(dependent)) return;
      // Keep requiring the dependency from a lingering facet until the dependent is down.
      this.#facet.spawn(
        (linger) => {
          linger.assert(this.#config, record('require-service', depService));
          linger.observe(this.#config, P.rec(serviceState, P.lit(dependent), P._), {
            onRemove: () => {
              if (!this.hasState(dependent)) linger.stop();
            },
          });
          void this.#waitFor(() => !this.hasState(dependent), this.#stepTimeoutMs).then(() =>
            linger.turn(() => linger.stop()),
          );
        },
        `service-manager: ${stringify(dependent)} still needs ${stringify(depService)}`,
      );
    });
  }

  /** Resolves when pred() holds (re-checked on every state change) or after timeoutMs. */
  #waitFor(pred: () => boolean, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      if (pred()) {
        resolve(true);
        return;
      }
      const timer = setTimeout(() => {
        const i = this.#stateWaiters.indexOf(check);
        if (i >= 0) this.#stateWaiters.splice(i, 1);
        resolve(false);
      }, timeoutMs);
      const check = () => {
        if (pred()) {
          clearTimeout(timer);
          resolve(true);
        } else this.#stateWaiters.push(check);
      };
      this.#stateWaiters.push(check);
    });
  }

  /**
   * Stops every running service in reverse dependency order: services that no running
   * service depends on go first; each wave waits (up to the step timeout) until its
   * services report no state. Nothing is started again afterwards.
   */
  async shutdown(onStep?: (services: Value[]) => void): Promise<void> {
    this.#shuttingDown = true;
    const engine = this.#facet.isAlive ? this.#config.dataspace.engine : undefined;
    if (engine === undefined) return;
    for (;;) {
      await engine.sync();
      const running = [...this.#required.values()].filter(
        (r) => r.runHandle !== undefined || this.hasState(r.service),
      );
      if (running.length === 0) return;
      // A service is a leaf when no other running service depends on it.
      const leaves = running.filter(
        (r) =>
          !running.some(
            (o) =>
              o !== r &&
              [...o.deps.keys()].some(
                (d) => isServiceState(d) && is((peel(d) as Record).fields[0]!, r.service),
              ),
          ),
      );
      // Loaders (config watchers) go last: stopping one retracts what its files declared,
      // which would stop those services out of order.
      const nonLoaders = leaves.filter((r) => !isLoader(r.service));
      const candidates = nonLoaders.length > 0 ? nonLoaders : leaves;
      const rest = running.filter((r) => !isLoader(r.service));
      const wave = candidates.length > 0 ? candidates : rest.length > 0 ? rest : running; // a cycle: stop the rest together
      onStep?.(wave.map((r) => r.service));
      engine.turn(() => {
        for (const r of wave) {
          if (r.runHandle !== undefined && r.facet.isAlive) {
            r.facet.retract(r.runHandle);
            r.runHandle = undefined;
          }
        }
      }, this.#facet);
      await engine.sync();
      await this.#waitFor(() => wave.every((r) => !this.hasState(r.service)), this.#stepTimeoutMs);
      // Whatever did not go down in time is not waited for again.
      for (const r of wave) if (this.hasState(r.service)) this.#states.delete(r.service);
    }
  }
}

/** Starts the service manager in a child facet of `parent` (src/dataspace/driver.ts). */
export function startServiceManager(parent: Facet, opts: ServiceManagerOptions): ServiceManager {
  let manager!: ServiceManager;
  parent.spawn((f) => {
    manager = new ServiceManager(f, opts);
  }, 'service-manager');
  return manager;
}
