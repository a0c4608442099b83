// The virtual-links driver: makes the kernel hold the links that $config asks for,
// `<vlan NAME {parent id}>` (vlan.ts) and `<wireguard NAME {…}>` (wireguard.ts),
// and deletes them when the assertion is retracted. A created link is an interface
// like any other: `<configure-interface NAME <dhcp>>` configures it, a firewall zone
// lists it; a WireGuard link's addresses and allowed-IP routes go through the
// provider contract. It reports `<link-state NAME KIND created|waiting|failed
// DETAIL>` and, for each problem, `<vlan-error NAME M>` / `<wireguard-error NAME M>`.
//
// Invariants: one pass at a time per name (reconcile-loop.ts), run again when the
// spec, the link, its parent or the kernel's features change. A link is created
// only when the kernel has the feature (`<kernel-feature vlan present>`, from
// kernel-features.ts) and, for a VLAN, when its parent exists. limen marks what it
// creates (ip-link.ts, LINK_MARK) and deletes only marked links: a link of that
// name that limen did not make is reported and left alone. Like addresses and
// routes, links outlive the daemon (a restart drops no traffic): stopping the
// driver deletes nothing, a restarted daemon adopts its marked links, and once the
// configuration has settled it deletes the marked links no longer asked for.

import {
  P,
  anyRecord,
  declareFailures,
  driverLog,
  during,
  type Driver,
  type DriverLog,
  type Facet,
  type Handle,
  type Ref,
} from '../dataspace/index.ts';
import { closeSync } from 'node:fs';
import { Sym, ValueMap, is, peel, record, sym, type Value } from '../preserves/index.ts';
import { ReconcileLoop } from './reconcile-loop.ts';
import { LINK_MARK, LinkCommands, type LinkCommandOptions, type LinkFacts } from './ip-link.ts';
import { readVlan, vlanAddArgs, type VlanSpec } from './vlan.ts';
import {
  openWireguardSecrets,
  readWireguard,
  wgSetArgs,
  wireguardProvided,
  type WireguardSpec,
} from './wireguard.ts';
import type { ReadLink } from './link-record.ts';

export type LinkSpec = VlanSpec | WireguardSpec;
type Kind = LinkSpec['kind'];
const KINDS: readonly Kind[] = ['vlan', 'wireguard'];
const READERS: { readonly [K in Kind]: (v: Value) => ReadLink<LinkSpec> } = {
  vlan: readVlan,
  wireguard: readWireguard,
};

export interface VirtualLinksOptions extends LinkCommandOptions {
  readonly config: Ref;
  readonly machine: Ref;
  /** Resolves once the configuration has loaded: marked links not asked for are deleted then. */
  readonly settled?: Promise<void>;
  /** The owner key files must have (default root). */
  readonly keyOwner?: number;
}

export interface VirtualLinks extends Driver {
  /** Resolves when no pass is waiting or running. */
  whenIdle(): Promise<void>;
  /** Resolves once the passes in flight at stop are over. */
  readonly closed: Promise<void>;
}

/** A problem the pass reports as the kind's error (no stack, no retry until a change). */
class LinkProblem extends Error {}

interface Wanted {
  readonly value: Value;
  readonly spec: LinkSpec;
}

interface NameState {
  readonly name: string;
  /** Valid specs for this name in order of arrival; the first is in force. */
  readonly wanted: Wanted[];
  readonly loop: ReconcileLoop;
  state: Handle | undefined;
  failure: Handle | undefined;
  conflict: Handle | undefined;
  provided: Handle[];
  /** The link index and spec that `wg set` last applied. */
  configured: { index: number; value: Value } | undefined;
}

/** Whether the existing link is the one the spec describes. */
export function linkMatches(spec: LinkSpec, link: LinkFacts): boolean {
  if (spec.kind === 'vlan')
    return link.kind === 'vlan' && link.parent === spec.parent && link.vlanId === spec.id;
  return link.kind === 'wireguard';
}

/** `ip` arguments that create the link (it is marked after). */
export function linkAddArgs(spec: LinkSpec): string[] {
  return spec.kind === 'vlan'
    ? vlanAddArgs(spec)
    : ['link', 'add', 'dev', spec.name, 'type', 'wireguard'];
}

