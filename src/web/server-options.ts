// `<web-dashboard {…}>`'s dictionary (docs/web.md, "Turning it on"), read by the web
// server itself: config/services/web.pr hands it over whole, so every problem with it
// is named in one line of the server's log.

import { Dict, Sym, peel, stringify, sym, type Value } from '../preserves/index.ts';

export interface WebConfig {
  readonly interfaces: readonly string[] | undefined;
  readonly port: number;
  readonly tls: 'self-signed' | { readonly cert: string; readonly key: string } | undefined;
  readonly idleS: number;
  readonly maxS: number;
}

export class WebOptionError extends Error {}

const KEYS = ['interfaces', 'port', 'tls', 'session'];
const IFNAME = /^[A-Za-z0-9_.@+-]{1,15}$/;

/** Reads `<web-dashboard {…}>`'s dictionary; throws WebOptionError naming every problem. */
export function readWebConfig(v: Value): WebConfig {
  const d = peel(v);
  if (!(d instanceof Dict))
    throw new WebOptionError('the options must be a dictionary, like {port: 80}');
  const problems: string[] = [];
  const get = (k: string) => {
    const x = d.get(sym(k));
    return x === undefined ? undefined : peel(x);
  };
  for (const [k] of d) {
    const pk = peel(k);
    const name = pk instanceof Sym ? pk.name : stringify(pk);
    if (!KEYS.includes(name))
      problems.push(`unknown key ${name} (the keys are ${KEYS.join(', ')})`);
  }
  let interfaces: string[] | undefined;
  const ifs = get('interfaces');
  if (ifs !== undefined) {
    if (
      !Array.isArray(ifs) ||
      ifs.length === 0 ||
      !ifs.every((x) => typeof x === 'string' && IFNAME.test(x))
    )
      problems.push('interfaces must be a non-empty list of interface names, like ["lan0"]');
    else interfaces = ifs as string[];
  }
  let tls: WebConfig['tls'];
  const t = get('tls');
  if (t === undefined || t === false) tls = undefined;
  else if (t instanceof Sym && t.name === 'self-signed') tls = 'self-signed';
  else if (t instanceof Dict) {
    const cert = t.get(sym('cert'));
    const key = t.get(sym('key'));
    if (typeof cert !== 'string' || typeof key !== 'string' || t.size !== 2)
      problems.push('tls as a dictionary is {cert: "PATH" key: "PATH"}');
    else tls = { cert, key };
  } else problems.push('tls must be #f, self-signed or {cert: "PATH" key: "PATH"}');
  const p = get('port');
  let port = tls === undefined ? 80 : 443;
  if (p !== undefined) {
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535)
      problems.push('port must be a TCP port, 1 to 65535');
    else port = p;
  }
  let idleS = 1800;
  let maxS = 43200;
  const s = get('session');
  if (s !== undefined) {
    const idle = s instanceof Dict ? peel(s.get(sym('idle')) ?? idleS) : undefined;
    const max = s instanceof Dict ? peel(s.get(sym('max')) ?? maxS) : undefined;
    const ok = (x: Value | undefined) =>
      typeof x === 'number' && Number.isInteger(x) && x >= 60 && x <= 30 * 86400;
    if (!ok(idle) || !ok(max))
      problems.push('session is {idle: SECONDS max: SECONDS}, each 60 to 2592000');
    else {
      idleS = idle as number;
      maxS = max as number;
    }
  }
  if (problems.length > 0) throw new WebOptionError(problems.join('; '));
  return { interfaces, port, tls, idleS, maxS };
}
