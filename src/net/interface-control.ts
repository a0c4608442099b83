// `limen ifup` / `limen ifdown`, in the spirit of netconf: a request answered
// when the interface is really configured (or has failed, with the reason),
// streaming what happens on the way. Everything goes through the dataspaces:
// ifdown ends every protocol session on the interface first (each protocol says
// how in protocols.ts: the DHCP client releases its lease with `! <dhcp-release
// IF>`), then waits, for a bounded time, for the session's record to go, then
// asserts `<link-admin IF down>` (held until ifup); ifup sends `! <interface-retry
// IF>` (a protocol holding off after a failure tries again), withdraws the hold and
// waits for `<interface-configured IF>` or `<interface-failed IF REASON>` in $config.
//
// Invariant: once a release was sent, the link goes down, even if the request is
// cancelled meanwhile: a released client on a link that stays up would sit there
// without its session. An ifup waits for such a pending ifdown to take the link
// down first.

import { Sym, peel, record, stringify, strip, sym, type Value } from '../preserves/index.ts';
import { P, type Facet, type Handle, type Ref } from '../dataspace/index.ts';
import { PROTOCOLS, protocolOf, type ProtocolRelease } from './protocols.ts';

export type InterfaceResult =
  { readonly ok: true; readonly detail: Value } | { readonly ok: false; readonly reason: string };

export interface InterfaceRequestOptions {
  readonly signal: AbortSignal;
  readonly onProgress: (progress: Value) => void;
}

/** What the control server's ifup and ifdown call (control/providers.ts's InterfaceController). */
export interface InterfaceControl {
  up(ifname: string, options: InterfaceRequestOptions): Promise<InterfaceResult>;
  down(ifname: string, options: InterfaceRequestOptions): Promise<InterfaceResult>;
}

export interface InterfaceControlOptions {
  readonly facet: Facet;
  readonly config: Ref;
  readonly machine: Ref;
  /** How long ifdown waits for a released session to be withdrawn; default 3000 ms. */
  readonly releaseWaitMs?: number;
  /**
   * Settles once the kernel's links are in $machine (the interface monitor's first
   * dump): only then can ifup say that an interface does not exist.
   */
  readonly linksKnown?: Promise<void>;
}

const DEFAULT_RELEASE_WAIT_MS = 3000;

function show(v: Value): string {
  const p = peel(v);
  return typeof p === 'string' ? p : stringify(strip(p));
}

type Done = (r: InterfaceResult) => void;

class InterfaceRequests implements InterfaceControl {
  readonly #o: InterfaceControlOptions;
  readonly #held = new Map<string, Handle>();
  /** ifdowns ending a session: resolved once they took the link down. */
  readonly #releasing = new Map<string, Promise<void>>();

  constructor(o: InterfaceControlOptions) {
    this.#o = o;
  }

