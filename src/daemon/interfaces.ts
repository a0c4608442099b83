// `limen ifup` / `limen ifdown`, in the spirit of netconf: a request answered
// when the interface is really configured (or has failed, with the reason),
// streaming what happens on the way. Everything goes through the dataspaces:
// ifdown releases a DHCP lease first (`! <dhcp-release IF>`, then waits, for a
// bounded time, for `<dhcp-lease IF _>` to go), then asserts `<link-admin IF
// down>` (held until ifup); ifup withdraws it and waits for
// `<interface-configured IF>` in $config.
//
// Invariant: once a release was sent, the link goes down, even if the request is
// cancelled meanwhile: a released udhcpc on a link that stays up would sit there
// leaseless. An ifup waits for such a pending ifdown to take the link down first.

import { Sym, peel, record, stringify, sym, type Value } from '../preserves/index.ts';
import { P, type Facet, type Handle, type Ref } from '../dataspace/index.ts';
import type { InterfaceController, InterfaceResult } from '../control/index.ts';
import { presentable } from '../script/index.ts';

export interface InterfaceControllerOptions {
  readonly facet: Facet;
  readonly config: Ref;
  readonly machine: Ref;
  /** How long ifdown waits for a released DHCP lease to be withdrawn; default 3000 ms. */
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
  return typeof p === 'string' ? p : stringify(presentable(p));
}

