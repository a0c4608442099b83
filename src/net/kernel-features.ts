// Kernel features that some interface configurations need (PPPoE, L2TP, VLAN,
// WireGuard). When the site asks for one (`<configure-interface IF <pppoe …>>`, or
// a link such as `<vlan NAME {…}>`), this driver says clearly whether the kernel
// has it: `<interface-failed IF "...">` names the missing feature and modules, and
// `<kernel-feature NAME present|missing>` goes into $machine, where the drivers
// that need the feature wait for it. A protocol limen does not implement yet gets
// an equally plain "not implemented yet".

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { record, sym, type Value } from '../preserves/index.ts';
import {
  spawnDriver,
  type Driver,
  P,
  during,
  type Facet,
  type Ref,
  anyRecord,
  declareFailures,
} from '../dataspace/index.ts';

export interface KernelFeature {
  /** The protocol's name in `<configure-interface IF <NAME ...>>`. */
  readonly protocol: string;
  readonly description: string;
  /** Kernel modules, all of which are needed. */
  readonly modules: readonly string[];
  /** Device nodes or sysfs paths whose presence also shows the feature (built in). */
  readonly markers: readonly string[];
  /** The label of the `$config` record `<LABEL NAME {…}>` that creates such a link, if any. */
  readonly link?: string;
}

export const KERNEL_FEATURES: readonly KernelFeature[] = [
  {
    protocol: 'pppoe',
    description: 'PPPoE needs PPP over Ethernet',
    modules: ['ppp_generic', 'pppoe'],
    markers: ['/dev/ppp', '/sys/class/misc/ppp', '/proc/net/pppoe'],
  },
  {
    protocol: 'l2tp',
    description: 'L2TP needs the L2TP tunnel support',
    modules: ['l2tp_core', 'l2tp_netlink', 'l2tp_ppp'],
    markers: ['/proc/net/pppol2tp'],
  },
  {
    protocol: 'vlan',
    description: 'VLAN interfaces need 802.1Q support',
    modules: ['8021q'],
    markers: ['/proc/net/vlan'],
    link: 'vlan',
  },
  {
    protocol: 'wireguard',
    description: 'WireGuard needs the wireguard module',
    modules: ['wireguard'],
    markers: ['/sys/module/wireguard'],
    link: 'wireguard',
  },
];

export interface KernelFeatureOptions {
  readonly config: Ref;
  readonly machine: Ref;
  /** Filesystem root for the checks (tests point it at a fake tree). */
  readonly root?: string;
  /** The running kernel's release (default: /proc/sys/kernel/osrelease). */
  readonly release?: string;
}

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Whether the kernel has a module: loaded, built in, or available to load. */
export function hasModule(name: string, root = '/', release?: string): boolean {
  if (existsSync(join(root, 'sys/module', name))) return true;
  const rel = release ?? read(join(root, 'proc/sys/kernel/osrelease')).trim();
  const dir = join(root, 'lib/modules', rel);
  const mentions = (file: string) =>
    read(join(dir, file))
      .split('\n')
      .some((l) => {
        const path = l.split(':')[0] ?? '';
        const base = path.slice(path.lastIndexOf('/') + 1).replace(/\.ko(\.[a-z]+)?$/, '');
        return base.replace(/-/g, '_') === name;
      });
  return mentions('modules.builtin') || mentions('modules.dep');
}

/** Protocols of KERNEL_FEATURES that limen implements (src/net/protocols.ts). */
const IMPLEMENTED: readonly string[] = ['pppoe', 'l2tp'];

export function checkFeature(
  f: KernelFeature,
  root = '/',
  release?: string,
): { present: boolean; missing: string[] } {
  if (f.markers.some((m) => existsSync(join(root, m)))) return { present: true, missing: [] };
  const missing = f.modules.filter((m) => !hasModule(m, root, release));
  return { present: missing.length === 0, missing };
}

/** Says in `f` whether the kernel has the feature that SUBJECT (an interface or a link) needs. */
function reportFeature(
  f: Facet,
  opts: KernelFeatureOptions,
  feature: KernelFeature,
  subject: Value,
  configured: boolean,
): void {
  const { present, missing } = checkFeature(feature, opts.root ?? '/', opts.release);
  f.assert(
    opts.machine,
    record('kernel-feature', sym(feature.protocol), sym(present ? 'present' : 'missing')),
  );
  // A protocol limen implements, or a link it creates, needs no word when the kernel has it.
  if (present && (!configured || IMPLEMENTED.includes(feature.protocol))) return;
  const reason = !present
    ? `${feature.description} (kernel modules ${feature.modules.join(', ')}), which this kernel does not have: ${missing.join(', ')} not loaded, not built in and not available to load`
    : feature.link !== undefined
      ? `${feature.protocol} is not a way to configure an interface: create the link with <${feature.link} NAME {…}> and configure NAME`
      : `${feature.protocol} is not implemented in limen yet (the kernel has it)`;
  f.assert(opts.config, record('interface-failed', subject, reason));
}

export function startKernelFeatures(parent: Facet, opts: KernelFeatureOptions): Driver {
  return spawnDriver(parent, 'kernel-features', (facet) => {
    // So that `limen status` and the log find them (docs/vocabulary.md, "Failures").
    declareFailures(facet, opts.config, anyRecord('interface-failed', 2));
    for (const feature of KERNEL_FEATURES) {
      during(
        facet,
        opts.config,
        P.rec('configure-interface', P.bind('if'), P.rec(feature.protocol)),
        (f, c) => reportFeature(f, opts, feature, c.get('if')!, true),
        `kernel-features: ${feature.protocol}`,
      );
      if (feature.link !== undefined)
        during(
          facet,
          opts.config,
          P.rec(feature.link, P.bind('name')),
          (f, c) => reportFeature(f, opts, feature, c.get('name')!, false),
          `kernel-features: <${feature.link}>`,
        );
    }
  });
}
