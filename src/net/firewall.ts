// The firewall driver: turns the firewall vocabulary in $config into limen's
// nftables table and keeps it current. Changes are debounced (a burst of zone
// changes is one apply); each ruleset is checked with `nft -c` and then applied
// in one `nft -f` transaction that deletes and re-creates the table, so the
// kernel always holds a whole ruleset and never none in between.
//
// Invariants: only `table inet limen` is ever created, replaced or deleted;
// a ruleset that fails validation or nft's check leaves the previous one in
// place and is reported as `<firewall-error MESSAGE>`; `<firewall-applied REV
// {hash: H}>` is asserted exactly while a table applied by this run (revision
// REV, text hash H) is installed; with no zone at all limen installs nothing (a
// machine without a firewall configuration is left alone).
//
// Kernel state outlives the driver, as addresses and routes do: stopping (daemon
// shutdown) leaves the table as it is, so the router stays closed and NATed while
// limen restarts, and the next start replaces it with its first apply. Only the
// retraction of the last zone while running removes the table. A table left by an
// earlier run while the configuration now has no zone is removed once the
// configuration has settled (`settled`, or `leftoverGraceMs` after the start)
// with still no zone; before that, a zone that appears simply replaces it.

import { createHash } from 'node:crypto';
import {
  type Driver,
  type DriverLog,
  driverLog,
  declareFailures,
  anyRecord,
  P,
  type Facet,
  type Handle,
  type Ref,
} from '../dataspace/index.ts';
import { ValueMap, dict, record, type Value } from '../preserves/index.ts';
import { writeFileAtomic } from '../platform/atomic-file.ts';
import { NftRunner } from './nft-command.ts';
import { ReconcileLoop } from './reconcile-loop.ts';
import {
  FIREWALL_FAMILY,
  FIREWALL_LABELS,
  FIREWALL_TABLE,
  NftError,
  readFirewall,
  renderRemoval,
  renderRuleset,
} from './nft-ruleset.ts';

export interface FirewallOptions {
  readonly config: Ref;
  /** The nft program; default 'nft'. */
  readonly nft?: string;
  /** Prepended to every nft command line, e.g. ['ip', 'netns', 'exec', 'NS'] in tests. */
  readonly commandPrefix?: readonly string[];
  /** How long changes are collected before an apply (ms); default 5. */
  readonly debounceMs?: number;
  /** Limit for one nft run (ms); default 10 000. */
  readonly timeoutMs?: number;
  /** If given, the last applied script is written here (atomically) for people to read. */
  readonly rulesetFile?: string;
  /**
   * A table left by an earlier run is removed, if no zone is configured, only once this
   * resolves (the daemon passes "the configuration is loaded"); without it,
   * `leftoverGraceMs` after the start. A zone configured before then replaces it instead.
   */
  readonly settled?: Promise<void>;
  /** Default 10000. */
  readonly leftoverGraceMs?: number;
}

export interface AppliedRuleset {
  readonly revision: number;
  /** SHA-256 of the script, hex. */
  readonly hash: string;
  readonly text: string;
}

export interface Firewall extends Driver {
  /** Resolves once the facet stopped and no nft run is in flight; the table stays as it is. */
  readonly closed: Promise<void>;
  /** What is installed now, if anything. */
  current(): AppliedRuleset | undefined;
  /** Resolves when no change is waiting or being applied. */
  whenIdle(): Promise<void>;
}

