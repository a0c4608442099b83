// The sysctl driver: `<sysctl KEY VALUE>` in $config sets a kernel parameter by
// writing /proc/sys/KEY (dots become slashes; a KEY with slashes is taken as a
// path, for interface names with dots), remembering the value it replaced and
// putting that back when the assertion is retracted.
//
// Invariants: one value per key — the first assertion wins, and a second one
// with a different value is reported as `<sysctl-error KEY MESSAGE>` until one of
// them goes; a per-interface key (net.*.conf.IF.*, net.*.neigh.IF.*) whose
// interface does not exist yet is written when `<interface IF …>` appears in
// $machine, and again whenever the interface is created anew. Writes are
// synchronous: /proc/sys writes do not block, and a retraction must restore the
// old value before anything else happens. Stopping the driver leaves values as they are.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Driver,
  driverLog,
  P,
  during,
  type DriverLog,
  type Facet,
  type Handle,
  type Ref,
  anyRecord,
  declareFailures,
} from '../dataspace/index.ts';
import { Record as PRecord, is, peel, record, stringify, type Value } from '../preserves/index.ts';

export interface SysctlOptions {
  readonly config: Ref;
  /** Where `<interface NAME …>` is published, to write per-interface keys when it appears. */
  readonly machine?: Ref;
  /** Default /proc/sys (tests use a directory of their own). */
  readonly root?: string;
}

export type SysctlDriver = Driver;

const SEGMENT = /^[A-Za-z0-9_\-.:@+]+$/;

/** The path under the sysctl root for KEY, or a reason it is not a sysctl key. */
export function sysctlPath(key: string): string | { error: string } {
  const parts = key.includes('/') ? key.split('/') : key.split('.');
  if (
    parts.length < 2 ||
    parts.some((p) => p === '' || p === '.' || p === '..' || !SEGMENT.test(p))
  )
    return {
      error: `"${key}" is not a sysctl key (write it as net.ipv4.ip_forward or net/ipv4/ip_forward)`,
    };
  return parts.join('/');
}

/** The interface a per-interface key is about (net.FAMILY.conf.IF.x, net.FAMILY.neigh.IF.x). */
export function sysctlInterface(path: string): string | undefined {
  const p = path.split('/');
  if (p.length >= 5 && p[0] === 'net' && (p[2] === 'conf' || p[2] === 'neigh')) {
    const name = p[3]!;
    return name === 'all' || name === 'default' ? undefined : name;
  }
  return undefined;
}

/** The text to write: a string as is, an integer in decimal. */
export function sysctlText(v: Value): string | undefined {
  const x = peel(v);
  if (typeof x === 'string') return x;
  if (typeof x === 'number' || typeof x === 'bigint') return String(x);
  return undefined;
}

interface Entry {
  readonly value: Value;
  readonly text: string;
}

interface KeyState {
  readonly path: string;
  /** The key as first asserted (for error assertions). */
  readonly key: string;
  readonly iface: string | undefined;
  /** In order of arrival; the first one is in force. */
  entries: Entry[];
  /** What was there before our first write, while our value is in force. */
  previous: string | undefined;
  /** The text we wrote, if the write succeeded and still stands. */
  written: string | undefined;
  writeError: Handle | undefined;
  conflict: Handle | undefined;
}

function message(e: unknown): string {
  if (e instanceof Error && 'code' in e) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ENOENT') return 'no such kernel parameter';
    if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
    if (code === 'EINVAL') return 'the kernel refused the value (EINVAL)';
    return `${String(code)}: ${e.message}`;
  }
  return e instanceof Error ? e.message : String(e);
}

/** A `<sysctl KEY VALUE>` taken apart, or why it cannot be (`problems`, with its KEY field). */
type Parsed =
  | { readonly path: string; readonly key: string; readonly text: string }
  | { readonly keyField: Value; readonly problems: string };

function parseSysctl(value: Value): Parsed {
  const r = peel(value);
  const fields = r instanceof PRecord ? r.fields : [];
  const keyRaw = fields[0] === undefined ? undefined : peel(fields[0]);
  const problems: string[] = [];
  if (fields.length !== 2) problems.push(`<sysctl KEY VALUE> takes 2 fields, not ${fields.length}`);
  let path: string | undefined;
  if (typeof keyRaw !== 'string')
    problems.push(`KEY must be a string, not ${stringify(fields[0] ?? false)}`);
  else {
    const p = sysctlPath(keyRaw);
    if (typeof p === 'string') path = p;
    else problems.push(p.error);
  }
  const text = fields[1] === undefined ? undefined : sysctlText(fields[1]);
  if (text === undefined)
    problems.push(`VALUE must be a string or an integer, not ${stringify(fields[1] ?? false)}`);
  if (problems.length > 0 || path === undefined || text === undefined)
    return { keyField: fields[0] ?? false, problems: problems.join('; ') };
  return { path, key: keyRaw as string, text };
}

/** Starts the driver in a child facet of `parent`. */
export function startSysctl(parent: Facet, opts: SysctlOptions): SysctlDriver {
  return new SysctlDriverImpl(parent, opts);
}