export function interfaceController(opts: InterfaceControllerOptions): InterfaceController {
  const { config, machine } = opts;
  const held = new Map<string, Handle>();
  /** ifdowns releasing a lease: resolved once they took the link down. */
  const releasing = new Map<string, Promise<void>>();
  const releaseWaitMs = opts.releaseWaitMs ?? DEFAULT_RELEASE_WAIT_MS;
  const engine = opts.facet.engine;

  /** Asserts `<link-admin IF down>` (held until ifup); must run in a turn. */
  const holdDown = (ifname: string) => {
    if (!held.has(ifname) && opts.facet.isAlive) {
      held.set(ifname, opts.facet.assert(config, record('link-admin', ifname, sym('down'))));
    }
  };

  /** Runs `watch` in a child facet until it resolves the request, or the signal aborts. */
  const request = (
    ifname: string,
    signal: AbortSignal,
    watch: (f: Facet, done: (r: InterfaceResult) => void) => void,
  ): Promise<InterfaceResult> =>
    new Promise((resolve) => {
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
        child = opts.facet.spawn((f) => watch(f, done), `ifup/ifdown ${ifname}`);
      });
    });

  const progressWatchers = (f: Facet, ifname: string, onProgress: (p: Value) => void) => {
    const say = (what: string) => onProgress(what);
    f.observe(
      machine,
      P.rec(
        'interface',
        P.lit(ifname),
        P._,
        P._,
        P.bind('admin'),
        P.bind('oper'),
        P.bind('carrier'),
      ),
      {
        onAdd: (_v, c) =>
          say(
            `link ${ifname}: admin ${show(c.get('admin')!)}, oper ${show(c.get('oper')!)}, ${show(c.get('carrier')!)}`,
          ),
      },
    );
    f.observe(config, P.rec('dhcp-lease', P.lit(ifname), P.bind('lease')), {
      onAdd: (_v, c) => say(`dhcp lease on ${ifname}: ${show(c.get('lease')!)}`),
    });
    f.observe(
      config,
      P.rec('ip-address-state', P.lit(ifname), P.bind('addr'), P.bind('state'), P.bind('reason')),
      {
        onAdd: (_v, c) => {
          const reason = show(c.get('reason')!);
          say(
            `address ${show(c.get('addr')!)} ${show(c.get('state')!)}${reason === '' || reason === '#f' ? '' : `: ${reason}`}`,
          );
        },
      },
    );
    f.observe(config, P.rec('dhcp-error', P.lit(ifname), P.bind('m')), {
      onAdd: (_v, c) => say(`dhcp error on ${ifname}: ${show(c.get('m')!)}`),
    });
  };

  return {
    async up(ifname, { signal, onProgress }) {
      const pending = releasing.get(ifname);
      if (pending !== undefined) {
        onProgress(`${ifname}: waiting for ifdown to finish releasing the lease`);
        await pending;
      }
      return request(ifname, signal, (f, done) => {
        const h = held.get(ifname);
        if (h !== undefined) {
          held.delete(ifname);
          opts.facet.retract(h);
          onProgress(`${ifname}: administrative down withdrawn`);
        }
        // "No configuration" is an answer only once the configuration is loaded (the
        // core milestone is up), and "no such interface" once the kernel's links are
        // known; right after boot, ifup waits for both instead.
        let configured = false;
        f.observe(config, P.rec('configure-interface', P.lit(ifname), P._), {
          onAdd: () => void (configured = true),
        });
        // A count: a change of the link is its new value added, then the old one removed.
        let links = 0;
        f.observe(machine, P.rec('interface', P.lit(ifname)), {
          onAdd: () => void links++,
          onRemove: () => void links--,
        });
        // Without the links (no monitor, or netlink unavailable), existence is not judged.
        const linksKnown = (opts.linksKnown ?? Promise.reject(new Error('unknown'))).then(
          () => true,
          () => false,
        );
        f.observe(
          config,
          P.rec('service-state', P.rec('milestone', P.lit(sym('core'))), P.lit(sym('up'))),
          {
            // Decide once the engine is quiescent: the core layer's reactions have run and
            // the observers have been handed what exists.
            onAdd: () =>
              void linksKnown.then((known) =>
                engine.sync().then(() =>
                  f.turn(() => {
                    if (known && links === 0) {
                      done({ ok: false, reason: 'no such interface' });
                    } else if (!configured) {
                      done({
                        ok: false,
                        reason: `no configuration: add <configure-interface "${ifname}" <dhcp>> (or <static ...>) to the site configuration`,
                      });
                    }
                  }),
                ),
              ),
          },
        );
        progressWatchers(f, ifname, onProgress);
        f.observe(config, P.rec('interface-failed', P.lit(ifname), P.bind('reason')), {
          onAdd: (_v, c) => done({ ok: false, reason: show(c.get('reason')!) }),
        });
        f.observe(config, P.rec('interface-configured', P.lit(ifname)), {
          onAdd: () => done({ ok: true, detail: record('interface-configured', ifname) }),
        });
      });
    },
    async down(ifname, { signal, onProgress }) {
      // A second ifdown while the first is releasing: it would send a second release.
      await releasing.get(ifname);
      return request(ifname, signal, (f, done) => {
        progressWatchers(f, ifname, onProgress);
        let exists = false;
        let adminDown = false;
        let linkDown = false;
        const takeDown = () => {
          if (linkDown) return;
          linkDown = true;
          holdDown(ifname);
          if (adminDown) done({ ok: true, detail: record('link-admin', ifname, sym('down')) });
        };
        f.observe(machine, P.rec('interface', P.lit(ifname), P._, P._, P.bind('admin')), {
          onAdd: (_v, c) => {
            exists = true;
            const admin = peel(c.get('admin')!);
            adminDown = admin instanceof Sym && admin.name === 'down';
            if (adminDown && linkDown) {
              done({ ok: true, detail: record('link-admin', ifname, sym('down')) });
            }
          },
        });
        // Every DHCP lease on the interface: released before the link goes down, since
        // a DHCPRELEASE cannot be sent afterwards and the server would keep the lease.
        // (Each distinct value is added and removed once, so a count is exact.)
        let leases = 0;
        let released: (() => void) | undefined;
        f.observe(config, P.rec('dhcp-lease', P.lit(ifname), P._), {
          onAdd: () => void leases++,
          onRemove: () => {
            leases--;
            if (leases === 0) released?.();
          },
        });
        // Decide once the observers have been handed what exists (two turns later).
        f.turn(() =>
          f.turn(() => {
            if (!exists) {
              takeDown();
              done({ ok: false, reason: 'no such interface' });
              return;
            }
            if (leases === 0 || held.has(ifname)) {
              takeDown();
              return;
            }
            onProgress(`releasing the DHCP lease on ${ifname}`);
            let finished!: () => void;
            const whenDown = new Promise<void>((res) => (finished = res));
            releasing.set(ifname, whenDown);
            const timer = setTimeout(
              () =>
                f.turn(() => {
                  onProgress(
                    `the lease on ${ifname} was not withdrawn within ${releaseWaitMs} ms: taking the link down anyway`,
                  );
                  finish();
                }),
              releaseWaitMs,
            );
            const finish = () => {
              clearTimeout(timer);
              released = undefined;
              takeDown();
              if (releasing.get(ifname) === whenDown) releasing.delete(ifname);
              finished();
            };
            released = () => {
              onProgress(`the lease on ${ifname} is released`);
              finish();
            };
            // Cancelled or timed out while releasing: the link still goes down.
            f.onStop(() => {
              if (!linkDown) opts.facet.turn(finish);
            });
            f.send(config, record('dhcp-release', ifname));
          }),
        );
      });
    },
  };
}