/** Starts the firewall driver in a child facet of `parent`. */
export function startFirewall(parent: Facet, options: FirewallOptions): Firewall {
  return new FirewallImpl(parent, options);
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

class FirewallImpl implements Firewall {
  readonly facet: Facet;
  readonly closed: Promise<void>;
  readonly #config: Ref;
  readonly #runner: NftRunner;
  readonly #loop: ReconcileLoop;
  #log!: DriverLog;
  readonly #rulesetFile: string | undefined;
  /** Every firewall assertion in $config, with its count. */
  readonly #inputs = new ValueMap<number>();
  #current: AppliedRuleset | undefined;
  #revision = 0;
  /** The hash of the last script nft refused (not retried until the inputs change). */
  #refusedHash: string | undefined;
  /** True once this run may have installed limen's table (so retracting every zone removes it). */
  #touched = false;
  /** An earlier run's table may be installed: true until this run applies or has looked. */
  #leftover = true;
  /** True once the configuration has settled: a leftover with no zone may then go. */
  #settled = false;
  #appliedHandle: Handle | undefined;
  readonly #errors = new Map<string, Handle>();
  readonly #warnings = new Map<string, Handle>();

  constructor(parent: Facet, o: FirewallOptions) {
    this.#config = o.config;
    this.#runner = new NftRunner({
      ...(o.nft !== undefined ? { nft: o.nft } : {}),
      ...(o.commandPrefix !== undefined ? { commandPrefix: o.commandPrefix } : {}),
      ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
    });
    this.#loop = new ReconcileLoop({
      pass: () => this.#applyOnce(),
      debounceMs: o.debounceMs ?? 5,
      onError: (e) => this.#bug(e),
    });
    this.#rulesetFile = o.rulesetFile;
    let stopped!: () => void;
    const whenStopped = new Promise<void>((r) => (stopped = r));
    this.closed = whenStopped.then(() => this.#finishOnStop());
    this.facet = parent.spawn((f) => {
      // So that `limen status` and the log find them (docs/vocabulary.md, "Failures").
      declareFailures(
        f,
        this.#config,
        anyRecord('firewall-error', 1),
        anyRecord('firewall-warning', 1),
      );
      let graceTimer: NodeJS.Timeout | undefined;
      f.onStop(() => {
        clearTimeout(graceTimer);
        void this.#loop.stop();
        stopped();
      });
      const settle = (): void => {
        if (this.#settled || !f.isAlive) return;
        this.#settled = true;
        this.#loop.schedule();
      };
      if (o.settled !== undefined) void o.settled.then(settle, settle);
      else graceTimer = setTimeout(settle, o.leftoverGraceMs ?? 10_000);
      for (const label of FIREWALL_LABELS) {
        f.observe(
          this.#config,
          P.rec(label),
          {
            onAdd: (v) => this.#count(v, +1),
            onRemove: (v) => this.#count(v, -1),
          },
          `firewall: ${label}`,
        );
      }
    }, 'firewall');
    this.#log = driverLog(this.facet, 'firewall');
    if (!this.facet.isAlive) stopped();
  }

  current(): AppliedRuleset | undefined {
    return this.#current;
  }

  whenIdle(): Promise<void> {
    return this.#loop.whenIdle();
  }

  stop(): void {
    this.facet.stop();
  }

  #count(v: Value, delta: number): void {
    const n = (this.#inputs.get(v) ?? 0) + delta;
    if (n > 0) this.#inputs.set(v, n);
    else this.#inputs.delete(v);
    this.#loop.schedule();
  }

  async #applyOnce(): Promise<void> {
    const result = readFirewall(this.#inputs.keys());
    this.#turn(() => this.#setAll(this.#warnings, 'firewall-warning', result.warnings));
    if (!result.ok) {
      this.#log.warn('firewall configuration refused; the previous ruleset stays', {
        problems: result.problems.map((p) => p.message).join('; '),
      });
      this.#errorsAre(result.problems.map((p) => p.message));
      return;
    }
    const signal = this.facet.signal;
    if (result.model.zones.length === 0) {
      // Nothing to protect: take limen's table away if this run installed it, or if
      // an earlier run left it and the configuration has settled without a zone.
      if (this.#touched) {
        if (!(await this.#remove('no zone is configured', signal))) return;
        this.#touched = false;
      } else if (this.#leftover && this.#settled) {
        if (!(await this.#removeLeftover(signal))) return;
      }
      this.#refusedHash = undefined;
      this.#publish(undefined);
      return;
    }
    const text = renderRuleset(result.model);
    const hash = sha256Hex(text);
    if (hash === this.#current?.hash) {
      this.#refusedHash = undefined;
      this.#errorsAre([]);
      return;
    }
    if (hash === this.#refusedHash) return;
    const started = performance.now();
    try {
      await this.#runner.check(text, signal);
      // From here on the table is this run's (or, if nft fails, still the earlier one,
      // which a retraction of every zone would then remove like ours).
      this.#touched = true;
      this.#leftover = false;
      await this.#runner.apply(text, signal);
    } catch (e) {
      if (signal.aborted) return;
      if (!(e instanceof NftError)) throw e;
      this.#refusedHash = hash;
      this.#log.warn('nft refused the firewall ruleset; the previous one stays', {
        error: e.message,
      });
      this.#errorsAre([`nft refused the generated ruleset (the previous one stays): ${e.message}`]);
      return;
    }
    this.#refusedHash = undefined;
    this.#current = { revision: ++this.#revision, hash, text };
    this.#log.info('firewall applied', {
      revision: this.#revision,
      hash: hash.slice(0, 12),
      ms: Math.round(performance.now() - started),
    });
    this.#publish(this.#current);
    if (this.#rulesetFile !== undefined) await this.#writeRulesetFile(this.#rulesetFile, text);
  }

  async #writeRulesetFile(path: string, text: string): Promise<void> {
    try {
      await writeFileAtomic(path, text, { mode: 0o644 });
    } catch (e) {
      this.#log.warn(`cannot write ${path}`, { error: String(e) });
    }
  }

  #turn(fn: () => void): void {
    if (this.facet.isAlive) this.facet.turn(fn);
  }

  /** Replaces firewall-applied and clears the errors, in one turn. */
  #publish(applied: AppliedRuleset | undefined): void {
    this.#turn(() => {
      const v =
        applied === undefined
          ? undefined
          : record('firewall-applied', applied.revision, dict({ hash: applied.hash }));
      this.#appliedHandle = this.facet.replace(this.#appliedHandle, this.#config, v);
      this.#setAll(this.#errors, 'firewall-error', []);
    });
  }

  #errorsAre(messages: readonly string[]): void {
    this.#turn(() => this.#setAll(this.#errors, 'firewall-error', messages));
  }

  /** Makes the asserted `<LABEL MESSAGE>` set equal to `messages` (new ones first). In a turn. */
  #setAll(held: Map<string, Handle>, label: string, messages: readonly string[]): void {
    const want = new Set(messages);
    for (const m of want)
      if (!held.has(m)) held.set(m, this.facet.assert(this.#config, record(label, m)));
    for (const [m, h] of held) {
      if (want.has(m)) continue;
      this.facet.retract(h);
      held.delete(m);
    }
  }

  /** Removes limen's table (present or not); false (and a firewall-error) if nft failed. */
  async #remove(why: string, signal: AbortSignal): Promise<boolean> {
    try {
      await this.#runner.apply(renderRemoval(), signal);
    } catch (e) {
      if (signal.aborted) return false;
      if (!(e instanceof NftError)) throw e;
      this.#errorsAre([`cannot remove table inet limen: ${e.message}`]);
      return false;
    }
    this.#current = undefined;
    this.#log.info(`firewall removed: ${why}`, {});
    return true;
  }

  /**
   * Looks once for a table of an earlier run and removes it. Without nft (a machine
   * with no firewall at all) there is nothing to remove; that is noted, not an error.
   */
  async #removeLeftover(signal: AbortSignal): Promise<boolean> {
    let tables: string;
    try {
      tables = await this.#runner.run(['list', 'tables', FIREWALL_FAMILY], signal);
    } catch (e) {
      if (signal.aborted) return false;
      if (!(e instanceof NftError)) throw e;
      this.#leftover = false;
      this.#log.info('cannot look for a table left by an earlier run', { error: e.message });
      return true;
    }
    const ours = `table ${FIREWALL_FAMILY} ${FIREWALL_TABLE}`;
    if (!tables.split('\n').some((line) => line.trim() === ours)) {
      this.#leftover = false;
      return true;
    }
    if (!(await this.#remove('the table left by an earlier run, as no zone is configured', signal)))
      return false;
    this.#leftover = false;
    return true;
  }

  async #finishOnStop(): Promise<void> {
    // Let an apply in flight finish (its nft was killed by the facet's signal; nft's
    // transaction is all or nothing, so the kernel holds the old table or the new one).
    await this.#loop.stop();
    if (this.#touched)
      this.#log.info('firewall stopped: table inet limen stays until the next start', {});
  }

  #bug(e: unknown): void {
    this.#log.error(`internal error: ${e instanceof Error ? e.message : String(e)}`, {
      error: e,
    });
  }
}