class SysctlDriverImpl implements SysctlDriver {
  readonly facet: Facet;
  readonly #config: Ref;
  readonly #root: string;
  #log!: DriverLog;
  readonly #keys = new Map<string, KeyState>();
  /** Invalid assertions and their `<sysctl-error …>`. */
  readonly #invalid: { value: Value; handle: Handle }[] = [];

  constructor(parent: Facet, opts: SysctlOptions) {
    this.#config = opts.config;
    this.#root = opts.root ?? '/proc/sys';
    this.facet = parent.spawn((f) => {
      this.#log = driverLog(f, 'sysctl');
      // So that `limen status` and the log find them (docs/vocabulary.md, "Failures").
      declareFailures(f, opts.config, anyRecord('sysctl-error', 2));
      f.observe(opts.config, P.rec('sysctl'), {
        onAdd: (value) => this.#add(value),
        onRemove: (value) => this.#remove(value),
      });
      if (opts.machine !== undefined) this.#followInterfaces(f, opts.machine);
    }, 'sysctl');
  }

  stop(): void {
    this.facet.stop();
  }

  #error(k: KeyState, text: string): Handle {
    return this.facet.assert(this.#config, record('sysctl-error', k.key, text));
  }

  #setWriteError(k: KeyState, text: string | undefined): void {
    if (k.writeError !== undefined) this.facet.retract(k.writeError);
    k.writeError = text === undefined ? undefined : this.#error(k, text);
  }

  #refreshConflict(k: KeyState): void {
    const first = k.entries[0];
    const others = k.entries.filter((e) => e.text !== first?.text).map((e) => `"${e.text}"`);
    if (k.conflict !== undefined) this.facet.retract(k.conflict);
    k.conflict =
      first === undefined || others.length === 0
        ? undefined
        : this.#error(
            k,
            `conflicting values: keeping "${first.text}", ignoring ${[...new Set(others)].join(', ')}`,
          );
  }

  /** Writes the value in force (if the key can be written now). */
  #apply(k: KeyState): void {
    const first = k.entries[0];
    if (first === undefined) return;
    if (k.written === first.text) return;
    const file = join(this.#root, k.path);
    try {
      if (k.previous === undefined) k.previous = readFileSync(file, 'utf8').trim();
      writeFileSync(file, first.text);
      k.written = first.text;
      this.#setWriteError(k, undefined);
    } catch (e) {
      const missing = e instanceof Error && (e as { code?: unknown }).code === 'ENOENT';
      // A per-interface key appears with its interface: written again by #followInterfaces.
      this.#setWriteError(
        k,
        missing && k.iface !== undefined ? `waiting for interface ${k.iface}` : message(e),
      );
    }
  }

  #restore(k: KeyState): void {
    if (k.written !== undefined && k.previous !== undefined) {
      try {
        writeFileSync(join(this.#root, k.path), k.previous);
      } catch (e) {
        this.#log.warn('could not restore a value', { key: k.key, error: message(e) });
      }
    }
    k.written = undefined;
    k.previous = undefined;
  }

  #add(value: Value): void {
    const parsed = parseSysctl(value);
    if ('problems' in parsed) {
      this.#invalid.push({
        value,
        handle: this.facet.assert(
          this.#config,
          record('sysctl-error', parsed.keyField, parsed.problems),
        ),
      });
      return;
    }
    const { path, key, text } = parsed;
    let k = this.#keys.get(path);
    if (k === undefined) {
      k = {
        path,
        key,
        iface: sysctlInterface(path),
        entries: [],
        previous: undefined,
        written: undefined,
        writeError: undefined,
        conflict: undefined,
      };
      this.#keys.set(path, k);
    }
    k.entries.push({ value, text });
    if (k.entries.length === 1) this.#apply(k);
    else this.#refreshConflict(k);
  }

  #remove(value: Value): void {
    const bad = this.#invalid.findIndex((x) => is(x.value, value));
    if (bad >= 0) {
      this.facet.retract(this.#invalid[bad]!.handle);
      this.#invalid.splice(bad, 1);
      return;
    }
    for (const k of this.#keys.values()) {
      const i = k.entries.findIndex((e) => is(e.value, value));
      if (i < 0) continue;
      k.entries.splice(i, 1);
      this.#refreshConflict(k);
      if (k.entries.length === 0) {
        this.#restore(k);
        this.#setWriteError(k, undefined);
        this.#keys.delete(k.path);
      } else if (i === 0) this.#apply(k);
      return;
    }
  }

  /** Per-interface keys are written when their interface appears, and wait when it goes. */
  #followInterfaces(f: Facet, machine: Ref): void {
    during(f, machine, P.rec('interface', P.bind('name')), (child, captures) => {
      const name = peel(captures.get('name')!);
      if (typeof name !== 'string') return;
      // A new interface starts from the defaults: write (and remember) again.
      for (const k of this.#keys.values())
        if (k.iface === name) {
          k.written = undefined;
          k.previous = undefined;
          this.#apply(k);
        }
      child.onStop(() => {
        for (const k of this.#keys.values())
          if (k.iface === name) {
            k.written = undefined;
            k.previous = undefined;
            if (k.entries.length > 0) this.#setWriteError(k, `waiting for interface ${name}`);
          }
      });
    });
  }
}
