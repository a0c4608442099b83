// `limen ifup` / `limen ifdown`, in the spirit of netconf: a request answered
// when the interface is really configured (or has failed, with the reason),
// streaming what happens on the way. Everything goes through the dataspaces:
// ifdown asserts `<link-admin IF down>` (held until ifup), ifup withdraws it and
// waits for `<interface-configured IF>` in $config.

import { Sym, peel, record, stringify, sym, type Value } from '../preserves/index.ts';
import { P, type Facet, type Handle, type Ref } from '../dataspace/index.ts';
import type { InterfaceController, InterfaceResult } from '../control/index.ts';
import { presentable } from '../script/index.ts';

export interface InterfaceControllerOptions {
  readonly facet: Facet;
  readonly config: Ref;
  readonly machine: Ref;
}

function show(v: Value): string {
  const p = peel(v);
  return typeof p === 'string' ? p : stringify(presentable(p));
}

export function interfaceController(opts: InterfaceControllerOptions): InterfaceController {
  const { config, machine } = opts;
  const held = new Map<string, Handle>();
  const engine = opts.facet.engine;

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
      const onAbort = () =>
        done({ ok: false, reason: `${ifname}: request cancelled or timed out` });
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
    up(ifname, { signal, onProgress }) {
      return request(ifname, signal, (f, done) => {
        const h = held.get(ifname);
        if (h !== undefined) {
          held.delete(ifname);
          opts.facet.retract(h);
          onProgress(`${ifname}: administrative down withdrawn`);
        }
        // "No configuration" is an answer only once the configuration is loaded (the
        // core milestone is up); right after boot, ifup waits for it instead.
        let configured = false;
        f.observe(config, P.rec('configure-interface', P.lit(ifname), P._), {
          onAdd: () => void (configured = true),
        });
        f.observe(
          config,
          P.rec('service-state', P.rec('milestone', P.lit(sym('core'))), P.lit(sym('up'))),
          {
            // Decide once the engine is quiescent: the core layer's reactions have run and
            // the configure-interface observer has been handed what exists.
            onAdd: () =>
              void engine.sync().then(() =>
                f.turn(() => {
                  if (!configured) {
                    done({
                      ok: false,
                      reason: `${ifname} has no configuration: add <configure-interface "${ifname}" <dhcp>> (or <static ...>) to the site configuration`,
                    });
                  }
                }),
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
    down(ifname, { signal, onProgress }) {
      return request(ifname, signal, (f, done) => {
        if (!held.has(ifname)) {
          held.set(ifname, opts.facet.assert(config, record('link-admin', ifname, sym('down'))));
        }
        progressWatchers(f, ifname, onProgress);
        let exists = false;
        f.turn(() =>
          f.turn(() => {
            if (!exists) done({ ok: false, reason: `no interface named ${ifname}` });
          }),
        );
        f.observe(machine, P.rec('interface', P.lit(ifname), P._, P._, P.bind('admin')), {
          onAdd: (_v, c) => {
            exists = true;
            const admin = peel(c.get('admin')!);
            if (admin instanceof Sym && admin.name === 'down') {
              done({ ok: true, detail: record('link-admin', ifname, sym('down')) });
            }
          },
        });
      });
    },
  };
}
