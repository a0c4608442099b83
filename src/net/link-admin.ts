// Link administrative state: every interface the kernel reports in $machine is
// brought up when it appears, as Synit's network layer does, unless the site
// says otherwise with `<link-admin IF down>` (keep it down) or
// `<interface-unmanaged IF>` (leave it alone). Invariant: we act only when
// the observed admin state differs from the desired one, so there is no loop
// with the kernel; a failed `ip link set` is published as `<link-error IF M>`, unless
// the link went away meanwhile (pppd renames the ppp0 it made to its `ifname` at once,
// so bringing ppp0 up fails with "Cannot find device": no failure of the router's).

import { execFile } from 'node:child_process';
import { Sym, ValueMap, peel, record, sym, type Value } from '../preserves/index.ts';
import {
  type Driver,
  P,
  type Facet,
  type Handle,
  type Ref,
  anyRecord,
  declareFailures,
} from '../dataspace/index.ts';

export interface LinkAdminOptions {
  readonly config: Ref;
  readonly machine: Ref;
  /** The `ip` command and any leading arguments (tests use `['ip', '-n', NS]`). */
  readonly ip?: readonly string[];
  /** Runs `ip` with these arguments: the error's message, or undefined (tests give their own). */
  readonly run?: (argv: readonly string[]) => Promise<string | undefined>;
}

function runIp(argv: readonly string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), (err, _out, stderr) =>
      resolve(err === null ? undefined : (stderr || err.message).trim()),
    );
  });
}

interface LinkState {
  /** The admin states of the <interface> assertions present now, newest last: a replaced
   *  assertion's new value may be added before the old one is removed. */
  observed: string[];
  down: number;
  unmanaged: number;
  pending: boolean;
  error: Handle | undefined;
}

export interface LinkAdmin extends Driver {
  /** Links that limen has set up or down, by name, for diagnostics. */
  readonly actions: readonly string[];
}

function adminOf(v: Value): string {
  const a = peel(v);
  return a instanceof Sym ? a.name : 'unknown';
}

function text(v: Value): string {
  const p = peel(v);
  return typeof p === 'string' ? p : '';
}

export function startLinkAdmin(parent: Facet, opts: LinkAdminOptions): LinkAdmin {
  const ip = opts.ip ?? ['ip'];
  const run = opts.run ?? runIp;
  const links = new ValueMap<LinkState>();
  const actions: string[] = [];
  const facet = parent.spawn((f) => {
    // So that `limen status` and the log find them (docs/vocabulary.md, "Failures").
    declareFailures(f, opts.config, anyRecord('link-error', 2));
  }, 'link-admin');

  const state = (name: Value): LinkState =>
    links.getOrCreate(name, () => ({
      observed: [],
      down: 0,
      unmanaged: 0,
      pending: false,
      error: undefined,
    }));

  const reconcile = (name: Value) => {
    const s = links.get(name);
    if (s === undefined || s.pending) return;
    const want = s.down > 0 ? 'down' : 'up';
    if (s.observed.length === 0 || s.unmanaged > 0 || s.observed[s.observed.length - 1] === want) {
      // Nothing to do, so an earlier attempt's error is no longer true: the link is gone,
      // left alone, or as wanted (status must not report a failure that has passed).
      if (s.error !== undefined) {
        facet.retract(s.error);
        s.error = undefined;
      }
      return;
    }
    const ifname = text(name);
    if (ifname === '') return;
    s.pending = true;
    actions.push(`${ifname} ${want}`);
    void run([...ip, 'link', 'set', 'dev', ifname, want]).then((message) => {
      facet.turn(() => {
        s.pending = false;
        if (s.error !== undefined) {
          facet.retract(s.error);
          s.error = undefined;
        }
        // A link that is gone now (renamed, deleted) has nothing left to fail.
        if (message !== undefined && s.observed.length > 0)
          s.error = facet.assert(opts.config, record('link-error', name, message));
        // The kernel's answer arrives through the monitor; check again in case it
        // changed while the command ran.
        if (message === undefined) reconcile(name);
      });
    });
  };

  facet.observe(
    opts.machine,
    P.rec('interface', P.bind('name'), P._, P._, P.bind('admin')),
    {
      onAdd: (_v, c) => {
        const s = state(c.get('name')!);
        s.observed.push(adminOf(c.get('admin')!));
        reconcile(c.get('name')!);
      },
      onRemove: (_v, c) => {
        const s = links.get(c.get('name')!);
        if (s === undefined) return;
        const i = s.observed.lastIndexOf(adminOf(c.get('admin')!));
        if (i >= 0) s.observed.splice(i, 1);
        reconcile(c.get('name')!);
      },
    },
    'link-admin: interfaces',
  );
  const counter = (
    label: string,
    field: 'down' | 'unmanaged',
    pattern = P.rec(label, P.bind('name')),
  ) =>
    facet.observe(opts.config, pattern, {
      onAdd: (_v, c) => {
        state(c.get('name')!)[field]++;
        reconcile(c.get('name')!);
      },
      onRemove: (_v, c) => {
        const s = state(c.get('name')!);
        s[field]--;
        reconcile(c.get('name')!);
      },
    });
  counter('link-admin', 'down', P.rec('link-admin', P.bind('name'), P.lit(sym('down'))));
  counter('interface-unmanaged', 'unmanaged');
  return { facet, stop: () => facet.stop(), actions };
}