/** Starts the driver in a child facet of `parent`. */
export function startVirtualLinks(parent: Facet, o: VirtualLinksOptions): VirtualLinks {
  return new VirtualLinksDriver(parent, o);
}

class VirtualLinksDriver implements VirtualLinks {
  readonly facet: Facet;
  readonly #o: VirtualLinksOptions;
  readonly #cmd: LinkCommands;
  #log!: DriverLog;
  readonly #names = new Map<string, NameState>();
  /** Each invalid spec's `<KIND-error …>`. */
  readonly #invalid = new ValueMap<Handle>();
  /** The name of each valid spec. */
  readonly #nameOf = new ValueMap<string>();
  readonly #features = new Set<string>();
  readonly #interfaces = new Set<string>();
  #closed: Promise<void> | undefined;
  /**
   * Never aborted: a pass in flight when the driver stops runs to its end (bounded by
   * each command's timeout), since killing `ip` midway could leave an unmarked link.
   */
  readonly #signal = new AbortController().signal;

  constructor(parent: Facet, o: VirtualLinksOptions) {
    this.#o = o;
    this.#cmd = new LinkCommands(o);
    this.facet = parent.spawn((f) => this.#setup(f), 'virtual-links');
  }

  get closed(): Promise<void> {
    return this.#closed ?? Promise.resolve();
  }

  stop(): void {
    void this.#stopLoops();
    this.facet.stop();
  }

  async whenIdle(): Promise<void> {
    for (const s of [...this.#names.values()]) await s.loop.whenIdle();
  }

  #stopLoops(): Promise<void> {
    this.#closed ??= Promise.all([...this.#names.values()].map((s) => s.loop.stop())).then(
      () => undefined,
    );
    return this.#closed;
  }

  #setup(f: Facet): void {
    this.#log = driverLog(f, 'virtual-links');
    // So that `limen status` and the log find them (docs/vocabulary.md, "Failures").
    declareFailures(f, this.#o.config, anyRecord('vlan-error', 2), anyRecord('wireguard-error', 2));
    // Links outlive the driver: stopping it only ends the passes (nothing is deleted).
    f.onStop(() => void this.#stopLoops());
    for (const kind of KINDS)
      f.observe(this.#o.config, P.rec(kind), {
        onAdd: (v) => this.#add(kind, v),
        onRemove: (v) => this.#remove(v),
      });
    this.#followMachine(f);
    void this.#o.settled?.then(() => this.#deleteLeftovers());
  }

  #followMachine(f: Facet): void {
    const m = this.#o.machine;
    during(f, m, P.rec('kernel-feature', P.bind('f'), P.lit(sym('present'))), (g, c) => {
      const feature = peel(c.get('f')!);
      if (!(feature instanceof Sym)) return;
      this.#features.add(feature.name);
      this.#scheduleAll();
      g.onStop(() => this.#features.delete(feature.name));
    });
    during(f, m, P.rec('interface', P.bind('name')), (g, c) => {
      const name = peel(c.get('name')!);
      if (typeof name !== 'string') return;
      this.#interfaces.add(name);
      this.#scheduleFor(name);
      g.onStop(() => {
        this.#interfaces.delete(name);
        this.#scheduleFor(name);
      });
    });
  }

  /** Schedules the pass of NAME and of every VLAN whose parent NAME is. */
  #scheduleFor(name: string): void {
    for (const s of this.#names.values())
      if (s.name === name || s.wanted.some((w) => w.spec.kind === 'vlan' && w.spec.parent === name))
        s.loop.schedule();
  }

  #scheduleAll(): void {
    for (const s of this.#names.values()) s.loop.schedule();
  }

  #add(kind: Kind, value: Value): void {
    const r = READERS[kind](value);
    if (!r.ok) {
      const error = record(`${kind}-error`, r.name, r.problems.join('; '));
      this.#invalid.set(value, this.facet.assert(this.#o.config, error));
      return;
    }
    this.#nameOf.set(value, r.spec.name);
    const s = this.#state(r.spec.name);
    s.wanted.push({ value, spec: r.spec });
    this.#refreshConflict(s);
    s.loop.schedule();
  }

