// Static interface configuration: `<configure-interface IF <static "ADDR/LEN"
// {gateway: "GW" dns: ["A" …] search: ["D" …]}>>` in $config becomes the
// desired state `<ip-address IF "ADDR/LEN" {}>`, `<ip-route FAMILY "default"
// {via: GW dev: IF metric: 100}>` (with a gateway), `<dns-server A static>`
// and `<dns-search D static>`. The options dictionary is optional.
//
// Invariants: everything is validated first and every problem reported
// together, as one `<interface-failed IF "static: …">`; a configuration with
// any problem installs nothing (half a configuration is harder to diagnose
// than none); the state lives in a facet per configuration, so retracting or
// changing the configuration withdraws or replaces it.

import { Dict, Record, Sym, peel, record, sym, type Value } from '../preserves/index.ts';
import {
  type Driver,
  P,
  during,
  type Facet,
  type Ref,
  anyRecord,
  declareFailures,
} from '../dataspace/index.ts';
import { ipFamily, ipHostProblem, parseDomainName, parseHostCidr } from './inet-values.ts';
import { printable } from '../preserves/index.ts';
import { nearestKey } from '../base/suggest.ts';
import { providedAssertions } from './provided.ts';
import { interfaceNameProblem } from '../base/interface-name.ts';

export interface StaticConfigOptions {
  readonly config: Ref;
  /** The metric of the default route. Default 100. */
  readonly routeMetric?: number;
}

export type StaticConfig = Driver;

export const DEFAULT_STATIC_ROUTE_METRIC = 100;
const KEYS = ['gateway', 'dns', 'search'] as const;
const USAGE = '<static "ADDR/LEN" {gateway: "GW" dns: ["A" …] search: ["DOMAIN" …]}>';

/** Starts the driver in a child facet of `parent`. */
export function startStaticConfig(parent: Facet, options: StaticConfigOptions): StaticConfig {
  const metric = options.routeMetric ?? DEFAULT_STATIC_ROUTE_METRIC;
  if (!Number.isSafeInteger(metric) || metric < 0 || metric > 0xffffffff)
    throw new RangeError(`routeMetric must be an integer from 0 to 4294967295, got ${metric}`);
  const config = options.config;
  const facet = parent.spawn((f) => {
    // So that `limen status` and the log find them (docs/vocabulary.md, "Failures").
    declareFailures(f, config, anyRecord('interface-failed', 2));
    during(
      f,
      config,
      P.rec('configure-interface', P.bind('if'), P.bind('method', P.rec('static'))),
      (child, c) => {
        const r = interpretStatic(c.get('if')!, c.get('method')!, metric);
        for (const v of r.assertions) child.assert(config, v);
      },
      'static-config',
    );
  }, 'static-config');
  return { facet, stop: () => facet.stop() };
}