  async up(ifname: string, { signal, onProgress }: InterfaceRequestOptions) {
    const pending = this.#releasing.get(ifname);
    if (pending !== undefined) {
      onProgress(`${ifname}: waiting for ifdown to finish releasing the lease`);
      await pending;
    }
    await this.#retry(ifname);
    return this.#request(ifname, signal, (f, done) => {
      const h = this.#held.get(ifname);
      if (h !== undefined) {
        this.#held.delete(ifname);
        this.#o.facet.retract(h);
        onProgress(`${ifname}: administrative down withdrawn`);
      }
      this.#judgeUp(f, ifname, done);
      this.#progress(f, ifname, onProgress);
      const { config } = this.#o;
      f.observe(config, P.rec('interface-failed', P.lit(ifname), P.bind('reason')), {
        onAdd: (_v, c) => done({ ok: false, reason: show(c.get('reason')!) }),
      });
      f.observe(config, P.rec('interface-configured', P.lit(ifname)), {
        onAdd: () => done({ ok: true, detail: record('interface-configured', ifname) }),
      });
    });
  }

  async down(ifname: string, { signal, onProgress }: InterfaceRequestOptions) {
    // A second ifdown while the first is releasing: it would send a second release.
    await this.#releasing.get(ifname);
    return this.#request(ifname, signal, (f, done) => {
      this.#progress(f, ifname, onProgress);
      new Takedown(this, f, ifname, done, onProgress);
    });
  }

  /**
   * `! <interface-retry IF>`: a protocol holding off after a failure it will not
   * retry by itself (PPPoE refused by the ISP) tries again now, and withdraws its
   * `<interface-failed …>`; the request then judges what comes next.
   */
  async #retry(ifname: string): Promise<void> {
    const f = this.#o.facet;
    if (!f.isAlive) return;
    f.turn(() => f.send(this.#o.config, record('interface-retry', ifname)));
    await f.engine.sync();
  }

  /** Asserts `<link-admin IF down>` (held until ifup); must run in a turn. */
  holdDown(ifname: string): void {
    if (!this.#held.has(ifname) && this.#o.facet.isAlive) {
      this.#held.set(
        ifname,
        this.#o.facet.assert(this.#o.config, record('link-admin', ifname, sym('down'))),
      );
    }
  }

  isHeld(ifname: string): boolean {
    return this.#held.has(ifname);
  }

  get options(): InterfaceControlOptions {
    return this.#o;
  }

  /** Marks an ifdown releasing IF until `whenDown` settles. */
  releasing(ifname: string, whenDown: Promise<void>): () => void {
    this.#releasing.set(ifname, whenDown);
    return () => {
      if (this.#releasing.get(ifname) === whenDown) this.#releasing.delete(ifname);
    };
  }

  /** Runs `watch` in a child facet until it resolves the request, or the signal aborts. */
  #request(
    ifname: string,
    signal: AbortSignal,
    watch: (f: Facet, done: Done) => void,
  ): Promise<InterfaceResult> {
    const engine = this.#o.facet.engine;
    return new Promise((resolve) => {
      let child: Facet | undefined;
      let finished = false;
      const done = (r: InterfaceResult) => {
        if (finished) return;
        finished = true;
        signal.removeEventListener('abort', onAbort);
        if (child !== undefined) {
          const c = child;
          engine.turn(() => c.stop());
        }
        resolve(r);
      };
      // The server puts the interface's name before every reason.
      const onAbort = () => done({ ok: false, reason: 'request cancelled or timed out' });
      // Aborted already (while waiting for a pending release): nothing to start.
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      engine.turn(() => {
        child = this.#o.facet.spawn((f) => watch(f, done), `ifup/ifdown ${ifname}`);
      });
    });
  }

  /**
   * ifup's early answers: "no configuration" only once the configuration is loaded (the
   * core milestone is up), and "no such interface" once the kernel's links are known;
   * right after boot, ifup waits for both instead.
   */
  #judgeUp(f: Facet, ifname: string, done: Done): void {
    const { config, machine } = this.#o;
    const engine = f.engine;
    let configured = false;
    let created = false;
    f.observe(config, P.rec('configure-interface', P.lit(ifname), P.bind('method')), {
      onAdd: (_v, c) => {
        configured = true;
        if (protocolOf(c.get('method')!)?.creates === true) created = true;
      },
    });
    // A count: a change of the link is its new value added, then the old one removed.
    let links = 0;
    f.observe(machine, P.rec('interface', P.lit(ifname)), {
      onAdd: () => void links++,
      onRemove: () => void links--,
    });
    // Without the links (no monitor, or netlink unavailable), existence is not judged.
    const linksKnown = (this.#o.linksKnown ?? Promise.reject(new Error('unknown'))).then(
      () => true,
      () => false,
    );
    const judge = (known: boolean) => {
      // A protocol that creates its interface (l2tp's PPP link) makes it only once it dials.
      if (known && links === 0 && !created) done({ ok: false, reason: 'no such interface' });
      else if (!configured)
        done({
          ok: false,
          reason: `no configuration: add <configure-interface "${ifname}" <dhcp>> (or <static ...>) to the site configuration`,
        });
    };
    f.observe(
      config,
      P.rec('service-state', P.rec('milestone', P.lit(sym('core'))), P.lit(sym('up'))),
      {
        // Decide once the engine is quiescent: the core layer's reactions have run and
        // the observers have been handed what exists.
        onAdd: () =>
          void linksKnown.then((known) => engine.sync().then(() => f.turn(() => judge(known)))),
      },
    );
  }

  /** What ifup and ifdown stream: the link, the addresses, and each protocol's own records. */
  #progress(f: Facet, ifname: string, onProgress: (p: Value) => void): void {
    const { config, machine } = this.#o;
    const link = P.rec(
      'interface',
      P.lit(ifname),
      P._,
      P._,
      P.bind('admin'),
      P.bind('oper'),
      P.bind('carrier'),
    );
    f.observe(machine, link, {
      onAdd: (_v, c) =>
        onProgress(
          `link ${ifname}: admin ${show(c.get('admin')!)}, oper ${show(c.get('oper')!)}, ${show(c.get('carrier')!)}`,
        ),
    });
    for (const p of PROTOCOLS)
      for (const item of p.progress ?? [])
        f.observe(config, P.rec(item.label, P.lit(ifname), P.bind('detail')), {
          onAdd: (_v, c) => onProgress(item.say(ifname, show(c.get('detail')!))),
        });
    f.observe(
      config,
      P.rec('ip-address-state', P.lit(ifname), P.bind('addr'), P.bind('state'), P.bind('reason')),
      {
        onAdd: (_v, c) => {
          const reason = show(c.get('reason')!);
          onProgress(
            `address ${show(c.get('addr')!)} ${show(c.get('state')!)}${reason === '' || reason === '#f' ? '' : `: ${reason}`}`,
          );
        },
      },
    );
  }
}