  #remove(value: Value): void {
    const error = this.#invalid.get(value);
    if (error !== undefined) {
      this.facet.retract(error);
      this.#invalid.delete(value);
      return;
    }
    const s = this.#names.get(this.#nameOf.get(value) ?? '');
    if (s === undefined) return;
    this.#nameOf.delete(value);
    s.wanted.splice(
      s.wanted.findIndex((w) => is(w.value, value)),
      1,
    );
    this.#refreshConflict(s);
    s.loop.schedule();
  }

  #state(name: string): NameState {
    let s = this.#names.get(name);
    if (s !== undefined) return s;
    const loop = new ReconcileLoop({
      pass: () => this.#pass(s!),
      onError: (e) => this.#log.error('pass failed', { link: name, error: String(e) }),
    });
    s = {
      name,
      wanted: [],
      loop,
      state: undefined,
      failure: undefined,
      conflict: undefined,
      provided: [],
      configured: undefined,
    };
    this.#names.set(name, s);
    return s;
  }

  /** A second, different spec for one name is an error while it lasts; the first stays in force. */
  #refreshConflict(s: NameState): void {
    if (s.conflict !== undefined) this.facet.retract(s.conflict);
    s.conflict = undefined;
    const [first, ...rest] = s.wanted;
    const other = rest.find((w) => !is(w.value, first!.value));
    if (first === undefined || other === undefined) return;
    const message = `another ${first.spec.kind} spec for ${s.name} is in force; this one is ignored until it goes`;
    s.conflict = this.facet.assert(
      this.#o.config,
      record(`${other.spec.kind}-error`, s.name, message),
    );
  }

  /** One pass for one name: make the kernel match the spec in force (or its absence). */
  async #pass(s: NameState): Promise<void> {
    // A name released and asked for again has a new state: the old one's passes stop.
    if (this.#names.get(s.name) !== s) return;
    const want = s.wanted[0]?.spec;
    const signal = this.#signal;
    try {
      const link = await this.#cmd.show(s.name, signal);
      if (want === undefined) return await this.#release(s, link);
      const waiting = this.#waiting(want);
      if (waiting !== undefined) return this.#report(s, want.kind, 'waiting', waiting);
      if (link !== undefined && link.alias !== LINK_MARK) return this.#foreign(s, want, link);
      if (want.kind === 'wireguard') await this.#wireguard(s, want, link, signal);
      else await this.#ensure(want, link, signal);
      if (link !== undefined && s.state === undefined)
        this.#log.info('adopted a link made by an earlier run', { link: s.name });
      this.#report(s, want.kind, 'created', '');
    } catch (e) {
      if (want === undefined)
        this.#log.warn('could not delete a link', { link: s.name, error: String(e) });
      else this.#report(s, want.kind, 'failed', e instanceof Error ? e.message : String(e));
    }
  }

  /** Why the link cannot be created yet, or undefined. */
  #waiting(spec: LinkSpec): string | undefined {
    if (!this.#features.has(spec.kind))
      return `the kernel has no ${spec.kind === 'vlan' ? '802.1Q VLAN' : 'WireGuard'} support (yet)`;
    if (spec.kind === 'vlan' && !this.#interfaces.has(spec.parent))
      return `parent ${spec.parent} does not exist`;
    return undefined;
  }

  /** The link as the spec wants it: created (and marked), or re-created if it differs. */
  async #ensure(want: LinkSpec, link: LinkFacts | undefined, signal: AbortSignal) {
    if (link !== undefined && linkMatches(want, link)) return link;
    if (link !== undefined) {
      this.#log.info('re-creating a link that differs from its spec', { link: want.name });
      await this.#cmd.ip(['link', 'del', 'dev', want.name], signal);
    }
    await this.#cmd.ip(linkAddArgs(want), signal);
    try {
      await this.#cmd.ip(['link', 'set', 'dev', want.name, 'alias', LINK_MARK], signal);
    } catch (e) {
      // An unmarked link would never be deleted again: take it back now.
      await this.#cmd.ip(['link', 'del', 'dev', want.name], signal).catch(() => undefined);
      throw e;
    }
    this.#log.info('created', { link: want.name, kind: want.kind });
    const created = await this.#cmd.show(want.name, signal);
    if (created === undefined) throw new LinkProblem(`${want.name} vanished as it was created`);
    return created;
  }

  /**
   * A WireGuard link: its key files are checked first (nothing is created with unsafe
   * ones), then the link is created and keyed and peered with `wg set` (once per link
   * and spec), and its provided configuration published.
   */
  async #wireguard(
    s: NameState,
    want: WireguardSpec,
    link: LinkFacts | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    const value = s.wanted[0]!.value;
    const done = s.configured;
    if (link !== undefined && linkMatches(want, link) && done?.index === link.index)
      if (is(done.value, value)) return;
    const opened = openWireguardSecrets(want, this.#o.keyOwner ?? 0);
    if (!opened.ok) throw new LinkProblem(opened.problems.join('; '));
    try {
      const current = await this.#ensure(want, link, signal);
      const present = await this.#cmd.wgPeers(want.name, signal);
      await this.#cmd.wg(wgSetArgs(want, present, opened.secrets), opened.secrets.fds, signal);
      this.facet.turn(() => {
        const old = s.provided;
        s.provided = wireguardProvided(want).map((v) => this.facet.assert(this.#o.config, v));
        for (const h of old) this.facet.retract(h);
        s.configured = { index: current.index, value };
      });
    } finally {
      for (const fd of opened.secrets.fds) closeQuietly(fd);
    }
  }

  #foreign(s: NameState, want: LinkSpec, link: LinkFacts): void {
    const kind = link.kind === undefined ? 'a device' : `a ${link.kind} link`;
    this.#report(
      s,
      want.kind,
      'failed',
      `${s.name} exists (${kind}) and limen did not create it: left alone; delete it or choose another name`,
    );
    this.facet.turn(() => this.#withdrawProvided(s));
  }

  /** The spec is gone: delete the link if it is ours, and forget the name. */
  async #release(s: NameState, link: LinkFacts | undefined): Promise<void> {
    if (link !== undefined && link.alias === LINK_MARK) {
      await this.#cmd.ip(['link', 'del', 'dev', s.name], this.#signal);
      this.#log.info('deleted', { link: s.name });
    }
    this.facet.turn(() => {
      this.#withdrawProvided(s);
      for (const h of [s.state, s.failure]) if (h !== undefined) this.facet.retract(h);
      s.state = s.failure = undefined;
      // A spec that arrived during the pass keeps the name (its pass is scheduled).
      if (s.wanted.length === 0 && this.#names.get(s.name) === s) this.#names.delete(s.name);
    });
  }

  #withdrawProvided(s: NameState): void {
    for (const h of s.provided) this.facet.retract(h);
    s.provided = [];
    s.configured = undefined;
  }

  #report(s: NameState, kind: Kind, state: 'created' | 'waiting' | 'failed', detail: string) {
    this.facet.turn(() => {
      // The new ones before the old ones go, so an unchanged state does not flap.
      const old = [s.state, s.failure];
      const config = this.#o.config;
      s.state = this.facet.assert(
        config,
        record('link-state', s.name, sym(kind), sym(state), detail),
      );
      s.failure =
        state === 'failed'
          ? this.facet.assert(config, record(`${kind}-error`, s.name, detail))
          : undefined;
      for (const h of old) if (h !== undefined) this.facet.retract(h);
    });
  }

  /** After the configuration has loaded: marked links that no spec names are deleted. */
  async #deleteLeftovers(): Promise<void> {
    const signal = this.#signal;
    if (this.facet.isStopped) return;
    try {
      for (const l of await this.#cmd.list(signal)) {
        if (l.alias !== LINK_MARK || !KINDS.includes(l.kind as Kind)) continue;
        if (this.#names.has(l.name)) continue;
        await this.#cmd.ip(['link', 'del', 'dev', l.name], signal);
        this.#log.info('deleted a link left from an earlier run', { link: l.name });
      }
    } catch (e) {
      this.#log.warn('could not delete leftover links', { error: String(e) });
    }
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