/** What one `<static …>` method means for interface IF: the desired state, or the problems. */
export function interpretStatic(
  ifValue: Value,
  method: Value,
  routeMetric = DEFAULT_STATIC_ROUTE_METRIC,
): { readonly assertions: readonly Value[]; readonly problems: readonly string[] } {
  const problems: string[] = [];
  const ifname = peel(ifValue);
  if (typeof ifname !== 'string')
    problems.push(`the interface must be a string, got ${kind(ifValue)}`);
  else {
    const p = interfaceNameProblem(ifname);
    if (p !== undefined) problems.push(`interface ${JSON.stringify(printable(ifname))} ${p}`);
  }

  const m = peel(method) as Record;
  let cidrText: string | undefined;
  let options: Dict | undefined;
  if (m.fields.length < 1 || m.fields.length > 2) {
    problems.push(`expected ${USAGE}, got ${m.fields.length} fields`);
  } else {
    const a = peel(m.fields[0]!);
    if (typeof a === 'string') cidrText = a;
    else problems.push(`the address must be a string "ADDR/LEN", got ${kind(m.fields[0]!)}`);
    if (m.fields.length === 2) {
      const d = peel(m.fields[1]!);
      if (d instanceof Dict) options = d;
      else problems.push(`the options must be a dictionary ${USAGE}, got ${kind(m.fields[1]!)}`);
    }
  }

  let address: { family: string; text: string } | undefined;
  if (cidrText !== undefined) {
    const c = parseHostCidr(cidrText);
    if (typeof c === 'string')
      problems.push(`address ${JSON.stringify(printable(cidrText))}: ${c}`);
    else address = { family: c.family, text: `${c.address}/${c.prefix}` };
  }

  let gateway: string | undefined;
  const dns: string[] = [];
  const search: string[] = [];
  if (options !== undefined) {
    for (const [k, v] of options) {
      const key = peel(k);
      if (!(key instanceof Sym)) {
        problems.push(`option keys are symbols (gateway: …), got ${kind(k)}`);
        continue;
      }
      switch (key.name) {
        case 'gateway': {
          const g = peel(v);
          if (typeof g !== 'string') {
            problems.push(`gateway: expected an address (a string), got ${kind(v)}`);
            break;
          }
          const p = ipHostProblem(g);
          if (p !== undefined) problems.push(`gateway: ${JSON.stringify(printable(g))} is ${p}`);
          else gateway = g;
          break;
        }
        case 'dns':
          for (const s of strings(v, 'dns', problems)) {
            if (ipFamily(s) === undefined)
              problems.push(`dns: ${JSON.stringify(printable(s))} is not an IP address`);
            else if (!dns.includes(s)) dns.push(s);
          }
          break;
        case 'search':
          for (const s of strings(v, 'search', problems)) {
            const d = parseDomainName(s);
            if (d === undefined)
              problems.push(`search: ${JSON.stringify(printable(s))} is not a domain name`);
            else if (!search.includes(d.toLowerCase())) search.push(d.toLowerCase());
          }
          break;
        default: {
          const hint = nearestKey(key.name, KEYS);
          problems.push(
            `unknown option '${printable(key.name)}'` +
              (hint !== undefined ? ` (did you mean '${hint}'?)` : ` (known: ${KEYS.join(', ')})`),
          );
        }
      }
    }
  }

  if (problems.length > 0 || typeof ifname !== 'string' || address === undefined) {
    return {
      assertions: [record('interface-failed', ifValue, `static: ${problems.join('; ')}`)],
      problems,
    };
  }
  const family = gateway === undefined ? undefined : ipFamily(gateway);
  const out = providedAssertions({
    ifname,
    source: sym('static'),
    addresses: [{ cidr: address.text }],
    routes:
      gateway === undefined || family === undefined
        ? []
        : [{ family, destination: 'default', via: gateway, metric: routeMetric }],
    dns,
    domains: search,
    ntp: [],
  });
  return { assertions: out, problems };
}

function strings(v: Value, key: string, problems: string[]): string[] {
  const seq = peel(v);
  const items: readonly Value[] = typeof seq === 'string' ? [seq] : Array.isArray(seq) ? seq : [];
  if (typeof seq !== 'string' && !Array.isArray(seq)) {
    problems.push(`${key}: expected a sequence of strings, got ${kind(v)}`);
    return [];
  }
  const out: string[] = [];
  for (const item of items) {
    const s = peel(item);
    if (typeof s === 'string') out.push(s);
    else problems.push(`${key}: expected a string, got ${kind(item)}`);
  }
  return out;
}

function kind(v: Value): string {
  const x = peel(v);
  if (typeof x === 'string') return `the string ${JSON.stringify(printable(x))}`;
  if (x instanceof Sym) return `the symbol ${printable(x.name)}`;
  if (Array.isArray(x)) return 'a sequence';
  if (x instanceof Record) return 'a record';
  if (x instanceof Dict) return 'a dictionary';
  return `a ${typeof x}`;
}