/** One ifdown: every protocol session on the interface ended, then the link held down. */
class Takedown {
  readonly #r: InterfaceRequests;
  readonly #f: Facet;
  readonly #ifname: string;
  readonly #done: Done;
  readonly #say: (p: Value) => void;
  #exists = false;
  #adminDown = false;
  #linkDown = false;
  /** Sessions held now, counted by protocol (each distinct record is added and removed once). */
  readonly #sessions = new Map<ProtocolRelease, number>();
  #released: (() => void) | undefined;

  constructor(r: InterfaceRequests, f: Facet, ifname: string, done: Done, say: (p: Value) => void) {
    this.#r = r;
    this.#f = f;
    this.#ifname = ifname;
    this.#done = done;
    this.#say = say;
    const { config, machine } = r.options;
    f.observe(machine, P.rec('interface', P.lit(ifname), P._, P._, P.bind('admin')), {
      onAdd: (_v, c) => {
        this.#exists = true;
        const admin = peel(c.get('admin')!);
        this.#adminDown = admin instanceof Sym && admin.name === 'down';
        if (this.#adminDown && this.#linkDown) this.#finished();
      },
    });
    // Every session on the interface: ended before the link goes down, since a
    // DHCPRELEASE (or a PPP hang-up) cannot be sent afterwards.
    for (const p of PROTOCOLS) {
      const release = p.release;
      if (release === undefined) continue;
      f.observe(config, P.rec(release.session, P.lit(ifname), P._), {
        onAdd: () => this.#count(release, +1),
        onRemove: () => this.#count(release, -1),
      });
    }
    // Decide once the observers have been handed what exists (two turns later).
    f.turn(() => f.turn(() => this.#decide()));
  }

  #count(release: ProtocolRelease, d: number): void {
    const n = (this.#sessions.get(release) ?? 0) + d;
    if (n > 0) this.#sessions.set(release, n);
    else this.#sessions.delete(release);
    if (this.#sessions.size === 0) this.#released?.();
  }

  #finished(): void {
    this.#done({ ok: true, detail: record('link-admin', this.#ifname, sym('down')) });
  }

  #takeDown(): void {
    if (this.#linkDown) return;
    this.#linkDown = true;
    this.#r.holdDown(this.#ifname);
    if (this.#adminDown) this.#finished();
  }

  #decide(): void {
    const ifname = this.#ifname;
    if (!this.#exists) {
      this.#takeDown();
      this.#done({ ok: false, reason: 'no such interface' });
      return;
    }
    if (this.#sessions.size === 0 || this.#r.isHeld(ifname)) {
      this.#takeDown();
      return;
    }
    this.#release([...this.#sessions.keys()]);
  }

  /** Ends the sessions, then takes the link down once they are gone or the wait is over. */
  #release(releases: readonly ProtocolRelease[]): void {
    const f = this.#f;
    const ifname = this.#ifname;
    const waitMs = this.#r.options.releaseWaitMs ?? DEFAULT_RELEASE_WAIT_MS;
    const what = releases.map((r) => r.what).join(' and ');
    // "the lease on wan0 is released"; of two, each by its name: "the DHCP lease and the
    // DHCPv6 lease on wan0 are released".
    const one = releases.length === 1;
    const short = one ? releases[0]!.short : what;
    this.#say(`releasing ${what} on ${ifname}`);
    let settle!: () => void;
    const unmark = this.#r.releasing(ifname, new Promise<void>((res) => (settle = res)));
    const finish = () => {
      clearTimeout(timer);
      this.#released = undefined;
      this.#takeDown();
      unmark();
      settle();
    };
    const timer = setTimeout(
      () =>
        f.turn(() => {
          this.#say(
            `${short} on ${ifname} ${one ? 'was' : 'were'} not withdrawn within ${waitMs} ms: ` +
              'taking the link down anyway',
          );
          finish();
        }),
      waitMs,
    );
    this.#released = () => {
      this.#say(`${short} on ${ifname} ${one ? 'is' : 'are'} released`);
      finish();
    };
    // Cancelled or timed out while releasing: the link still goes down.
    f.onStop(() => {
      if (!this.#linkDown) this.#r.options.facet.turn(finish);
    });
    for (const r of releases) f.send(this.#r.options.config, r.message(ifname));
  }
}

/** `limen ifup` and `limen ifdown` for every interface protocol. */
export function startInterfaceControl(o: InterfaceControlOptions): InterfaceControl {
  return new InterfaceRequests(o);
}
